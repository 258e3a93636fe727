"""XML-RPC over TLS, the calling side: shared by `sfi` and the slice manager (to aggregates)."""
