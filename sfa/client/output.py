"""How sfi shows results: per-node `Success on X` / `Error on X: reason` lines, tables,
a progress bar only on a terminal, or one JSON document with `--json`."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import click
from tabulate import tabulate

from sfa.errors import SfaError


@dataclass(frozen=True)
class TargetResult:
    """The result on one node, sliver or aggregate."""

    target: str
    error: str = ""
    code: str = ""
    where: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def line(self) -> str:
        if self.ok:
            return f"Success on {self.target}"
        prefix = f"{self.code}: " if self.code else ""
        return f"Error on {self.target}: {prefix}{self.error}"

    def to_json(self) -> dict[str, Any]:
        data = {"target": self.target, "ok": self.ok, "error": self.error, "code": self.code}
        if self.where:
            data["aggregate"] = self.where
        return data


@dataclass
class Output:
    """Collects what one command reports; `finish` prints JSON (if asked) and the exit code."""

    as_json: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    results: list[TargetResult] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def echo(self, text: str = "") -> None:
        if not self.as_json:
            click.echo(text, file=self.stream)

    def result(self, target: str, error: str = "", code: str = "", where: str = "") -> None:
        """Record (and print) the result on one target."""
        entry = TargetResult(target, error, code, where)
        with self._lock:
            self.results.append(entry)
        self.echo(entry.line())

    def failure(self, target: str, exc: SfaError, where: str = "") -> None:
        self.result(target, exc.message, exc.code.name, where)

    def error(self, exc: SfaError, context: str = "") -> None:
        """A failure not tied to one node: `CODE: message` on stderr (or in the JSON)."""
        message = f"{context}: {exc.message}" if context else exc.message
        with self._lock:
            self.errors.append({"code": exc.code.name, "message": message})
        if not self.as_json:
            click.echo(f"{exc.code.name}: {message}", err=True)

    def table(self, rows: Sequence[Sequence[Any]], headers: Sequence[str],
              key: str | None = None) -> None:
        """A table on the terminal; with --json, the rows as objects under `key`."""
        if key is not None:
            self.data[key] = [dict(zip(headers, row, strict=False)) for row in rows]
        if rows:
            self.echo(tabulate(rows, headers=list(headers)))
        else:
            self.echo("(none)")

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(not r.ok for r in self.results)

    def finish(self) -> int:
        """Print the JSON document when asked; the exit code (1 when anything failed)."""
        if self.as_json:
            document = {"ok": not self.failed, **self.data,
                        "results": [r.to_json() for r in self.results],
                        "errors": self.errors}
            click.echo(json.dumps(document, indent=2, sort_keys=True, default=str),
                       file=self.stream)
        return 1 if self.failed else 0

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Any]:
        """A progress bar on a terminal (never in JSON mode or into a pipe); yields a
        thread-safe `advance()`."""
        if self.as_json or total < 2 or not self.stream.isatty():
            yield lambda: None
            return
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            lock = threading.Lock()

            def advance() -> None:
                with lock:
                    bar.update(1)

            yield advance
