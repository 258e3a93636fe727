"""A deployment directory: its layout, its configuration (`sfa.toml`), `sfa init`, and peers."""
