"""Registry commands of sfi: version, list, show, register, update, remove, gid, delegate,
trusted. Each takes the Session and the Output and reports what happened."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sfa.client.output import Output
from sfa.client.session import Session
from sfa.errors import BadArgs, Forbidden
from sfa.timeutil import format_rfc3339
from sfa.trust.credential import delegate_credential, parse_credential
from sfa.trust.gid import GID
from sfa.trust.keys import load_public_key, public_key_to_openssh
from sfa.xrn import hrn_authority, validate_hrn

RECORD_COLUMNS = ("hrn", "type", "reg-urn")


@dataclass
class RecordFields:
    """What `sfi register` / `sfi update` send, from the command line."""

    hrn: str
    type: str
    email: str | None = None
    keys: list[str] = field(default_factory=list)
    researchers: list[str] = field(default_factory=list)
    pis: list[str] = field(default_factory=list)
    expires: datetime | None = None
    description: str | None = None
    url: str | None = None
    name: str | None = None
    hostname: str | None = None

    def to_wire(self) -> dict[str, Any]:
        record: dict[str, Any] = {"hrn": validate_hrn(self.hrn), "type": self.type}
        simple = {"email": self.email, "description": self.description, "url": self.url,
                  "name": self.name, "hostname": self.hostname}
        record.update({k: v for k, v in simple.items() if v is not None})
        if self.keys:
            record["reg-keys"] = self.keys
        if self.researchers:
            record["reg-researchers"] = self.researchers
        if self.pis:
            record["reg-pis"] = self.pis
        if self.expires is not None:
            record["expires"] = format_rfc3339(self.expires)
        return record


def read_public_keys(files: list[Path]) -> list[str]:
    """OpenSSH public keys from files (PEM public keys and certificates are converted)."""
    keys = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadArgs(f"cannot read the key file {path}: {exc.strerror}") from None
        keys.append(public_key_to_openssh(load_public_key(text)))
    return keys


def version(session: Session, out: Output) -> None:
    info = session.registry().call("GetVersion", {})
    out.put("registry", info)
    out.echo(f"registry {info.get('hrn')} at {session.config.registry}")
    out.table(sorted((k, _short(v)) for k, v in info.items()), ("key", "value"))


def list_records(session: Session, out: Output, authority: str, recursive: bool) -> None:
    records = session.call_registry(
        "List", authority, [session.user_credential()], {"recursive": recursive})
    rows = sorted((r.get("hrn", ""), r.get("type", ""), r.get("reg-urn", "")) for r in records)
    out.table(rows, RECORD_COLUMNS, key="records")


def show(session: Session, out: Output, hrn: str, type: str | None) -> None:
    records = session.resolve(hrn)
    chosen = [r for r in records if type is None or r.get("type") == type]
    out.put("records", chosen)
    for record in chosen:
        rows = [(k, _short(v)) for k, v in sorted(record.items()) if k != "gid"]
        out.table(rows, ("field", "value"))
        out.echo()


def register(session: Session, out: Output, fields: RecordFields) -> None:
    creds = [session.authority_credential(hrn_authority(fields.hrn))]
    gid = session.call_registry("Register", fields.to_wire(), creds)
    out.put("gid", gid)
    out.result(f"{fields.type} {fields.hrn}")


def update(session: Session, out: Output, fields: RecordFields) -> None:
    creds = session.write_credentials(fields.hrn, fields.type)
    session.call_registry("Update", fields.to_wire(), creds)
    if fields.type == "slice":
        session.credentials.forget(fields.hrn, "slice")  # new expiry: fetch a new one
    out.result(f"{fields.type} {fields.hrn}")


def remove(session: Session, out: Output, hrn: str, type: str, force: bool) -> None:
    creds = session.write_credentials(hrn, type)
    options = {"force": True} if force else {}
    session.call_registry("Remove", hrn, creds, type, options)
    session.credentials.forget(hrn, type)
    out.result(f"{type} {hrn}")


def gid(session: Session, out: Output, hrn: str | None, type: str, outfile: Path | None) -> None:
    """The user's own GID, or the GID of any record (`GetGids` needs a PI's rights; Resolve's
    `gid` field is used instead)."""
    if hrn is None or hrn == session.config.user:
        pem = session.gid.to_pem()
    else:
        records = session.resolve(hrn)
        found = [r for r in records if r.get("type") == type and r.get("gid")]
        if not found:
            raise BadArgs(f"no {type} record {hrn} with a GID")
        pem = found[0]["gid"]
    write_or_print(out, pem, outfile, "gid")


def delegate(session: Session, out: Output, *, target_hrn: str, target_type: str,
             to: GID, outfile: Path | None) -> None:
    """Delegate the user's credential over a slice (or the user) to `to`; write it."""
    parent = parse_credential(session.credential(target_hrn, target_type))
    delegated = delegate_credential(parent, to=to, signer_key=session.key, signer=session.gid)
    out.put("owner", delegated.owner_urn)
    out.put("expires", format_rfc3339(delegated.expires))
    write_or_print(out, delegated.xml, outfile, "credential")
    out.result(f"{target_type} {target_hrn} delegated to {to.urn}")


def resolve_gid(session: Session, who: str) -> GID:
    """A GID file, or the GID of a registered user/tool named by HRN."""
    path = Path(who)
    if path.is_file():
        return GID.from_pem(path.read_bytes())
    records = session.resolve(validate_hrn(who))
    for record in records:
        if record.get("gid"):
            return GID.from_pem(record["gid"])
    raise BadArgs(f"{who} is neither a GID file nor a registered name with a GID")


def trusted(session: Session, out: Output, save: bool) -> None:
    """The roots the registry trusts (all of them for its operators; for everyone else the
    root of the registry's own GID); with `save`, add them to the client's trusted roots."""
    registry = session.registry()
    try:
        certs = registry.call("get_trusted_certs", session.user_credential())
    except Forbidden:
        certs = registry.call("get_trusted_certs")
    rows = []
    for pem in certs:
        gid = GID.from_pem(pem)
        root = GID.from_certificate((gid.certificate, *gid.chain)[-1])
        saved = ""
        if save:
            saved = str(session.roots.write(root, f"{_file_name(root.hrn)}.gid"))
        rows.append((root.hrn, root.urn, format_rfc3339(root.not_after), saved))
    out.table(rows, ("hrn", "urn", "expires", "saved"), key="roots")


def _file_name(hrn: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in hrn)


def write_or_print(out: Output, text: str, outfile: Path | None, key: str) -> None:
    if outfile is None:
        out.put(key, text)
        out.echo(text.rstrip())
        return
    try:
        outfile.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadArgs(f"cannot write {outfile}: {exc.strerror}") from None
    out.put("file", str(outfile))
    out.echo(f"wrote {outfile}")


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_short(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_short(v) for v in value)
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."

