"""`make demo`: the whole story of two federated authorities on this machine.

Act 1: an authority `plc` with 8 nodes is initialised and served; its operator registers a PI;
the PI registers a user and a slice; the user, with `sfi`, looks at the resources, creates the
slice on 5 nodes, waits until it is ready, looks inside one sliver, adds a key, renews and
deletes it. Act 2: a second authority `ple` with 4 nodes peers with `plc`, and the same user
creates one slice across both. Act 3 (sfa/demo_omf.py): an OMF-enabled slice runs a two-node
experiment with `sfi exp run`. Every step runs the real `sfa` and `sfi` commands; the demo
exits non-zero as soon as a step fails, and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from sfa.demo_omf import act_three
from sfa.trust.gid import GID

BIN = Path(sys.executable).parent
READY_TIMEOUT = 60.0
STATUS_TIMEOUT = 60.0

INIT_SCRIPT = """#!/bin/sh
# The slice's init script: runs in every sliver as a real process under its limits.
{
  echo "hello from $SFA_SLIVER_URN"
  echo "on node $SFA_NODE_URN"
  grep -E 'Max (address space|processes|file size)' /proc/self/limits
} > "$HOME/init-output.txt"
"""


class DemoFailed(Exception):
    """A step of the demo did not do what it should."""


@dataclass
class Server:
    """One `sfa serve DIR` process and the URLs it announced."""

    process: subprocess.Popen[str]
    urls: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)


class Demo:
    """The steps, with their output, in one working directory."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.servers: list[Server] = []
        self.step_number = 0

    # --- running commands -------------------------------------------------------------------

    def step(self, title: str) -> None:
        self.step_number += 1
        print(f"\n==> {self.step_number}. {title}", flush=True)

    def run(self, program: str, *args: str, show: bool = True, ok: bool = True) -> str:
        command = [str(BIN / program), *args]
        print("$ " + " ".join([program, *(self._short(a) for a in args)]), flush=True)
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.work,
                              timeout=300, check=False)
        output = (done.stdout + done.stderr).rstrip()
        if show and output:
            print(_indent(output), flush=True)
        if ok and done.returncode != 0:
            raise DemoFailed(f"{program} {args[0]} exited {done.returncode}")
        return done.stdout

    def sfi(self, who: str, *args: str, show: bool = True) -> str:
        return self.run("sfi", "-d", str(self.work / who), *args, show=show)

    def sfi_json(self, who: str, *args: str) -> dict:
        return json.loads(self.run("sfi", "-d", str(self.work / who), "--json", *args,
                                   show=False))

    def _short(self, arg: str) -> str:
        return arg.replace(str(self.work) + os.sep, "")

    # --- servers ----------------------------------------------------------------------------

    def serve(self, directory: Path) -> Server:
        log = (self.work / f"{directory.name}-serve.log").open("w")
        process = subprocess.Popen([str(BIN / "sfa"), "serve", str(directory)], text=True,
                                   stdout=subprocess.PIPE, stderr=log, cwd=self.work,
                                   start_new_session=True)
        server = Server(process)
        self.servers.append(server)
        expected = {"registry", "aggregate"}
        deadline = time.monotonic() + READY_TIMEOUT
        assert process.stdout is not None
        while not expected <= set(server.urls) or len(server.nodes) < _node_count(directory):
            if time.monotonic() > deadline:
                raise DemoFailed(f"sfa serve {directory.name} did not get ready")
            line = process.stdout.readline()
            if not line:
                raise DemoFailed(f"sfa serve {directory.name} exited; see {log.name}")
            words = line.split()
            if words[:2] == ["ready", "nodemanager"] and len(words) == 4:
                server.nodes[words[2]] = words[3]
            elif words and words[0] == "ready" and len(words) == 3:
                server.urls[words[1]] = words[2]
        print(f"   sfa serve {directory.name}: registry {server.urls['registry']}, "
              f"aggregate {server.urls['aggregate']}, {len(server.nodes)} node managers",
              flush=True)
        return server

    def stop_servers(self) -> None:
        for server in self.servers:
            with suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in self.servers:
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()
        self.servers.clear()


def _indent(text: str) -> str:
    lines = text.splitlines()
    if len(lines) > 24:
        lines = [*lines[:20], f"... ({len(lines) - 22} more lines)", *lines[-2:]]
    return "\n".join("   " + line for line in lines)


def _node_count(directory: Path) -> int:
    nodes = directory / "nodes"
    return sum(1 for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else 0


def _sliver_dirs(deployment: Path) -> list[Path]:
    return sorted(deployment.glob("nodes/*/slivers/*"))


def _wait_ready(demo: Demo, who: str, slice_hrn: str, count: int) -> None:
    deadline = time.monotonic() + STATUS_TIMEOUT
    states: list[str] = []
    while time.monotonic() < deadline:
        report = demo.sfi_json(who, "status", slice_hrn)
        states = [row["state"] for row in report.get("slivers", [])]
        if len(states) >= count and all(s == "geni_ready" for s in states):
            print(f"   all {len(states)} slivers geni_ready", flush=True)
            return
        if any(s == "geni_failed" for s in states):
            raise DemoFailed(f"a sliver failed: {states}")
        time.sleep(0.5)
    raise DemoFailed(f"slivers not ready after {STATUS_TIMEOUT:.0f} s: {states}")


def _show_sliver(sliver: Path) -> None:
    slice_gid = GID.from_pem((sliver / "etc" / "slice.gid").read_bytes())
    node_gid = GID.from_pem((sliver / "etc" / "node.gid").read_bytes())
    print(f"   {sliver.relative_to(sliver.parents[4])}", flush=True)
    print(f"     etc/slice.gid: {slice_gid.urn} (issued by {slice_gid.issuer_cn})")
    print(f"     etc/node.gid:  {node_gid.urn} (issued by {node_gid.issuer_cn})")
    outputs = list(sliver.glob("home/*/init-output.txt"))
    if not outputs:
        raise DemoFailed(f"the init script wrote nothing in {sliver}")
    print(_indent("init script wrote: " + outputs[0].read_text().strip()), flush=True)


def _authorized_keys(sliver: Path) -> int:
    keys = next(sliver.glob("home/*/.ssh/authorized_keys"))
    return len([line for line in keys.read_text().splitlines() if line.strip()])


def act_one(demo: Demo) -> tuple[Path, Server]:
    work = demo.work
    plc = work / "plc"
    demo.step("An authority `plc` with 8 nodes: keys, GIDs, databases, node directories")
    demo.run("sfa", "init", str(plc), "--authority", "plc", "--nodes", "8",
             "--registry-port", "0", "--am-port", "0", "--nm-base-port", "0")
    demo.step("Serve it: registry, aggregate and 8 node managers, over TLS")
    server = demo.serve(plc)

    demo.step("The operator registers a PI of `plc`")
    demo.run("sfa", "admin", str(plc), "user", "add", "plc.pi", "--email", "pi@plc.example",
             "--pi-of", "plc", "--out", str(work / "pi-id"))
    root = str(plc / "trusted_roots" / "plc.gid")
    demo.sfi("pi", "config", "--registry", server.urls["registry"], "--user", "plc.pi",
             "--key", str(work / "pi-id.pkey"), "--trusted-root", root,
             "--aggregate", f"plc={server.urls['aggregate']}", show=False)

    demo.step("A user makes a key; the PI registers her and a slice for her")
    demo.sfi("alice", "config", "--new-key", "--user", "plc.alice")
    demo.sfi("pi", "register", "user", "plc.alice", "--key", str(work / "alice" / "user.pub"),
             "--email", "alice@plc.example")
    demo.sfi("pi", "register", "slice", "plc.demo", "--researcher", "plc.alice",
             "--description", "make demo")
    demo.sfi("alice", "config", "--registry", server.urls["registry"], "--trusted-root", root,
             "--aggregate", f"plc={server.urls['aggregate']}", show=False)
    demo.sfi("alice", "show", "plc.demo")

    demo.step("Alice looks at the resources and asks for 5 nodes with an init script")
    demo.sfi("alice", "resources")
    (work / "init.sh").write_text(INIT_SCRIPT)
    demo.sfi("alice", "rspec", "request", "--nodes", "5", "--init-script", "init.sh",
             "-o", "request.xml")
    demo.sfi("alice", "rspec", "show", "request.xml")

    demo.step("createslice: allocate, provision (tickets redeemed at 5 node managers), start")
    demo.sfi("alice", "createslice", "plc.demo", "request.xml")
    demo.step("Status until every sliver is ready")
    _wait_ready(demo, "alice", "plc.demo", 5)
    demo.sfi("alice", "nodelist", "plc.demo")

    demo.step("Inside one sliver: its GIDs and what its init script wrote")
    slivers = _sliver_dirs(plc)
    if len(slivers) != 5:
        raise DemoFailed(f"expected 5 sliver directories, found {len(slivers)}")
    _show_sliver(slivers[0])

    demo.step("addkey: a colleague's key reaches every sliver")
    demo.sfi("bob", "config", "--new-key", "--user", "plc.bob", show=False)
    before = _authorized_keys(slivers[0])
    demo.sfi("alice", "addkey", "plc.demo", str(work / "bob" / "user.pub"))
    after = _authorized_keys(slivers[0])
    print(f"   authorized_keys in {slivers[0].name}: {before} -> {after} keys", flush=True)
    if after != before + 1:
        raise DemoFailed("addkey did not add the key to the sliver")

    demo.step("Renew the slice for two more days")
    demo.sfi("alice", "renewslice", "plc.demo", "+2d")
    demo.sfi("alice", "expirations", "plc.demo")

    demo.step("deleteslice: every sliver stops and its directory goes")
    demo.sfi("alice", "deleteslice", "plc.demo")
    left = _sliver_dirs(plc)
    if left:
        raise DemoFailed(f"sliver directories left behind: {left}")
    print("   no sliver directory left on any node", flush=True)
    return plc, server


def act_two(demo: Demo, plc: Path, plc_server: Server) -> None:
    work = demo.work
    ple = work / "ple"
    demo.step("Act 2: a second authority `ple` with 4 nodes, run independently")
    demo.run("sfa", "init", str(ple), "--authority", "ple", "--nodes", "4",
             "--registry-port", "0", "--am-port", "0", "--nm-base-port", "0")
    ple_server = demo.serve(ple)

    demo.step("Peering: each trusts the other's root and knows its registry and aggregate")
    demo.run("sfa", "admin", str(plc), "trust", "add", str(ple / "trusted_roots" / "ple.gid"))
    demo.run("sfa", "admin", str(ple), "trust", "add", str(plc / "trusted_roots" / "plc.gid"))
    demo.run("sfa", "admin", str(plc), "peer", "add", "ple",
             "--registry", ple_server.urls["registry"],
             "--aggregate", ple_server.urls["aggregate"])
    demo.run("sfa", "admin", str(ple), "peer", "add", "plc",
             "--registry", plc_server.urls["registry"],
             "--aggregate", plc_server.urls["aggregate"])
    demo.sfi("alice", "config", "--trusted-root", str(ple / "trusted_roots" / "ple.gid"),
             "--aggregate", f"ple={ple_server.urls['aggregate']}", show=False)

    demo.step("Alice (of plc) creates one slice on 3 plc nodes and 3 ple nodes")
    demo.sfi("alice", "resources")
    demo.sfi("alice", "rspec", "request", "--nodes", "6", "--init-script", "init.sh",
             "-o", "federated.xml")
    demo.sfi("alice", "createslice", "plc.demo", "federated.xml")
    _wait_ready(demo, "alice", "plc.demo", 6)

    demo.step("Each sliver: slice.gid from plc, node.gid from its own authority")
    slivers = _sliver_dirs(plc) + _sliver_dirs(ple)
    homes = {"plc": len(_sliver_dirs(plc)), "ple": len(_sliver_dirs(ple))}
    print(f"   slivers at plc: {homes['plc']}, at ple: {homes['ple']}", flush=True)
    if homes["plc"] < 1 or homes["ple"] < 1:
        raise DemoFailed("the slice does not span both authorities")
    for sliver in slivers:
        _show_sliver(sliver)
        slice_gid = GID.from_pem((sliver / "etc" / "slice.gid").read_bytes())
        if slice_gid.urn != "urn:publicid:IDN+plc+slice+demo":
            raise DemoFailed(f"unexpected slice.gid {slice_gid.urn}")

    demo.step("deleteslice across both authorities")
    demo.sfi("alice", "deleteslice", "plc.demo")
    if _sliver_dirs(plc) or _sliver_dirs(ple):
        raise DemoFailed("sliver directories left behind")
    print("   no sliver directory left at plc or ple", flush=True)


@contextmanager
def _workspace(keep: bool) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="sfa-demo-"))
    # Sliver processes may run under their own uids: the path down to slivers/ must be
    # searchable by them.
    work.chmod(0o755)
    try:
        yield work
    finally:
        if keep:
            print(f"\n(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] = ()) -> int:
    keep = "--keep" in argv
    started = time.monotonic()
    with _workspace(keep) as work:
        demo = Demo(work)
        try:
            plc, server = act_one(demo)
            act_two(demo, plc, server)
            act_three(demo)
        except (DemoFailed, subprocess.TimeoutExpired) as exc:
            print(f"\nDEMO FAILED at step {demo.step_number}: {exc}", file=sys.stderr)
            return 1
        finally:
            demo.stop_servers()
    print(f"\nDemo finished: every step succeeded in {time.monotonic() - started:.1f} s; "
          "servers stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
