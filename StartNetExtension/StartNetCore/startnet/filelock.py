"""Serialised, atomic updates of files shared by several processes (CAL.json: CLI runs, Slicer panels; batch outputs).

:func:`exclusive_lock` holds an exclusive OS lock on a sidecar ``<name>.lock`` beside the file for
the whole read-modify-write, so a second writer waits instead of overwriting the first one's
update with what it read before. The lock is ``fcntl.flock`` on POSIX and ``msvcrt.locking`` on
Windows (standard library only); the OS releases it when the holder exits, even when killed, so a
stale lock file is harmless and is never deleted (deleting it would let two writers lock two
different files). The holder writes its process id, host and time into the lock file; a writer
that waits longer than the timeout gets an OutputError naming the file and that holder.

:func:`write_text_atomic` writes a temporary file in the same folder and ``os.replace``\\ s it onto
the target, so a reader sees the old or the new file, never a half-written one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

from startnet.errors import OutputError

LOCK_SUFFIX = ".lock"
DEFAULT_TIMEOUT_S = 120.0
_POLL_S = 0.02
# Windows locks a byte range and refuses other processes' reads of it: lock one byte far beyond the
# holder text so a waiting writer can still read who holds the lock.
_WINDOWS_LOCK_OFFSET = 1 << 20

if os.name == "nt":  # pragma: no cover - exercised on the Windows Slicer build
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_path(path) -> Path:
    p = Path(path)
    return p.with_name(p.name + LOCK_SUFFIX)


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[0] if text else ""


def _record_holder(fd: int) -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    text = f"process {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode()
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, text)
    except OSError:
        pass  # the holder text is only information for waiting writers


@contextlib.contextmanager
def exclusive_lock(path, *, timeout_s: float = DEFAULT_TIMEOUT_S, what: str = "file") -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (its ``.lock`` sidecar); OutputError after ``timeout_s`` waiting."""
    target = Path(path)
    lock_file = lock_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(lock_file), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError(f"{what} {target}: cannot create its lock file {lock_file} ({exc})") from exc
    try:
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                holder = _holder(lock_file) or "holder unknown"
                raise OutputError(f"{what} {target}: another writer holds {lock_file} ({holder}); waited "
                                  f"{timeout_s:g} s: try again when it has finished")
            time.sleep(_POLL_S)
        try:
            _record_holder(fd)
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def write_text_atomic(path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) in one step: a temporary sibling, flushed, then ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _replace(temporary: str, target: Path) -> None:
    # Windows refuses to replace a file another process has open (a reader): retry briefly.
    for attempt in range(50):
        try:
            os.replace(temporary, str(target))
            return
        except PermissionError:
            if os.name != "nt" or attempt == 49:
                raise
            time.sleep(0.05)
