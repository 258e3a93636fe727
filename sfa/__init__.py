"""sfa: registry, aggregate manager and node manager for federated testbeds."""

__version__ = "0.1.0"
