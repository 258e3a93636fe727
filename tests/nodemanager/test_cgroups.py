"""Control group detection and limits on both versions, over a stand-in /proc and cgroup tree.

This host has only v1 controllers (its v2 mount offers none), so the v2 paths are checked on
directories laid out like cgroupfs: which file each knob is written to, and with what value.
The real kernel behaviour is tested as root in test_enforcing.py.
"""

from __future__ import annotations

from pathlib import Path

from sfa.nodemanager import cgroups
from sfa.nodemanager.resources import Resources

PROC_CGROUPS = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpu\t1\t1\t1
cpuacct\t2\t1\t1
memory\t4\t23\t1
pids\t8\t1\t1
"""


def fake_proc(tmp: Path, mounts: list[str], own: list[str]) -> Path:
    proc = tmp / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text("".join(f"{line}\n" for line in mounts))
    (proc / "self" / "cgroup").write_text("".join(f"{line}\n" for line in own))
    (proc / "cgroups").write_text(PROC_CGROUPS)
    return proc


def test_a_hybrid_host_uses_v1_when_v2_offers_no_controller(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")
    mounts = [f"cgroup2 {unified} cgroup2 rw 0 0"] + [
        f"cgroup {tmp_path / name} cgroup rw,relatime,{name} 0 0"
        for name in ("cpu", "cpuacct", "memory", "pids")]
    proc = fake_proc(tmp_path, mounts, ["4:memory:/jobs/7", "1:cpu:/", "0::/"])
    layout = cgroups.detect(proc)
    assert {k: h.version for k, h in layout.hierarchies.items()} == {
        "cpu": 1, "cpuacct": 1, "memory": 1, "pids": 1}
    assert layout.hierarchies["memory"].path("t", "s") == tmp_path / "memory/jobs/7/t/s"
    assert layout.hierarchies["cpu"].path("t") == tmp_path / "cpu/t"


def test_v2_is_preferred_per_controller_and_co_mounted_v1_counts_once(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    (unified / "nm").mkdir(parents=True)
    (unified / "nm" / "cgroup.controllers").write_text("cpu memory pids io\n")
    mounts = [f"cgroup2 {unified} cgroup2 rw 0 0",
              f"cgroup {tmp_path / 'cpu,cpuacct'} cgroup rw,cpu,cpuacct 0 0"]
    proc = fake_proc(tmp_path, mounts, ["0::/nm", "1:cpu,cpuacct:/"])
    layout = cgroups.detect(proc)
    assert {k: h.version for k, h in layout.hierarchies.items()} == {
        "cpu": 2, "memory": 2, "pids": 2, "cpuacct": 1}
    assert len(layout.distinct()) == 2  # the v2 tree and the v1 cpuacct tree


def v2_layout(root: Path) -> cgroups.Layout:
    return cgroups.Layout({name: cgroups.Hierarchy(name, 2, root, "/")
                           for name in ("cpu", "memory", "pids")})


def test_v2_limits_go_to_weight_max_and_swap(tmp_path: Path) -> None:
    sliver = cgroups.SliverCgroups(v2_layout(tmp_path), "w15-test")
    (tmp_path / "cgroup.subtree_control").write_text("")
    (tmp_path / "w15-test").mkdir()
    (tmp_path / "w15-test" / "cgroup.subtree_control").write_text("")
    (tmp_path / "w15-test" / "s1").mkdir()
    (tmp_path / "w15-test" / "s1" / "memory.swap.max").write_text("max\n")
    sliver.create("s1", Resources(cpu_share=8, memory_mb=32, tasks=20))
    folder = tmp_path / "w15-test" / "s1"
    assert (folder / "cpu.weight").read_text() == "25\n"
    assert (folder / "memory.max").read_text() == f"{32 * 1024 * 1024}\n"
    assert (folder / "memory.swap.max").read_text() == "0\n"
    assert (folder / "pids.max").read_text() == "20\n"
    assert (tmp_path / "w15-test" / "cgroup.subtree_control").read_text() == (
        "+cpu +memory +pids\n")


def test_v2_usage_reads_cpu_stat_memory_and_events(tmp_path: Path) -> None:
    folder = tmp_path / "w15-test" / "s1"
    folder.mkdir(parents=True)
    (folder / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    (folder / "memory.current").write_text("4096\n")
    (folder / "memory.peak").write_text("8192\n")
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (folder / "pids.current").write_text("7\n")
    usage = cgroups.SliverCgroups(v2_layout(tmp_path), "w15-test").usage("s1")
    assert usage == cgroups.Usage(cpu_ns=1_500_000, memory_bytes=4096, memory_peak_bytes=8192,
                                  tasks=7, oom_kills=1)


def test_weights_keep_the_planetlab_default_at_the_kernel_default() -> None:
    assert cgroups.cpu_shares(32) == 1024 and cgroups.cpu_weight(32) == 100
    assert cgroups.cpu_shares(8) * 4 == cgroups.cpu_shares(32)
    assert cgroups.cpu_shares(0) == 2 and cgroups.cpu_weight(0) == 1
    assert cgroups.cpu_weight(10**9) == 10_000 and cgroups.cpu_shares(10**9) == 262_144
