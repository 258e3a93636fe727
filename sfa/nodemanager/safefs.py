"""Writing into a sliver directory the sliver's own processes can modify, without following
their symlinks: every component is opened relative to its parent with O_NOFOLLOW, and files
are replaced atomically by a rename inside that directory."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sfa.errors import Forbidden

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def open_dirs(
    root: Path | int, parts: Sequence[str], *, mode: int = 0o755, uid: int | None = None
) -> Iterator[int]:
    """A file descriptor for `root/parts...`, creating missing directories (owned by `uid`,
    when given, with `mode`). A symlink or non-directory on the way is refused. `root` may
    be a directory descriptor already opened this way (it stays open)."""
    fd = os.dup(root) if isinstance(root, int) else os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            _check_component(part)
            _make_dir(fd, part, mode, uid)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                where = f"{root}/{'/'.join(parts)}"
                raise Forbidden(f"{where}: not a plain directory ({exc})") from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def write_file(
    dir_fd: int, name: str, data: bytes, *, mode: int = 0o644, uid: int | None = None
) -> None:
    """Atomically replace `name` in the directory `dir_fd` with `data`."""
    _check_component(name)
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            if uid is not None:
                os.fchown(fd, uid, uid)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise


def ensure_dir(dir_fd: int, name: str, *, mode: int = 0o755, uid: int | None = None) -> None:
    """Make the directory `name` in `dir_fd` (owned by `uid`, when given, with `mode`) unless
    a plain directory is there already; a symlink or anything else there is refused. Nothing
    is opened: for directories only made here, filled later through `open_dirs`."""
    _check_component(name)
    if not _make_dir(dir_fd, name, mode, uid):
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(found.st_mode):
            raise Forbidden(f"{name}: not a plain directory")


def _make_dir(dir_fd: int, name: str, mode: int, uid: int | None) -> bool:
    """Make the directory `name` (owned by `uid`, when given); False if something is there."""
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        return False
    if uid is not None:
        os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
    return True


def remove_file(dir_fd: int, name: str) -> None:
    """Remove `name` from the directory if present (a symlink is removed, not followed)."""
    _check_component(name)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def open_append(dir_fd: int, name: str, *, uid: int | None = None) -> int:
    """An append-only descriptor for a log file (never through a symlink)."""
    _check_component(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o640, dir_fd=dir_fd)
    if uid is not None:
        os.fchown(fd, uid, uid)
    return fd


def disk_usage(path: Path) -> int:
    """Bytes allocated under `path`, symlinks not followed."""
    used = 0
    folders: list[str | Path] = [path]
    while folders:
        try:
            entries = os.scandir(folders.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    used += entry.stat(follow_symlinks=False).st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                except OSError:
                    continue
    return used


def _check_component(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Forbidden(f"refusing the path component {name!r}")
