"""Trust: keys, GIDs and their chains, trusted roots, on-disk authorities, credentials, rights,
speaks-for, tickets and leases, sealed slice keys, and the one verification door.

This package's names are the stable surface (docs/library.md): decide trust with `authorize`
(a caller and its credentials for an operation) or `verify_credential`; issue with `Authority`,
`create_credential` and `delegate`. Primitives that apply no rules are in `sfa.trust.hazmat`.
Nothing here knows Twisted or XML-RPC.
"""

from sfa.trust.chain import verify_gid_chain
from sfa.trust.credential import Credential, Privilege, create_credential
from sfa.trust.credential import delegate_credential as delegate
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority, AuthorityStore
from sfa.trust.keys import (
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_to_openssh,
    save_private_key,
)
from sfa.trust.rights import operation_for
from sfa.trust.roots import TrustedRoots
from sfa.trust.slicekey import seal_slice_key, unseal_slice_key
from sfa.trust.speaksfor import create_speaksfor, verify_speaksfor
from sfa.trust.ticket import (
    Lease,
    Ticket,
    TicketResources,
    TicketSpec,
    TicketUser,
    create_lease,
    create_ticket,
    create_tickets,
    verify_lease,
    verify_ticket,
)
from sfa.trust.verify import (
    TargetMatch,
    TrustPolicy,
    VerifiedCall,
    authorize,
    verify_caller,
    verify_credential,
)

__all__ = [
    "GID",
    "Authority",
    "AuthorityStore",
    "Credential",
    "Lease",
    "Privilege",
    "TargetMatch",
    "Ticket",
    "TicketResources",
    "TicketSpec",
    "TicketUser",
    "TrustPolicy",
    "TrustedRoots",
    "VerifiedCall",
    "authorize",
    "create_credential",
    "create_lease",
    "create_speaksfor",
    "create_ticket",
    "create_tickets",
    "delegate",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "operation_for",
    "public_key_to_openssh",
    "save_private_key",
    "seal_slice_key",
    "unseal_slice_key",
    "verify_caller",
    "verify_credential",
    "verify_gid_chain",
    "verify_lease",
    "verify_speaksfor",
    "verify_ticket",
]
