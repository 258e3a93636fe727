"""Credential verification: in-process (python-xmlsec, cached chains) vs one xmlsec1 per signature.

(a) a slice credential with one signature and a 3-certificate owner chain (user, sub-authority,
root); (b) the same delegated twice (3 signatures). Each is verified N times in-process through
`verify_credential`, and M times the old way: a temp file and one `xmlsec1 --verify` process per
signature. Prints rates and ratios measured in this run.

    .venv/bin/python benchmarks/credential_verify.py [N] [M]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sfa.timeutil import utcnow
from sfa.trust.credential import Credential, create_credential, delegate_credential
from sfa.trust.hierarchy import AuthorityStore
from sfa.trust.roots import TrustedRoots
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


def _in_process(cred: Credential, policy: TrustPolicy, n: int) -> float:
    verify_credential(cred.xml, policy)  # warm the chain and key caches, as a server would be
    start = time.perf_counter()
    for _ in range(n):
        verify_credential(cred.xml, policy)
    return n / (time.perf_counter() - start)


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
        for label, cred in (("(a) 1 signature, 3-cert owner chain", one),
                            ("(b) delegated twice, 3 signatures", three)):
            fast = _in_process(cred, policy, n)
            line = f"{label}: in-process {fast:,.0f}/s ({1e6 / fast:.0f} us each)"
            if xmlsec1:
                slow = _subprocess(cred, root_pem, m, xmlsec1)
                line += f"; xmlsec1 subprocess {slow:,.1f}/s; ratio {fast / slow:,.0f}x"
            else:
                line += "; xmlsec1 not installed, no subprocess comparison"
            print(line)


if __name__ == "__main__":
    main()
