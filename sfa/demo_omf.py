"""`make demo`, act 3: an OMF-enabled slice runs a two-node experiment.

An authority `lab` with 2 nodes and Prosody (`sfa init --xmpp`) is served; its PI makes a
slice with `sfi createslice --omf`, the node managers start an RC in each sliver, and
`sfi exp run` has one node receive what the other sends over loopback. Skipped, saying so,
when Prosody is not installed.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfa.demo import Demo

# The receivers listen on 127.0.0.<20 + their index in the group>; sender i sends to receiver i.
RECEIVER = (
    "import os, socket\n"
    "address = '127.0.0.%d' % (20 + int(os.environ['OMF_INDEX']))\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((address, int(os.environ['PORT']))); s.listen(); s.settimeout(30)\n"
    "c, _ = s.accept(); data = b''\n"
    "while chunk := c.recv(4096): data += chunk\n"
    "print(os.environ['OMF_NODE'], 'received:', data.decode())\n"
)
SENDER = (
    "import os, socket, time\n"
    "address = '127.0.0.%d' % (20 + int(os.environ['OMF_INDEX']))\n"
    "end = time.monotonic() + 20\n"
    "while True:\n"
    "    try: c = socket.create_connection((address, int(os.environ['PORT']))); break\n"
    "    except OSError:\n"
    "        if time.monotonic() > end: raise\n"
    "        time.sleep(0.05)\n"
    "c.sendall(('hello from ' + os.environ['OMF_NODE']).encode()); c.close()\n"
    "print('sent to', address)\n"
)


def experiment_description(port: int, slice_hrn: str = "lab.omfdemo",
                           receivers: Sequence[str] = ("lab.node1",),
                           senders: Sequence[str] = ("lab.node2",)) -> str:
    """A senders/receivers experiment on loopback (TOML, docs/omf.md)."""

    def toml(value: object) -> str:
        return json.dumps(value)  # JSON strings and lists of them are valid TOML

    return f"""# An OMF experiment description (docs/omf.md)
[experiment]
slice = {toml(slice_hrn)}
name = "pingpong"
timeout_seconds = 60

[groups]
receivers = {toml(list(receivers))}
senders = {toml(list(senders))}

[properties.receivers]
PORT = "{port}"

[properties.senders]
PORT = "{port}"

[[step]]
group = "receivers"
app = "listen"
command = ["python3", "-c", {toml(RECEIVER)}]
wait = "started"

[[step]]
group = "senders"
app = "send"
command = ["python3", "-c", {toml(SENDER)}]

[[step]]
wait_for = "listen"
"""


def free_loopback_port() -> int:
    """A TCP port free on the receivers' first address right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.20", 0))
        return int(probe.getsockname()[1])


def act_three(demo: Demo) -> None:
    from sfa.demo import DemoFailed, _wait_ready  # noqa: PLC0415 - the demo's own helpers

    demo.step("Act 3: OMF experiment control over XMPP pubsub")
    if shutil.which("prosody") is None:
        print("   SKIPPED: prosody is not installed (apt-get install prosody; "
              "`make tools` does it as root)", flush=True)
        return
    work = demo.work
    lab = work / "lab"
    demo.run("sfa", "init", str(lab), "--authority", "lab", "--nodes", "2", "--xmpp",
             "--registry-port", "0", "--am-port", "0", "--nm-base-port", "0")
    server = demo.serve(lab)
    print(f"   Prosody runs as a child of sfa serve at {server.urls.get('xmpp', '?')}",
          flush=True)
    demo.run("sfa", "admin", str(lab), "user", "add", "lab.pi", "--email", "pi@lab.example",
             "--pi-of", "lab", "--out", str(work / "labpi-id"))
    demo.sfi("labpi", "config", "--registry", server.urls["registry"], "--user", "lab.pi",
             "--key", str(work / "labpi-id.pkey"),
             "--trusted-root", str(lab / "trusted_roots" / "lab.gid"),
             "--aggregate", f"lab={server.urls['aggregate']}", show=False)
    demo.sfi("labpi", "register", "slice", "lab.omfdemo", "--researcher", "lab.pi")

    demo.step("createslice --omf: 2 slivers, their /OMF nodes, an RC started in each")
    demo.sfi("labpi", "rspec", "request", "--nodes", "2", "-o", "omf-request.xml")
    demo.sfi("labpi", "createslice", "--omf", "lab.omfdemo", "omf-request.xml")
    _wait_ready(demo, "labpi", "lab.omfdemo", 2)

    demo.step("sfi exp run: node1 receives what node2 sends, outputs collected")
    (work / "pingpong.toml").write_text(experiment_description(free_loopback_port()))
    output = demo.sfi("labpi", "exp", "run", "pingpong.toml", "--out", "omf-out")
    if "received: hello from lab.node2" not in output:
        raise DemoFailed("the receiver did not report what the sender sent")
    saved = sorted(p.relative_to(work) for p in (work / "omf-out").rglob("*.stdout"))
    print("   saved: " + ", ".join(str(p) for p in saved), flush=True)

    demo.step("deleteslice: slivers, /OMF nodes and RCs go")
    demo.sfi("labpi", "deleteslice", "lab.omfdemo")
