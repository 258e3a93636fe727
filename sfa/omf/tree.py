"""The /OMF pubsub tree and the XMPP account names of RCs and ECs.

    /OMF                                   root, made by the aggregate
    /OMF/system/<node HRN>                 the aggregate's commands for one node
    /OMF/<slice HRN>                       a slice that opted in
    /OMF/<slice HRN>/resources/<node HRN>  one sliver's RC
    /OMF/<slice HRN>/<exp id>/<group>      an experiment's resource groups
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs
from sfa.trust.keys import private_key_to_pem
from sfa.xrn import validate_hrn

ROOT = "/OMF"
SYSTEM = f"{ROOT}/system"
_RESERVED = {"system"}
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _hrn(hrn: str, what: str) -> str:
    validate_hrn(hrn)
    if "/" in hrn or hrn in _RESERVED:
        raise BadArgs(f"{what} {hrn[:80]!r} cannot name an /OMF node")
    return hrn


def check_label(label: str, what: str) -> str:
    """An experiment id or group name: letters, digits, '-' and '_', at most 64."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label) or label == "resources":
        raise BadArgs(f"{what} must be 1-64 letters, digits, '-' or '_' (not 'resources'), "
                      f"got {str(label)[:80]!r}")
    return label


def system_node(node_hrn: str) -> str:
    return f"{SYSTEM}/{_hrn(node_hrn, 'node')}"


def slice_node(slice_hrn: str) -> str:
    return f"{ROOT}/{_hrn(slice_hrn, 'slice')}"


def resources_node(slice_hrn: str) -> str:
    return f"{slice_node(slice_hrn)}/resources"


def resource_node(slice_hrn: str, node_hrn: str) -> str:
    return f"{resources_node(slice_hrn)}/{_hrn(node_hrn, 'node')}"


def experiment_node(slice_hrn: str, experiment: str) -> str:
    return f"{slice_node(slice_hrn)}/{check_label(experiment, 'experiment id')}"


def group_node(slice_hrn: str, experiment: str, group: str) -> str:
    return f"{experiment_node(slice_hrn, experiment)}/{check_label(group, 'group name')}"


def slice_nodes(slice_hrn: str, node_hrns: list[str]) -> list[str]:
    """What the aggregate creates for a slice, parents first."""
    return [slice_node(slice_hrn), resources_node(slice_hrn),
            *(resource_node(slice_hrn, node) for node in node_hrns)]


def slice_of(path: str) -> str | None:
    """The slice HRN a node path belongs to (None for /OMF, /OMF/system...)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[:2] != ["", "OMF"] or parts[2] in _RESERVED:
        return None
    return parts[2]


def rc_account(slice_hrn: str, node_hrn: str) -> str:
    """The XMPP account of the RC of one sliver: derived, so aggregate and node agree."""
    return "rc-" + _digest(f"{slice_hrn.lower()}|{node_hrn.lower()}")


def rc_password(slice_key: rsa.RSAPrivateKey, node_hrn: str) -> str:
    """The RC's XMPP password, derived from the slice's private key: the aggregate (which
    made the key) and the node (which received it sealed) agree on it, nobody else can."""
    secret = hashlib.sha256(private_key_to_pem(slice_key)).digest()
    return hmac.new(secret, f"omf-rc|{node_hrn.lower()}".encode(), "sha256").hexdigest()[:40]


def ec_account(user_hrn: str, slice_hrn: str) -> str:
    """The XMPP account an experimenter's EC uses for one slice."""
    return "ec-" + _digest(f"{user_hrn.lower()}|{slice_hrn.lower()}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]
