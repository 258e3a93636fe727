"""sfi's parts without servers: times, sfi.toml, output modes, fan-out, error mapping, and the
installed `sfi` console script."""

from __future__ import annotations

import io
import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from sfa.client.config import (
    AggregateEntry,
    ClientConfig,
    load_config,
    save_config,
    with_aggregate,
)
from sfa.client.output import Output
from sfa.errors import BadArgs, GeniCode, TimedOut
from sfa.rpc.transport import _TimedTransport, fan_out, transport_error


def test_config_round_trip_and_refusals(tmp_path: Path) -> None:
    config = ClientConfig(directory=tmp_path, registry="https://r:1/", user="plc.a\\.b",
                          key="k.pem", aggregates={"x": AggregateEntry("https://x:2/", 2)})
    config = with_aggregate(config, 'we"ird=https://y:3/', 3)
    save_config(config)
    assert load_config(tmp_path) == config
    assert load_config(tmp_path).key_path == tmp_path / "k.pem"
    with pytest.raises(BadArgs):
        with_aggregate(config, "sm=https://z/", 3)
    (tmp_path / "sfi.toml").write_text('registry = "https://r/"\nsurprise = 1\n')
    with pytest.raises(BadArgs, match="unknown keys"):
        load_config(tmp_path)
    assert load_config(tmp_path / "absent") == ClientConfig(directory=tmp_path / "absent")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_output_text_json_and_progress_only_on_a_terminal(capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    piped = io.StringIO()
    out = Output(stream=piped)
    with out.progress(5, "x") as advance:
        advance()
    out.result("node1")
    out.result("node2", "disk full", "ERROR")
    assert piped.getvalue() == "Success on node1\nError on node2: ERROR: disk full\n"
    assert capsys.readouterr().err == ""  # no bar into a pipe
    assert out.finish() == 1
    tty = Output(stream=_Tty())
    with tty.progress(3, "createslice") as advance:
        for _ in range(3):
            advance()
    assert "createslice" in capsys.readouterr().err
    document = io.StringIO()
    quiet = Output(as_json=True, stream=document)
    quiet.result("node1")
    quiet.table([("a", 1)], ("k", "v"), key="rows")
    assert quiet.finish() == 0
    assert json.loads(document.getvalue()) == {
        "ok": True, "rows": [{"k": "a", "v": 1}], "errors": [],
        "results": [{"target": "node1", "ok": True, "error": "", "code": ""}]}


def test_fan_out_keeps_order_and_errors_apart() -> None:
    def work(n: int) -> int:
        if n == 3:
            raise TimedOut("slow")
        return n * n

    outcomes = fan_out(work, range(6), workers=4)
    assert [o.item for o in outcomes] == list(range(6))
    assert [o.value for o in outcomes if o.ok] == [0, 1, 4, 16, 25]
    assert outcomes[3].error is not None and outcomes[3].error.code == GeniCode.TIMEDOUT


def test_transport_errors_are_geni_codes() -> None:
    url = "https://h:1/"
    assert transport_error(url, ConnectionRefusedError()).code == GeniCode.UNAVAILABLE
    assert transport_error(url, TimeoutError()).code == GeniCode.TIMEDOUT
    assert transport_error(url, ssl.SSLError(1, "bad")).code == GeniCode.RPCERROR
    assert transport_error(url, ValueError("x")).code == GeniCode.RPCERROR


def test_installed_console_script(tmp_path: Path) -> None:
    sfi = Path(sys.executable).with_name("sfi")
    done = subprocess.run([str(sfi), "--dir", str(tmp_path), "--json", "version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    error = json.loads(done.stdout)["errors"][0]
    assert error["code"] == "BADARGS" and "sfi config --registry" in error["message"]


def test_an_unexpected_error_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from sfa.client.cli import main  # noqa: PLC0415

    (tmp_path / "sfi.toml").write_text('registry = "https://127.0.0.1:1/"\nuser = "plc.a"\n'
                                       f'key = "{tmp_path / "k.pem"}"\n')
    (tmp_path / "k.pem").write_text("not a key")
    result = CliRunner().invoke(main, ["--dir", str(tmp_path), "gid"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and result.output.split(":")[0] in (
        "BADARGS", "ERROR")


class _Reply(io.BytesIO):
    """What parse_response reads: a body and its headers (an http.client response's surface)."""

    def getheader(self, name: str, default: str = "") -> str:
        return default


def test_replies_go_through_the_hardened_xml_path() -> None:
    """A server's reply with a DTD in UTF-16 is refused before expat sees it (item 27)."""
    transport = _TimedTransport(ssl.create_default_context(), 5.0)
    bomb = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
            "<methodResponse><params><param><value>&a;</value></param></params>"
            "</methodResponse>")
    with pytest.raises(BadArgs, match="found before parsing"):
        transport.parse_response(_Reply(bomb.encode("utf-16")))
    plain = ("<methodResponse><params><param><value><string>ok</string></value></param>"
             "</params></methodResponse>")
    assert transport.parse_response(_Reply(plain.encode("utf-16"))) == ("ok",)


def test_cache_files_written_by_many_threads_at_once_end_whole_and_private(
        tmp_path: Path) -> None:
    """sfi saves one slice credential from several aggregate threads; none may fail."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from sfa.client.cache import _write_private  # noqa: PLC0415

    target = tmp_path / "cache" / "slice-plc.demo.cred"
    texts = [f"<credential n='{i}'/>" * 200 for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda text: _write_private(target, text), texts * 4))
    assert target.read_text(encoding="utf-8") in texts
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left
