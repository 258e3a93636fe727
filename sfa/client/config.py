"""The sfi config directory (default ~/.sfi) and its `sfi.toml`.

    DIR/sfi.toml            registry URL, user HRN, key path, aggregates, slice manager
    DIR/trusted_roots/      root GIDs the client trusts (servers and credentials verify to them)
    DIR/cache/              the user's GID and cached credentials (sfa.client.cache)
    DIR/slices/<hrn>/       per-slice state: saved tickets, sliver -> node map, keys
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sfa.errors import BadArgs
from sfa.xrn import validate_hrn

CONFIG_NAME = "sfi.toml"
SLICEMGR_NICK = "sm"
DEFAULT_DIR = "~/.sfi"


@dataclass(frozen=True)
class AggregateEntry:
    """One aggregate the user talks to: its URL and AM API version (2 or 3)."""

    url: str
    api_version: int = 3
    slicemgr: bool = False


@dataclass(frozen=True)
class ClientConfig:
    """What sfi.toml says, plus the directory it lives in."""

    directory: Path
    registry: str = ""
    user: str = ""
    key: str = ""
    trusted_roots: str = "trusted_roots"
    slicemgr: str = ""
    aggregates: dict[str, AggregateEntry] = field(default_factory=dict)

    @property
    def key_path(self) -> Path:
        return self._path(self.key)

    @property
    def trusted_roots_dir(self) -> Path:
        return self._path(self.trusted_roots)

    @property
    def cache_dir(self) -> Path:
        return self.directory / "cache"

    @property
    def slices_dir(self) -> Path:
        return self.directory / "slices"

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.directory / path

    def all_aggregates(self) -> dict[str, AggregateEntry]:
        """The configured aggregates, with the slice manager under the nick `sm`."""
        found = dict(self.aggregates)
        if self.slicemgr:
            found[SLICEMGR_NICK] = AggregateEntry(self.slicemgr, 3, slicemgr=True)
        return found

    def require(self, *names: str) -> None:
        """BadArgs naming the `sfi config` option to set when a needed setting is empty."""
        for name in names:
            if not getattr(self, name):
                raise BadArgs(
                    f"{self.directory / CONFIG_NAME} has no {name}; set it with "
                    f"`sfi config --{name.replace('_', '-')} ...`"
                )


def config_dir(option: str | None) -> Path:
    """The directory from --dir, then $SFI_DIR, then ~/.sfi."""
    chosen = option or os.environ.get("SFI_DIR") or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


def load_config(directory: Path) -> ClientConfig:
    """Read DIR/sfi.toml (an absent file is an empty configuration)."""
    path = directory / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ClientConfig(directory=directory)
    except OSError as exc:
        raise BadArgs(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadArgs(f"{path}: not valid TOML: {exc}") from None
    return _from_data(directory, data, path)


def _from_data(directory: Path, data: dict[str, Any], path: Path) -> ClientConfig:
    known = {"registry", "user", "key", "trusted_roots", "slicemgr", "aggregates"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadArgs(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    values: dict[str, Any] = {}
    for name in known - {"aggregates"}:
        value = data.get(name, "")
        if not isinstance(value, str):
            raise BadArgs(f"{path}: {name} must be a string, got {value!r:.40}")
        values[name] = value
    if values["user"]:
        validate_hrn(values["user"])
    aggregates = {nick: _aggregate(nick, table, path)
                  for nick, table in dict(data.get("aggregates", {})).items()}
    return ClientConfig(directory=directory, aggregates=aggregates, **values)


def _aggregate(nick: str, table: Any, path: Path) -> AggregateEntry:
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        raise BadArgs(f"{path}: [aggregates.{nick}] needs url = \"https://host:port/\"")
    version = table.get("api_version", 3)
    if version not in (2, 3):
        raise BadArgs(f"{path}: [aggregates.{nick}] api_version must be 2 or 3")
    return AggregateEntry(url=table["url"], api_version=version)


def render_config(config: ClientConfig) -> str:
    """sfi.toml text for `config` (strings quoted as JSON, which TOML accepts)."""
    lines = []
    for name in ("registry", "user", "key", "trusted_roots", "slicemgr"):
        value = getattr(config, name)
        if value:
            lines.append(f"{name} = {json.dumps(value)}")
    for nick, entry in sorted(config.aggregates.items()):
        lines += ["", f"[aggregates.{json.dumps(nick)}]", f"url = {json.dumps(entry.url)}",
                  f"api_version = {entry.api_version}"]
    return "\n".join(lines) + "\n"


def save_config(config: ClientConfig) -> Path:
    """Write DIR/sfi.toml atomically (the directory is made private when created)."""
    config.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config.directory / CONFIG_NAME
    tmp = path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.write_text(render_config(config), encoding="utf-8")
    tmp.replace(path)
    return path


def with_aggregate(config: ClientConfig, spec: str, api_version: int) -> ClientConfig:
    """`config` plus the aggregate given as NICK=URL."""
    nick, sep, url = spec.partition("=")
    nick = nick.strip()
    if not sep or not nick or not url.startswith("https://"):
        raise BadArgs(f"expected NICK=https://host:port/, got {spec!r:.80}")
    if nick == SLICEMGR_NICK:
        raise BadArgs(f"the nick {SLICEMGR_NICK!r} is the slice manager's; use --slicemgr URL")
    aggregates = {**config.aggregates, nick: AggregateEntry(url, api_version)}
    return replace(config, aggregates=aggregates)


def without_aggregate(config: ClientConfig, nick: str) -> ClientConfig:
    if nick not in config.aggregates:
        raise BadArgs(f"no aggregate named {nick!r} (known: {sorted(config.aggregates)})")
    return replace(config, aggregates={k: v for k, v in config.aggregates.items() if k != nick})
