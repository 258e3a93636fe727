"""A real registry deployment for every test, copied from one built per session.

The template (built once with the operator API, real keys and real GIDs):
  plc                     root authority, PI plc.admin
  plc.princeton           sub-authority, PI plc.princeton.carol
  plc.princeton.alice     user (email), researcher of slice plc.princeton.exp1
  plc.princeton.bob       user
  plc.princeton.exp1      slice
  plc.princeton.node1     node
  plc.other               sub-authority, PI plc.other.dave
Each test gets its own copy of the SQLite file and the authority directories.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.registry.admin import RegistryAdmin
from sfa.registry.api import Registry
from sfa.registry.settings import RegistryConfig
from sfa.trust.gid import GID, create_gid
from sfa.trust.hierarchy import AuthorityStore
from sfa.trust.keys import generate_private_key, public_key_to_openssh
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy
from sfa.xrn import hrn_to_urn

USERS = {
    "admin": "plc.admin",
    "carol": "plc.princeton.carol",
    "alice": "plc.princeton.alice",
    "bob": "plc.princeton.bob",
    "dave": "plc.other.dave",
}
PEERS = {"ple": "https://ple.example:12345", "plc.remote": "https://remote.example:12345"}


@dataclass(frozen=True)
class Template:
    directory: Path
    keys: dict[str, rsa.RSAPrivateKey]
    sa_gid: GID
    sa_key: rsa.RSAPrivateKey
    root_gid: GID


@pytest.fixture(scope="session")
def user_keys() -> dict[str, rsa.RSAPrivateKey]:
    """One key per user, plus spares for re-keying and attackers."""
    return {name: generate_private_key() for name in [*USERS, "spare", "mallory"]}


@pytest.fixture(scope="session")
def template(
    tmp_path_factory: pytest.TempPathFactory, user_keys: dict[str, rsa.RSAPrivateKey]
) -> Template:
    directory = tmp_path_factory.mktemp("registry-template")
    store = AuthorityStore(directory / "authorities")
    root = store.create_root("plc")
    sa_gid, sa_key = root.issue_service_gid("sa", "127.0.0.1")
    assert sa_key is not None
    admin = RegistryAdmin(directory / "registry.sqlite", store, "plc")

    def key(name: str) -> str:
        return public_key_to_openssh(user_keys[name])

    admin.admin_add_user("plc.admin", pubkey=key("admin"), pi_of=["plc"])
    admin.admin_add_authority("plc.princeton")
    admin.admin_add_user("plc.princeton.carol", pubkey=key("carol"), pi_of=["plc.princeton"])
    admin.admin_add_user(
        "plc.princeton.alice", email="alice@princeton.example", pubkey=key("alice")
    )
    admin.admin_add_user("plc.princeton.bob", email="bob@princeton.example", pubkey=key("bob"))
    admin.admin_add_slice("plc.princeton.exp1", ["plc.princeton.alice"])
    admin.admin_add_node("plc.princeton.node1", hostname="node1.princeton.example")
    admin.admin_add_authority("plc.other")
    admin.admin_add_user("plc.other.dave", pubkey=key("dave"), pi_of=["plc.other"])
    admin.close()
    return Template(directory, dict(user_keys), sa_gid, sa_key, root.gid)


class World:
    """One test's registry, its operator view on the same file, and helpers."""

    def __init__(self, template: Template, directory: Path, **registry_args: Any) -> None:
        shutil.copytree(template.directory, directory)
        self.directory = directory
        self.keys = template.keys
        self.root_gid = template.root_gid
        self.roots = TrustedRoots(gids=[template.root_gid])
        self.policy = TrustPolicy(roots=self.roots)
        self.db_path = directory / "registry.sqlite"
        self.authorities = AuthorityStore(directory / "authorities")
        config = registry_args.pop("config", RegistryConfig(peers=PEERS))
        self.registry = Registry(
            self.db_path, self.authorities, self.policy, template.sa_gid, template.sa_key,
            config=config, **registry_args,
        )
        self.admin = RegistryAdmin(self.db_path, self.authorities, "plc", config=config)

    def close(self) -> None:
        self.registry.close()
        self.admin.close()

    def gid(self, name: str, type: str = "user") -> GID:
        """The GID stored in the record of a user (by short name) or of any HRN."""
        hrn = USERS.get(name, name)
        (record,) = self.admin.admin_show(hrn, type)
        assert record.gid
        return GID.from_pem(record.gid)

    def self_signed(self, key_name: str, hrn: str) -> GID:
        """What sfi makes before bootstrap: a self-signed certificate for the user's key."""
        key = self.keys[key_name]
        return create_gid(
            urn=hrn_to_urn(hrn, "user"), public_key=key.public_key(), issuer_key=key
        )

    def user_cred(self, name: str) -> str:
        """The user's own credential, obtained the real way (GetSelfCredential)."""
        gid = self.gid(name)
        return self.registry.GetSelfCredential(gid, None, gid.urn, "user")

    def cred(self, name: str, target_hrn: str, type: str) -> str:
        """A credential for user `name` over a record, obtained through GetCredential."""
        return self.registry.GetCredential(
            self.gid(name), [self.user_cred(name)], target_hrn, type
        )

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return self.registry.book.repository.database.dump()

    def authority_dirs(self) -> list[str]:
        return sorted(str(p.relative_to(self.directory)) for p in self.directory.rglob("*"))


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[World]:
    w = World(template, tmp_path / "deployment")
    yield w
    w.close()


@pytest.fixture
def make_world(template: Template, tmp_path: Path) -> Iterator[Any]:
    """A World with custom Registry arguments (sliver check, config)."""
    made: list[World] = []

    def make(**kwargs: Any) -> World:
        w = World(template, tmp_path / f"deployment{len(made)}", **kwargs)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
