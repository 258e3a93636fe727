"""OMF experiment control over XMPP pubsub: the /OMF tree, signed messages, experiment
descriptions, the resource controller's logic (docs/omf.md). Only `sfa.omf.xmpp` and the
programs built on it (`sfa rc`, `sfi exp run`) know XMPP."""
