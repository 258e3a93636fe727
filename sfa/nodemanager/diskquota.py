"""A disk quota per sliver: an image file with its own ext4 filesystem, loop-mounted as the
sliver's directory. Writes past the quota fail with ENOSPC inside that filesystem only; other
slivers and the node's disk are untouched. Images are sparse: a sliver's blocks are allocated
as it writes, so the node's disk must hold what slivers really use, not what they were granted.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
MOUNT = "/usr/bin/mount"
UMOUNT = "/usr/bin/umount"
LOSETUP = "/usr/sbin/losetup"
MKFS = "/usr/sbin/mkfs.ext4"
RESIZE = "/usr/sbin/resize2fs"
MIN_MB = 2  # ext4 needs a little room for its own metadata


class QuotaError(OSError):
    """A mount, mkfs or losetup command failed."""


@dataclass(frozen=True)
class DiskUse:
    """Bytes used and the quota's size, from the sliver filesystem's own counters."""

    used_bytes: int
    size_bytes: int


class ImageQuotas:
    """Sliver images `<images_dir>/<login>.img` mounted on `<slivers_dir>/<login>`."""

    def __init__(self, images_dir: Path, slivers_dir: Path) -> None:
        self.images_dir = Path(images_dir)
        self.slivers_dir = Path(slivers_dir)
        self.images_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def image(self, login: str) -> Path:
        return self.images_dir / f"{login}.img"

    def mountpoint(self, login: str) -> Path:
        return self.slivers_dir / login

    def mount(self, login: str, disk_mb: int) -> None:
        """Make the image (size `disk_mb`) and mount it; grow an existing one when the grant
        grew. Mounted nosuid,nodev: a sliver cannot plant a setuid binary or a device there."""
        image, target = self.image(login), self.mountpoint(login)
        size = max(MIN_MB, disk_mb) * MIB
        if not image.exists():
            with open(image, "wb") as handle:
                handle.truncate(size)
            _run(MKFS, "-q", "-F", "-m", "0", "-E", "nodiscard", str(image))
        elif image.stat().st_size < size:
            os.truncate(image, size)
            if self.is_mounted(login):
                _run(RESIZE, _loop_device(image))
        target.mkdir(mode=0o755, exist_ok=True)
        if not self.is_mounted(login):
            _run(MOUNT, "-o", "loop,nosuid,nodev", str(image), str(target))

    def unmount(self, login: str) -> None:
        """Unmount and detach the loop device (absent is fine); the image stays."""
        target, image = self.mountpoint(login), self.image(login)
        if self.is_mounted(login):
            _run(UMOUNT, str(target))
        for device in _loop_devices(image):
            _run(LOSETUP, "-d", device)

    def remove(self, login: str) -> None:
        """Unmount and delete the image."""
        self.unmount(login)
        self.image(login).unlink(missing_ok=True)

    def is_mounted(self, login: str) -> bool:
        target = str(self.mountpoint(login).absolute())
        return any(mount == target for mount in _mount_points())

    def use(self, login: str) -> DiskUse | None:
        if not self.is_mounted(login):
            return None
        stats = os.statvfs(self.mountpoint(login))
        used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
        return DiskUse(used_bytes=used, size_bytes=stats.f_blocks * stats.f_frsize)

    def logins(self) -> set[str]:
        """Slivers with an image or a mount here (for reconciliation)."""
        found = {p.name.removesuffix(".img") for p in self.images_dir.glob("*.img")}
        prefix = str(self.slivers_dir.absolute()) + "/"
        found.update(m.removeprefix(prefix) for m in _mount_points() if m.startswith(prefix))
        return found


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1:
            points.append(fields[1].replace("\\040", " "))
    return points


def _loop_devices(image: Path) -> list[str]:
    if not image.exists():
        return []
    text = _run(LOSETUP, "-j", str(image), "-O", "NAME", "-n")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _loop_device(image: Path) -> str:
    devices = _loop_devices(image)
    if not devices:
        raise QuotaError(f"{image} is not attached to a loop device")
    return devices[0]


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise QuotaError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout
