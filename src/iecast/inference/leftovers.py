"""Temporary files of runs that were killed: each holds an exclusive lock while its run lasts (the
lock dies with the process, even under SIGKILL), so an unlocked one whose process is gone is a leftover."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

STALE_AFTER_S = 10.0  # an unlocked temporary file this old whose process is gone (or reused) is a leftover


def lock_file(path: Path):
    """An open descriptor holding an exclusive lock on `path` (created), or None where locks are unsupported.

    The lock dies with the process, even under SIGKILL: a temporary file nobody holds is a leftover."""
    try:
        import fcntl
    except ImportError:  # not POSIX: leftovers are recognised by age alone
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def unlock_file(fd) -> None:
    if fd is not None:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(path: Path, pid: int) -> bool:
    """True for a temporary file of a run that is over: nobody holds its lock, and its process is gone
    (or the file is older than STALE_AFTER_S, for a reused pid). Never our own process's files."""
    if pid == os.getpid():
        return False
    try:
        age = time.time() - path.stat().st_mtime
        import fcntl
    except FileNotFoundError:
        return False
    except ImportError:
        return age > 24 * 3600
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live run holds it
    finally:
        os.close(fd)
    return not _pid_alive(pid) or age > STALE_AFTER_S


def remove_leftovers(pattern: re.Pattern, folder: Path) -> list[Path]:
    """Delete the files in `folder` matching `pattern` (its group 'pid' the writer's process) whose run is over."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        if match and is_abandoned(path, int(match.group("pid"))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
