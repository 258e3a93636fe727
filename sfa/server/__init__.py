"""The Twisted edge: TLS, XML-RPC resources, the GENI envelope, app assembly, the `sfa` CLI."""
