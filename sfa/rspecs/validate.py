"""Validate an RSpec against the official schemas (and the extension schemas it names).

The schemas come from a local directory holding an OASIS `catalog.xml` (the shared
`schemas/` folder) or from that catalog file itself: public schema URLs are mapped to local
files, never fetched. The RSpec's own schema is chosen by its namespace and `type`; extension
schemas by the document's `xsi:schemaLocation` pairs; our own extension always uses the
packaged XSD. Extensions without a local schema stay lax (the GENI schemas allow them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from sfa.errors import BadArgs, SfaError
from sfa.rspecs import extension as ext
from sfa.rspecs.model import GENI_NS, PG2_NS, RSPEC_TYPES, XSI_NS, geni_schema_url
from sfa.safexml import parse_xml

_CATALOG_NS = "{urn:oasis:names:tc:entity:xmlns:xml:catalog}"
_XS = "http://www.w3.org/2001/XMLSchema"


@dataclass(frozen=True)
class ValidationError:
    """One problem found in a document: where (line, 0 when unknown) and what."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Catalog:
    """The URL-to-file rules of an OASIS XML catalog (exact and prefix rewrites)."""

    base: Path
    exact: tuple[tuple[str, str], ...]
    prefixes: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, location: str | Path) -> Catalog:
        """A catalog from its file, or from a directory holding `catalog.xml`."""
        path = Path(location)
        if path.is_dir():
            path = path / "catalog.xml"
        if not path.is_file():
            raise BadArgs(f"no XML catalog at {path}; point at the shared schemas directory")
        return _load_catalog(str(path.resolve()))

    def resolve(self, url: str) -> Path | None:
        """The local file for a public schema URL, or None; never outside the catalog's tree."""
        target = dict(self.exact).get(url)
        if target is None:
            for start, rewrite in self.prefixes:
                if url.startswith(start):
                    target = rewrite + url[len(start):]
                    break
        if target is None:
            return None
        path = (self.base / target).resolve()
        if not path.is_relative_to(self.base) or not path.is_file():
            return None
        return path


@functools.lru_cache(maxsize=8)
def _load_catalog(path: str) -> Catalog:
    root = parse_xml(Path(path).read_bytes(), what="XML catalog")
    exact, prefixes = [], []
    for entry in root:
        tag = entry.tag
        if tag in (_CATALOG_NS + "system", _CATALOG_NS + "uri"):
            exact.append((entry.get("systemId") or entry.get("name") or "", entry.get("uri", "")))
        elif tag in (_CATALOG_NS + "rewriteSystem", _CATALOG_NS + "rewriteURI"):
            start = entry.get("systemIdStartString") or entry.get("uriStartString") or ""
            prefixes.append((start, entry.get("rewritePrefix", "")))
    return Catalog(Path(path).parent, tuple(exact), tuple(prefixes))


def validate(document: str | bytes, schemas: str | Path) -> list[ValidationError]:
    """Every schema error of `document` with its line; [] when it is valid."""
    try:
        root = parse_xml(document, what="RSpec", max_bytes=200 * 1024 * 1024)
    except SfaError as exc:
        return [ValidationError(0, exc.message)]
    catalog = Catalog.load(schemas)
    imports = _schema_imports(root, catalog)
    if isinstance(imports, ValidationError):
        return [imports]
    schema = _compiled_schema(imports)
    if schema.validate(root.getroottree()):
        return []
    return [ValidationError(entry.line, entry.message) for entry in schema.error_log]


def _schema_imports(
    root: etree._Element, catalog: Catalog
) -> tuple[tuple[str, str], ...] | ValidationError:
    qname = etree.QName(root)
    if qname.localname != "rspec" or qname.namespace not in (GENI_NS, PG2_NS):
        return ValidationError(root.sourceline or 0, f"not a GENI v3 RSpec: <{root.tag}>")
    rspec_type = (root.get("type") or "").strip()
    if rspec_type not in RSPEC_TYPES:
        return ValidationError(root.sourceline or 0, f"unknown RSpec type {rspec_type!r}")
    main_url = geni_schema_url(rspec_type, qname.namespace)
    main = catalog.resolve(main_url)
    if main is None:
        return ValidationError(0, f"no local schema for {main_url} in the catalog")
    imports = {qname.namespace: str(main), ext.SFA_EXT_NS: str(ext.sfa_ext_schema_path())}
    words = (root.get(f"{{{XSI_NS}}}schemaLocation") or "").split()
    for namespace, url in zip(words[0::2], words[1::2], strict=False):
        if namespace in imports:
            continue
        local = catalog.resolve(url)
        if local is not None and _loads_alone(str(local)):
            imports[namespace] = str(local)
    return tuple(sorted(imports.items()))


@functools.lru_cache(maxsize=64)
def _loads_alone(path: str) -> bool:
    try:
        etree.XMLSchema(etree.parse(path, etree.XMLParser(no_network=True)))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError):
        return False
    return True


@functools.lru_cache(maxsize=32)
def _compiled_schema(imports: tuple[tuple[str, str], ...]) -> etree.XMLSchema:
    wrapper = etree.Element(f"{{{_XS}}}schema", nsmap={"xs": _XS})
    for namespace, path in imports:
        etree.SubElement(wrapper, f"{{{_XS}}}import",
                         namespace=namespace, schemaLocation=Path(path).as_uri())
    return etree.XMLSchema(wrapper)
