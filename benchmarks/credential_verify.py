"""Credential verification: in-process (python-xmlsec, cached chains) vs one xmlsec1 per signature.

(a) a slice credential with one signature and a 3-certificate owner chain (user, sub-authority,
root); (b) the same delegated twice (3 signatures). Each is verified N times in-process through
`verify_credential` on the cold path (every signature verified with python-xmlsec on every call;
signer chains and parsed GIDs cached by fingerprint / PEM text), and M times the old way: a temp
file and one `xmlsec1 --verify` process per signature. Then, on a separate labelled line, the
same through the optional verified-document cache. Prints rates and ratios measured in this run:
per batch of 25 calls, the best and median by wall clock and the median by this thread's CPU
time (robust to neighbours' load), with the load average before and after.

    taskset -c 1 .venv/bin/python benchmarks/credential_verify.py [N] [M]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sfa.timeutil import utcnow
from sfa.trust.credential import Credential, create_credential, delegate_credential
from sfa.trust.hierarchy import AuthorityStore
from sfa.trust.roots import TrustedRoots
from sfa.trust.verified_cache import VerifiedCredentials
from sfa.trust.verify import TrustPolicy, verify_credential


def _build(base: Path) -> tuple[Credential, Credential, TrustPolicy, Path]:
    store = AuthorityStore(base / "authorities")
    plc = store.create_root("plc")
    princeton = store.create_sub("plc.princeton")
    alice, alice_key = princeton.issue_gid("plc.princeton.alice", "user")
    bob, bob_key = princeton.issue_gid("plc.princeton.bob", "user")
    carol, _ = princeton.issue_gid("plc.princeton.carol", "user")
    slice_gid, _ = princeton.issue_gid("plc.princeton.bench", "slice")
    assert alice_key is not None and bob_key is not None
    one = create_credential(owner=alice, target=slice_gid, privileges="*",
                            expires=utcnow() + timedelta(days=1), signer_key=princeton.key,
                            signer=princeton.gid, delegatable=True)
    two = delegate_credential(one, to=bob, signer_key=alice_key, signer=alice, delegatable=True)
    three = delegate_credential(two, to=carol, signer_key=bob_key, signer=bob)
    root_pem = base / "plc.pem"
    root_pem.write_text(plc.gid.to_pem(include_chain=False))
    return one, three, TrustPolicy(roots=TrustedRoots(gids=[plc.gid])), root_pem


BATCH = 25


@dataclass(frozen=True)
class Rates:
    """Calls per second over batches of BATCH calls, by wall clock and by this thread's CPU."""

    best: float  # least-contended batch: one uncontended core
    median: float  # typical batch under the load shown
    cpu_median: float  # median batch by CPU time: what the work costs, whatever the neighbours
    cpu_best: float
    batches: int


def _in_process(cred: Credential, policy: TrustPolicy, n: int) -> Rates:
    """Rates of `verify_credential` over n calls in many small batches. The machine is shared:
    wall-clock batches measure what the load left us, CPU-time batches what the work costs."""
    verify_credential(cred.xml, policy)  # warm the chain and key caches, as a server would be
    wall, cpu = [], []
    for _ in range(max(1, n // BATCH)):
        start, start_cpu = time.perf_counter(), time.thread_time()
        for _ in range(BATCH):
            verify_credential(cred.xml, policy)
        cpu.append((time.thread_time() - start_cpu) / BATCH)
        wall.append((time.perf_counter() - start) / BATCH)
    cpu = [t for t in cpu if t > 0] or [min(wall)]  # thread_time ticks can be coarse
    return Rates(1 / min(wall), 1 / statistics.median(wall), 1 / statistics.median(cpu),
                 1 / min(cpu), len(wall))


def _subprocess(cred: Credential, root_pem: Path, m: int, xmlsec1: str) -> float:
    start = time.perf_counter()
    for _ in range(m):
        fd, name = tempfile.mkstemp(suffix=".xml")
        with os.fdopen(fd, "w") as handle:
            handle.write(cred.xml)
        try:
            for link in cred.chain:
                subprocess.run(
                    [xmlsec1, "--verify", "--node-id", f"Sig_{link.xml_id}",
                     "--enabled-key-data", "x509", "--trusted-pem", str(root_pem), name],
                    check=True, capture_output=True,
                )
        finally:
            os.unlink(name)
    return m / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    xmlsec1 = shutil.which("xmlsec1")
    with tempfile.TemporaryDirectory() as tmp:
        one, three, policy, root_pem = _build(Path(tmp))
        print(f"credential sizes: (a) {len(one.xml)} bytes, (b) {len(three.xml)} bytes")
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        cases = (("(a) 1 signature, 3-cert owner chain", one),
                 ("(b) delegated twice, 3 signatures", three))
        for label, cred in cases:
            rates = _in_process(cred, policy, n)
            line = (f"{label}: cold in-process best {rates.best:,.0f}/s "
                    f"({1e6 / rates.best:.0f} us), median {rates.median:,.0f}/s; by CPU time "
                    f"median {rates.cpu_median:,.0f}/s ({1e6 / rates.cpu_median:.0f} us), "
                    f"best {rates.cpu_best:,.0f}/s; {rates.batches} batches of {BATCH}")
            if xmlsec1:
                slow = _subprocess(cred, root_pem, m, xmlsec1)
                line += (f"; xmlsec1 subprocess {slow:,.1f}/s; ratio best "
                         f"{rates.best / slow:,.0f}x, median {rates.median / slow:,.0f}x")
            else:
                line += "; xmlsec1 not installed, no subprocess comparison"
            print(line)
        cached = replace(policy, verified_cache=VerifiedCredentials())
        for label, cred in cases:
            rates = _in_process(cred, cached, n)
            print(f"{label}: CACHED (server's verified-document cache, time checks only, "
                  f"not the cold path) best {rates.best:,.0f}/s, median {rates.median:,.0f}/s, "
                  f"by CPU time {rates.cpu_median:,.0f}/s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
