"""What of one sliver of an enforcing backend is still on the host (tests of cleanup)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sfa.nodemanager import netns
from sfa.nodemanager.enforcing import EnforcingBackend


def host_traces(backend: EnforcingBackend, login: str) -> list[str]:
    """Cgroup dirs, namespace, host veth, mount, image, loop device and directory of `login`."""
    found: list[str] = []
    if backend.cgroups is not None:
        found += [str(h.path(backend.tag, login)) for h in backend.cgroups.layout.distinct()
                  if h.path(backend.tag, login).exists()]
    net = netns.SliverNetwork.named(backend.tag, login)
    found += [str(p) for p in (net.netns_path, netns.SYS_NET / net.host_veth) if p.exists()]
    target = backend.sliver_dir(login)
    if f" {target} " in Path("/proc/self/mounts").read_text():
        found.append(f"mount on {target}")
    if backend.quotas is not None:
        image = backend.quotas.image(login)
        if image.exists():
            found.append(str(image))
        loops = subprocess.run(["/usr/sbin/losetup", "-a"], capture_output=True, text=True,
                               check=True).stdout
        found += [line for line in loops.splitlines() if str(image) in line]
    if target.exists():
        found.append(str(target))
    return found
