"""Authorities on disk: a root, its sub-authorities, and the GIDs they issue.

An authority lives in one directory: `authority.pkey` (mode 0600) and `authority.gid` (its
GID with the chain up to the root). It issues GIDs only for names in its own subtree.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import AlreadyExists, BadArgs, Forbidden, SearchFailed, SfaError
from sfa.trust.gid import GID, create_gid
from sfa.trust.keys import (
    generate_private_key,
    is_own_key_file,
    load_private_key,
    public_keys_equal,
    save_private_key,
)
from sfa.xrn import (
    AUTHORITY_SERVICES,
    hrn_authority,
    hrn_split,
    hrn_to_urn,
    is_authority_for,
    urn_to_hrn,
)

KEY_FILE = "authority.pkey"
GID_FILE = "authority.gid"
AUTHORITY_LIFETIME = timedelta(days=5 * 365)
DEFAULT_LIFETIME = timedelta(days=365)
_SAFE_DIR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _write_new_authority(directory: Path, key: rsa.RSAPrivateKey, gid: GID) -> None:
    if (directory / GID_FILE).exists() or (directory / KEY_FILE).exists():
        raise AlreadyExists(f"{directory} already holds an authority; load it instead")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    save_private_key(directory / KEY_FILE, key)
    tmp = directory / f".{GID_FILE}.tmp"
    tmp.write_text(gid.to_pem())
    tmp.replace(directory / GID_FILE)


@dataclass(frozen=True)
class Authority:
    """A CA in the name tree, with its key, GID and directory."""

    gid: GID
    key: rsa.RSAPrivateKey
    directory: Path

    @property
    def hrn(self) -> str:
        return self.gid.hrn

    @property
    def urn(self) -> str:
        return self.gid.urn

    @classmethod
    def create_root(
        cls, directory: Path | str, hrn: str, lifetime: timedelta = AUTHORITY_LIFETIME
    ) -> Authority:
        """Create a self-signed top-level authority in `directory`."""
        key = generate_private_key()
        gid = create_gid(
            urn=hrn_to_urn(hrn, "authority"),
            public_key=key.public_key(),
            issuer_key=key,
            is_ca=True,
            lifetime=lifetime,
        )
        authority = cls(gid=gid, key=key, directory=Path(directory))
        _write_new_authority(authority.directory, key, gid)
        return authority

    @classmethod
    def load(cls, directory: Path | str) -> Authority:
        """Load the authority stored in `directory`."""
        path = Path(directory)
        try:
            gid = GID.from_pem((path / GID_FILE).read_bytes())
            key_file = path / KEY_FILE
            key = load_private_key(key_file.read_bytes(), own_file=is_own_key_file(key_file))
        except FileNotFoundError:
            raise SearchFailed(
                f"no authority in {path} (expected {GID_FILE} and {KEY_FILE})"
            ) from None
        if not gid.type == "authority" or not gid.is_ca:
            raise BadArgs(f"{path / GID_FILE} is not an authority GID ({gid.urn})")
        if not public_keys_equal(key.public_key(), gid.public_key):
            raise BadArgs(f"{path / KEY_FILE} is not the key of {path / GID_FILE}")
        return cls(gid=gid, key=key, directory=path)

    def _check_beneath(self, hrn: str) -> None:
        hrn_split(hrn)
        if hrn == self.hrn or not is_authority_for(self.hrn, hrn):
            raise Forbidden(f"authority {self.hrn} may only issue names beneath it, not {hrn!r}")

    def create_sub_authority(
        self, hrn: str, directory: Path | str, lifetime: timedelta = AUTHORITY_LIFETIME
    ) -> Authority:
        """Create a sub-authority `hrn` (beneath this one) with a new key in `directory`."""
        self._check_beneath(hrn)
        key = generate_private_key()
        gid = create_gid(
            urn=hrn_to_urn(hrn, "authority"),
            public_key=key.public_key(),
            issuer_key=self.key,
            issuer=self.gid,
            is_ca=True,
            lifetime=lifetime,
        )
        authority = Authority(gid=gid, key=key, directory=Path(directory))
        _write_new_authority(authority.directory, key, gid)
        return authority

    def issue_gid(
        self,
        hrn: str,
        type: str,
        public_key: rsa.RSAPublicKey | None = None,
        email: str | None = None,
        *,
        lifetime: timedelta | None = None,
        uuid: str | None = None,
    ) -> tuple[GID, rsa.RSAPrivateKey | None]:
        """A GID for a user, slice, node (or sub-authority) beneath this authority.

        Makes a key when none is given and returns it; Forbidden outside the subtree.
        """
        self._check_beneath(hrn)
        urn = hrn_to_urn(hrn, type)
        _, normalized = urn_to_hrn(urn)
        if normalized.startswith("authority+"):
            raise BadArgs(f"use issue_service_gid for {normalized} GIDs")
        is_ca = normalized == "authority"
        default = AUTHORITY_LIFETIME if is_ca else DEFAULT_LIFETIME
        key = None if public_key is not None else generate_private_key()
        gid = create_gid(
            urn=urn,
            public_key=public_key if public_key is not None else key.public_key(),  # type: ignore[union-attr]
            issuer_key=self.key,
            issuer=self.gid,
            uuid=uuid,
            email=email,
            is_ca=is_ca,
            lifetime=lifetime or default,
        )
        return gid, key

    def issue_service_gid(
        self,
        service: str,
        host: str,
        public_key: rsa.RSAPublicKey | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        names: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
    ) -> tuple[GID, rsa.RSAPrivateKey | None]:
        """The GID of this authority's `sa|am|sm|cm|ma` service on `host` (a name or an IP):
        URN `+authority+<service>`, CN `<hrn>.<service>`, and DNS:/IP: for the host, or
        exactly `names` (DNS names, IP addresses) when the caller has already chosen them."""
        if service not in AUTHORITY_SERVICES:
            choices = ", ".join(AUTHORITY_SERVICES)
            raise BadArgs(f"unknown service {service!r}: use one of {choices}")
        dns_names, ips = names if names is not None else _host_names(host)
        key = None if public_key is not None else generate_private_key()
        gid = create_gid(
            urn=hrn_to_urn(self.hrn, f"authority+{service}"),
            public_key=public_key if public_key is not None else key.public_key(),  # type: ignore[union-attr]
            issuer_key=self.key,
            issuer=self.gid,
            cn=f"{self.hrn}.{service}",
            dns_names=dns_names,
            ip_addresses=ips,
            lifetime=lifetime,
        )
        return gid, key


def _host_names(host: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        return (), (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".") if isinstance(host, str) else []
    valid = bool(labels) and len(host) <= 253 and all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in label)
        for label in labels
    )
    if not valid:
        raise BadArgs(f"not a host name or IP address: {str(host)[:80]!r}")
    return (host.rstrip(".").lower(),), ()


def authority_dir_name(component: str) -> str:
    """A safe directory name for one HRN component: [A-Za-z0-9_-] kept, the rest %-escaped,
    so that no input can name `..`, a hidden file or a path separator."""
    return "".join(
        ch if ch in _SAFE_DIR_CHARS else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in component
    )


class AuthorityStore:
    """A tree of authorities under one base directory, one nested directory per component."""

    def __init__(self, base_dir: Path | str) -> None:
        self.base_dir = Path(base_dir)

    def directory_for(self, hrn: str) -> Path:
        """Where the authority `hrn` lives (derived from its components, never from input)."""
        return self.base_dir.joinpath(*(authority_dir_name(c) for c in hrn_split(hrn)))

    def create_root(self, hrn: str, lifetime: timedelta = AUTHORITY_LIFETIME) -> Authority:
        """Create a top-level authority."""
        if len(hrn_split(hrn)) != 1:
            raise BadArgs(f"a root authority has a one-component HRN, not {hrn!r}")
        return Authority.create_root(self.directory_for(hrn), hrn, lifetime)

    def create_sub(self, hrn: str, lifetime: timedelta = AUTHORITY_LIFETIME) -> Authority:
        """Create `hrn` under the nearest existing authority above it."""
        parent_hrn = hrn_authority(hrn)
        if not parent_hrn:
            raise BadArgs(f"{hrn!r} has no parent: use create_root")
        parent = self.authority_for(parent_hrn)
        return parent.create_sub_authority(hrn, self.directory_for(hrn), lifetime)

    def get(self, hrn: str) -> Authority:
        """The authority `hrn`; SearchFailed when it does not exist here."""
        directory = self.directory_for(hrn)
        if not (directory / GID_FILE).is_file():
            raise SearchFailed(f"no authority {hrn!r} in {self.base_dir}")
        authority = Authority.load(directory)
        if authority.hrn != hrn:
            raise SearchFailed(f"{directory} holds {authority.hrn!r}, not {hrn!r}")
        return authority

    def authority_for(self, hrn: str) -> Authority:
        """The longest existing authority that is authority for `hrn`."""
        parts = hrn_split(hrn)
        for count in range(len(parts), 0, -1):
            directory = self.base_dir.joinpath(*(authority_dir_name(c) for c in parts[:count]))
            if (directory / GID_FILE).is_file():
                try:
                    return Authority.load(directory)
                except SfaError:
                    continue
        raise SearchFailed(f"no authority in {self.base_dir} is authority for {hrn!r}")

    def hrns(self) -> list[str]:
        """Every authority stored here."""
        found = []
        for root, _dirs, files in os.walk(self.base_dir):
            if GID_FILE in files:
                found.append(GID.from_pem((Path(root) / GID_FILE).read_bytes()).hrn)
        return sorted(found)
