"""The user's GID and credentials, cached in DIR/cache and verified again whenever read.

A cached credential is used only while its signatures verify against the trusted roots, its
owner is the user (same public key), and it does not expire within `margin`; anything else
is dropped so that the caller fetches a fresh one.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from sfa.errors import CredentialMismatch, SfaError
from sfa.timeutil import utcnow
from sfa.trust.chain import verify_gid_chain
from sfa.trust.credential import Credential
from sfa.trust.gid import GID
from sfa.trust.keys import public_keys_equal
from sfa.trust.verify import TrustPolicy, verify_credential

DEFAULT_MARGIN = timedelta(minutes=10)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` (mode 0600) atomically; concurrent writers each use their own
    temporary file, so the last one wins whole."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@dataclass
class CredentialCache:
    """Credentials of one user, one file per (type, hrn) under `directory`."""

    directory: Path
    policy: TrustPolicy
    owner_key: RSAPublicKey
    margin: timedelta = DEFAULT_MARGIN

    def path(self, hrn: str, type: str) -> Path:
        return self.directory / "creds" / f"{_SAFE.sub('_', type)}-{_SAFE.sub('_', hrn)}.cred"

    def load(self, hrn: str, type: str) -> Credential | None:
        """The cached credential when it still verifies and lives past the margin; else None
        (and the stale file is removed)."""
        path = self.path(hrn, type)
        try:
            xml = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        try:
            credential = self.check(xml)
        except SfaError:
            path.unlink(missing_ok=True)
            return None
        if credential.expires - self.margin <= utcnow():
            path.unlink(missing_ok=True)
            return None
        return credential

    def check(self, xml: str) -> Credential:
        """Verify `xml` completely and that the user owns it."""
        credential = verify_credential(xml, self.policy)
        if not public_keys_equal(credential.owner_gid.public_key, self.owner_key):
            raise CredentialMismatch(f"the credential is owned by {credential.owner_urn}, "
                                     "not by this user's key")
        return credential

    def store(self, hrn: str, type: str, xml: str) -> Credential:
        """Verify and keep a credential just received."""
        credential = self.check(xml)
        _write_private(self.path(hrn, type), xml)
        return credential

    def forget(self, hrn: str, type: str) -> None:
        self.path(hrn, type).unlink(missing_ok=True)

    def forget_expired(self) -> list[Path]:
        """Remove every credential file that no longer verifies or has expired."""
        removed = []
        for path in sorted((self.directory / "creds").glob("*.cred")):
            try:
                credential = self.check(path.read_text(encoding="utf-8"))
                stale = credential.expires <= utcnow()
            except (SfaError, UnicodeDecodeError):
                stale = True
            if stale:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def user_gid_path(cache_dir: Path) -> Path:
    return cache_dir / "user.gid"


def load_user_gid(cache_dir: Path, policy: TrustPolicy, key: RSAPublicKey) -> GID | None:
    """The cached GID when its chain verifies, it is not expiring and it carries our key."""
    path = user_gid_path(cache_dir)
    try:
        gid = GID.from_pem(path.read_bytes())
        verify_gid_chain(gid, policy.roots, strict_crypto=policy.strict_crypto)
    except FileNotFoundError:
        return None
    except SfaError:
        path.unlink(missing_ok=True)
        return None
    if not public_keys_equal(gid.public_key, key) or gid.not_after - DEFAULT_MARGIN <= utcnow():
        path.unlink(missing_ok=True)
        return None
    return gid


def save_user_gid(cache_dir: Path, gid: GID) -> Path:
    path = user_gid_path(cache_dir)
    _write_private(path, gid.to_pem(include_chain=True))
    return path
