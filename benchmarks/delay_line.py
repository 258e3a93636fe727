"""A wide-area link emulator in user space: pairs of TUN devices, packets copied between them
after a delay (± uniform jitter) and dropped with a probability, each direction on its own.

It stands in for `tc qdisc ... netem` where the kernel lacks sch_netem (this VM's kernel is
built without it and without module support). Each direction is a FIFO, like one path: a
packet never overtakes the one before it (jitter stretches the queue instead of reordering).
A direction holds at most QUEUE_LIMIT packets (netem's default limit); more are dropped.

    python benchmarks/delay_line.py SPEC_JSON
        SPEC_JSON: {"seed": 1, "links": [{"a": "ifname", "b": "ifname", "delay": 0.04,
                    "jitter": 0.005, "loss": 0.01}, ...]}   (seconds, probability)

Creates the TUN devices (in the caller's network namespace), prints "ready" and copies until
its standard input closes (so it never outlives the harness that started it) or SIGTERM.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import os
import random
import select
import struct
import sys
import time
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
QUEUE_LIMIT = 1000
MAX_PACKET = 65_536


@dataclass(frozen=True)
class Direction:
    """One way of one link: packets read from `source` are written to `sink` later."""

    source: int
    sink: int
    delay: float
    jitter: float
    loss: float


def open_tun(name: str) -> int:
    """A non-blocking TUN device (layer 3, no packet info header); it vanishes with the fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def directions(links: list[dict[str, object]]) -> list[Direction]:
    result = []
    for link in links:
        a, b = open_tun(str(link["a"])), open_tun(str(link["b"]))
        shape = (float(link["delay"]), float(link["jitter"]),  # type: ignore[arg-type]
                 float(link["loss"]))  # type: ignore[arg-type]
        result += [Direction(a, b, *shape), Direction(b, a, *shape)]
    return result


def run(ways: list[Direction], rng: random.Random, stop_fd: int) -> None:
    by_source = {way.source: way for way in ways}
    poller = select.poll()
    for fd in (*by_source, stop_fd):
        poller.register(fd, select.POLLIN)
    queue: list[tuple[float, int, int, bytes]] = []  # due, sequence, sink, packet
    last_due = {fd: 0.0 for fd in by_source}
    queued = {fd: 0 for fd in by_source}
    sequence = 0
    while True:
        wait = None if not queue else max(0, int((queue[0][0] - time.monotonic()) * 1000) + 1)
        for fd, _ in poller.poll(wait):
            if fd == stop_fd:
                return
            way = by_source[fd]
            while True:
                try:
                    packet = os.read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                if rng.random() < way.loss or queued[fd] >= QUEUE_LIMIT:
                    continue
                due = time.monotonic() + way.delay + rng.uniform(-way.jitter, way.jitter)
                due = last_due[fd] = max(due, last_due[fd])
                sequence += 1
                queued[fd] += 1
                heapq.heappush(queue, (due, sequence, fd, packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(queue)
            queued[fd] -= 1
            try:
                os.write(by_source[fd].sink, packet)
            except OSError:  # the device is down or full: the packet is lost, like on a wire
                pass


def main() -> None:
    spec = json.loads(sys.argv[1])
    ways = directions(spec["links"])
    print("ready", flush=True)
    rng = random.Random(spec.get("seed", 1))  # noqa: S311 (emulated loss, not secrets)
    run(ways, rng, sys.stdin.fileno())


if __name__ == "__main__":
    main()
