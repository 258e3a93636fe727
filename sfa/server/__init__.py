"""The Twisted edge: TLS, XML-RPC resources, the GENI envelope, app assembly, worker processes."""
