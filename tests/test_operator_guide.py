"""docs/operator-guide.md is real: every `$ sfa ...` line of its console blocks runs, in order,
in a temporary directory standing for /srv/sfa, with every port 0. Each command must exit 0,
or 1 when the guide shows a `CODE: message` line, and print the lines the guide shows
(`...` matches anything; times and hex digests may differ). `$ sfa serve DIR &` and
`$ sfa nodemanager NODEDIR ... &` run in the background until their shown lines appear;
`$ kill %N` stops job N with SIGTERM; no process is left behind."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sfa.cli.main import main
from sfa.errors import GeniCode

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "operator-guide.md"
SFA = Path(sys.executable).parent / "sfa"
GUIDE_ROOT = "/srv/sfa"
CODE_LINE = re.compile(rf"^({'|'.join(code.name for code in GeniCode)}): ")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
HEX = re.compile(r"\b[0-9a-f]{16,}\b")
URL = re.compile(r"https://[\w.-]+:\d+/")
PORT_OPTIONS = ("--registry-port", "--am-port", "--sm-port", "--nm-base-port")
READY_TIMEOUT = 30.0


@dataclass
class Step:
    command: str
    shown: list[str] = field(default_factory=list)


def guide_steps(text: str) -> list[Step]:
    """The `$ ...` lines of every console block and the output lines shown under each."""
    steps: list[Step] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```console"
        elif inside and line.startswith("$ "):
            steps.append(Step(line[2:]))
        elif inside and steps and line.strip():
            steps[-1].shown.append(line)
    return steps


def _pattern(shown: str) -> re.Pattern[str]:
    """A guide line as a regex over a normalised output line."""
    parts = [re.escape(part) for part in _normalise(shown).split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def _normalise(line: str) -> str:
    return HEX.sub("<hex>", TIME.sub("<time>", line.rstrip()))


@dataclass
class Job:
    words: list[str]
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self.changed:
            done = self.changed.wait_for(
                lambda: len(self.lines) >= count or self.process.poll() is not None,
                timeout=READY_TIMEOUT)
            assert done and len(self.lines) >= count, f"{self.words}: {self.lines}"
            return list(self.lines[:count])


class Session:
    """Runs the guide's commands in `work`, mapping its default URLs to the real ones."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.urls: dict[str, str] = {}  # guide URL -> real URL
        self.jobs: list[Job] = []

    def run(self, step: Step) -> None:
        words = shlex.split(step.command)
        if words[0] == "kill":
            self.kill(step)
            return
        assert words[0] == "sfa", step.command
        args = [self._real(word) for word in words[1:]]
        if args[0] == "init":
            args = _any_ports(args)
        if args[-1] == "&":
            self.background(step, args[:-1])
            return
        result = CliRunner().invoke(main, args)
        output = self._guide_view(result.output).splitlines()
        expected = 1 if any(CODE_LINE.match(line) for line in step.shown) else 0
        assert result.exit_code == expected, f"{step.command}\n{result.output}"
        assert "Traceback" not in result.output
        _assert_shown(step, output)

    def background(self, step: Step, args: list[str]) -> None:
        process = subprocess.Popen([str(SFA), *args], cwd=self.work, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        job = Job(args, process)
        self.jobs.append(job)
        threading.Thread(target=job.read, daemon=True).start()
        got = job.wait_for(len(step.shown))
        for shown, line in zip(step.shown, got, strict=True):
            self._learn_url(shown, line)
        _assert_shown(step, [self._guide_view(line) for line in got])

    def kill(self, step: Step) -> None:
        job = self.running()[int(step.command.split("%")[1]) - 1]
        os.killpg(job.process.pid, signal.SIGTERM)
        code = job.process.wait(timeout=20)
        assert code == 0, (job.words, code)

    def running(self) -> list[Job]:
        return [job for job in self.jobs if job.process.poll() is None]

    def stop_all(self) -> None:
        for job in self.running():
            os.killpg(job.process.pid, signal.SIGTERM)
        for job in self.jobs:
            try:
                job.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(job.process.pid, signal.SIGKILL)
                job.process.wait()

    def _learn_url(self, shown: str, line: str) -> None:
        guide_url, real_url = URL.search(shown), URL.search(line)
        if guide_url and real_url and shown.startswith("ready "):
            assert shown[:guide_url.start()] == line[:real_url.start()], (shown, line)
            self.urls[guide_url.group()] = real_url.group()

    def _real(self, word: str) -> str:
        for guide, real in self.urls.items():
            word = word.replace(guide, real)
        return word.replace(GUIDE_ROOT, str(self.work))

    def _guide_view(self, text: str) -> str:
        for guide, real in self.urls.items():
            text = text.replace(real, guide)
        return text.replace(str(self.work), GUIDE_ROOT)


def _any_ports(args: list[str]) -> list[str]:
    """`sfa init` with every port 0 (the `--sm-port` option kept, as it enables the service)."""
    out: list[str] = []
    skip = False
    for word in args:
        if skip:
            out.append("0")
            skip = False
            continue
        out.append(word)
        skip = word in PORT_OPTIONS
    for option in ("--registry-port", "--am-port", "--nm-base-port"):
        if option not in out:
            out += [option, "0"]
    return out


def _assert_shown(step: Step, output: list[str]) -> None:
    normal = [_normalise(line) for line in output]
    for shown in step.shown:
        pattern = _pattern(shown)
        assert any(pattern.match(line) for line in normal), \
            f"$ {step.command}: {shown!r} missing from\n" + "\n".join(output)


@pytest.fixture
def session(tmp_path: Path, schemas_dir: Path, samples_dir: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    request = samples_dir / "rspecs" / "request" / \
        "GENI-NSF_geni-tools__src__gcf__geni__am__amapi2-request.xml"
    (tmp_path / "request.xml").symlink_to(request)
    (tmp_path / "schemas").symlink_to(schemas_dir)
    monkeypatch.chdir(tmp_path)
    runner = Session(tmp_path)
    yield runner
    runner.stop_all()


def test_guide_covers_every_operator_command() -> None:
    ran = {" ".join(shlex.split(step.command)[1:2]) for step in guide_steps(GUIDE.read_text())}
    assert set(main.list_commands(click.Context(main))) <= ran


def test_operator_guide_examples_run(session: Session) -> None:
    steps = guide_steps(GUIDE.read_text())
    assert len(steps) > 30
    for step in steps:
        if step.command.startswith("sfa trust gid verify carol.gid --roots lab-roots"):
            (session.work / "lab-roots").mkdir()
            (session.work / "lab-roots" / "lab.gid").write_bytes(
                (session.work / "lab" / "authority.gid").read_bytes())
        session.run(step)
    jobs = list(session.jobs)
    session.stop_all()
    assert all(job.process.returncode == 0 for job in jobs if job.words[0] == "serve")
    assert all(job.lines[-1] == "stopped" for job in jobs if job.words[0] == "serve")
