"""The schema validation helper and our extension's XSD."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfa.errors import BadArgs
from sfa.rspecs.extension import omf_requested
from sfa.rspecs.model import RSpec
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.validate import Catalog, validate
from sfa.rspecs.writer import write_rspec


def test_reports_each_error_with_its_line(samples_dir: Path, schemas_dir: Path) -> None:
    path = samples_dir / "rspecs/manifest/KDahlgren_ceph-deploy-popper__geni__manifest.xml"
    errors = validate(path.read_bytes(), schemas_dir)
    assert [e.line for e in errors] == [8, 21, 34]
    assert all("ipv4" in e.message for e in errors)


def test_valid_samples_have_no_errors(samples_dir: Path, schemas_dir: Path) -> None:
    for name in ("ad/GENI-NSF_geni-tools__src__gcf__geni__am__amapi2-ad.xml",
                 "request/GENI-NSF_geni-tools__src__gcf__geni__am__amapi2-request.xml",
                 "manifest/GENI-NSF_geni-tools__src__gcf__geni__am__amapi2-manifest.xml"):
        assert validate((samples_dir / "rspecs" / name).read_bytes(), schemas_dir) == []


def test_catalog_file_works_like_the_directory(ad_model: RSpec, schemas_dir: Path) -> None:
    text = write_rspec(ad_model)
    assert validate(text, schemas_dir / "catalog.xml") == []


def test_our_extension_is_checked_by_our_xsd(ad_model: RSpec, schemas_dir: Path) -> None:
    text = write_rspec(ad_model)
    bad = text.replace('cpu_share="100"', 'cpu_share="lots"', 1)
    errors = validate(bad, schemas_dir)
    assert len(errors) == 1 and "cpu_share" in errors[0].message
    unknown = text.replace("<sfa:free ", "<sfa:spare ", 1)
    assert any("spare" in e.message for e in validate(unknown, schemas_dir))


def test_the_enforced_knobs_are_a_list_of_names_in_our_xsd(ad_model: RSpec,
                                                            schemas_dir: Path) -> None:
    ad_model.nodes[0].resources.enforced = ("cpu_share", "disk_mb")  # type: ignore[union-attr]
    text = write_rspec(ad_model)
    assert validate(text, schemas_dir) == []
    bad = text.replace('enforced="cpu_share disk_mb"', 'enforced="cpu share 1%"', 1)
    assert any("enforced" in e.message for e in validate(bad, schemas_dir))


def test_opstate_is_checked_by_its_xsd(ad_model: RSpec, schemas_dir: Path) -> None:
    bad = write_rspec(ad_model).replace(' start="geni_notready"', "")
    errors = validate(bad, schemas_dir)
    assert len(errors) == 1 and "start" in errors[0].message


def test_not_xml_is_one_error(schemas_dir: Path) -> None:
    errors = validate("<rspec", schemas_dir)
    assert len(errors) == 1 and errors[0].line == 0


def test_catalog_never_resolves_outside_its_tree(schemas_dir: Path) -> None:
    catalog = Catalog.load(schemas_dir)
    assert catalog.resolve("http://www.geni.net/resources/rspec/3/ad.xsd") is not None
    assert catalog.resolve("http://www.geni.net/resources/rspec/3/../../../../etc/passwd") is None
    assert catalog.resolve("http://example.org/nothing.xsd") is None


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadArgs) as info:
        Catalog.load(tmp_path)
    assert "catalog" in info.value.message


OMF_REQUEST = ('<rspec xmlns="http://www.geni.net/resources/rspec/3" '
               'xmlns:sfa="http://sfa.dev/resources/rspec/ext/sfa/1" type="request">'
               '<node client_id="n0" exclusive="false"/><sfa:omf enabled="{}"/></rspec>')


def test_the_omf_opt_in_is_checked_by_our_xsd_and_read(schemas_dir: Path) -> None:
    assert validate(OMF_REQUEST.format("true"), schemas_dir) == []
    assert any("enabled" in e.message for e in validate(OMF_REQUEST.format("maybe"),
                                                         schemas_dir))
    assert omf_requested(read_rspec(OMF_REQUEST.format("true"), "request"))
    assert not omf_requested(read_rspec(OMF_REQUEST.format("false"), "request"))
    assert not omf_requested(read_rspec(OMF_REQUEST.replace('<sfa:omf enabled="{}"/>', ""),
                                        "request"))
