"""Trust: keys, GIDs and their chains, trusted roots, on-disk authorities, credentials, rights,
speaks-for, tickets, and the one verification door (`sfa.trust.verify`).

Submodules are imported explicitly (`from sfa.trust.gid import GID`); nothing here knows
Twisted or XML-RPC.
"""
