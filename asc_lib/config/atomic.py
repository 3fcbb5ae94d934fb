"""Atomic writes: a reader never sees a half-written artifact, and a crash loses nothing already there.
Also the advisory locks that keep one process at a time on a run folder or a cache being built, and the
free-space check before a large write."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds.

    The file gets the permissions any new file gets (``0o666`` less the umask), not the private ``0o600``
    of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame) -> Path:
    """Write a pandas ``frame`` (index included) as CSV atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp)
    return Path(path)


# --- one process at a time ------------------------------------------------------------------------------------

def lock_file(path: str | os.PathLike) -> Path:
    """The lock beside ``path`` (a hidden sibling, so that removing a run folder keeps it)."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, what: str, wait: bool = False) -> Iterator[None]:
    """Hold ``path`` for this process: an advisory lock (py-filelock's ``flock``, released by the system when
    the holder dies, so no stale lock outlives a killed process) with the owner's host, pid and start time
    beside it. ``wait``: block until the holder is done (a cache being built), else stop at once with a
    ``RuntimeError`` naming ``path`` and its owner (a run folder: a second run would delete the first's
    checkpoint)."""
    lock = lock_file(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    owner = lock.with_name(lock.name + ".owner")
    held = FileLock(lock, timeout=-1 if wait else 0, thread_local=False)
    try:
        held.acquire()
    except Timeout:
        try:
            who = json.loads(owner.read_text())
            who = f"process {who['pid']} on {who['host']} (since {who['since']})"
        except (OSError, ValueError, KeyError):
            who = "another process"
        raise RuntimeError(f"{path}: this {what} is in use by {who}; wait for it to finish or stop it, then run "
                           "again") from None
    try:
        owner.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                     "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        yield
    finally:
        owner.unlink(missing_ok=True)
        held.release()


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left beside ``path`` when a process writing it was killed
    (call it holding :func:`exclusive` on ``path``: no live writer is then using them); returns what it removed."""
    path = Path(path)
    stale = list(path.parent.glob(f".{path.name}.*.tmp*")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def reserve(path: str | os.PathLike, size: int) -> None:
    """Allocate ``size`` bytes of the file ``path`` on disk now, so that a full disk is an ``OSError`` naming the
    path and the bytes needed here, not a SIGBUS later when a memory map of it is written."""
    free = shutil.disk_usage(Path(path).parent).free
    if free < size:
        raise OSError(errno.ENOSPC, f"{path}: needs {size / 2**20:,.1f} MB but the disk holds {free / 2**20:,.1f} MB "
                                    "free; free some space or point ASC_CACHE_DIR elsewhere")
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        raise OSError(err.errno, f"{path}: cannot allocate {size / 2**20:,.1f} MB ({os.strerror(err.errno)}); free "
                                 "some space or point ASC_CACHE_DIR elsewhere") from err
    finally:
        os.close(fd)


# --- caches that verify themselves -----------------------------------------------------------------------------

class CorruptCache(ValueError):
    """A cache file that fails its checksum, or cannot be read: named, moved aside and rebuilt by its owner."""


_VERIFIED: set = set()  # (path, size, mtime) checked in this process: each file is read once per process


def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def file_sha256(path: str | os.PathLike, chunk: int = 16 * 2**20) -> str:
    """SHA-256 of a file's bytes, read in ``chunk``-byte blocks (memory bounded whatever its size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


def seal(path: str | os.PathLike) -> Path:
    """Record ``path``'s size and SHA-256 beside it (``<file>.sha256``, written atomically) once it is complete."""
    path = Path(path)
    write_json(_seal_path(path), {"size": path.stat().st_size, "sha256": file_sha256(path)})
    _VERIFIED.add(_stamp(path))
    return path


def verify(path: str | os.PathLike) -> Path:
    """``path`` if its bytes match its seal (checked once per process and file version), else
    :class:`CorruptCache` saying what is wrong: no seal, another size (truncated) or other bytes."""
    path = Path(path)
    if _stamp(path) in _VERIFIED:
        return path
    try:
        sealed = json.loads(_seal_path(path).read_text())
        size, digest = int(sealed["size"]), str(sealed["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CorruptCache(f"{path}: no readable checksum beside it ({_seal_path(path).name})") from None
    actual = path.stat().st_size
    if actual != size:
        raise CorruptCache(f"{path}: {actual:,} bytes where {size:,} were written (truncated or overwritten)")
    if file_sha256(path) != digest:
        raise CorruptCache(f"{path}: its bytes changed since it was written (checksum mismatch)")
    _VERIFIED.add(_stamp(path))
    return path


def quarantine(path: str | os.PathLike, reason: str) -> Path:
    """Move a damaged cache file (and its seal and metadata) aside as ``<file>.corrupt``, with a warning naming
    it and why, so that it is rebuilt and can still be looked at; returns where it went."""
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    for sidecar in (_seal_path(path), path.with_suffix(".json")):
        if sidecar.exists():
            os.replace(sidecar, sidecar.with_name(sidecar.name + ".corrupt"))
    warnings.warn(f"{reason}; moved aside to {aside.name} and built again", stacklevel=3)
    return aside
