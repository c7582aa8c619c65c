"""An exclusive lock on a reproduction folder, so that two ``pmsplat reproduce`` runs never share one.

The lock is the file ``<out>/reproduce.lock``, a JSON object naming its owner::

    {"pid": 4242, "host": "node-7", "since": "2026-12-07T20:10:00Z", "token": "…"}

- **Atomic.** The owner's record is written to a private temporary file first and then hard-linked
  to ``reproduce.lock`` (``link`` fails when the name exists), so the lock file never exists
  without its full content; on file systems without hard links it falls back to
  ``O_CREAT | O_EXCL``. Checking and taking over a stale lock happens under a short ``fcntl.flock``
  of the folder itself, so two runs cannot both take over the same stale lock.
- **Stale locks.** A lock whose owner runs on this host under a PID that is no longer alive
  (a run killed by SIGKILL or a power cut) is taken over, with a message naming the old owner.
  A lock of another host cannot be checked and is always respected.
- **Busy folder.** Otherwise :class:`OutputLockedError` is raised: one line naming the owner
  (PID, host, since), the lock file and what to do.
- **Release.** :func:`hold_lock` removes the lock file when its block ends, also on an exception;
  it removes only a lock file that is still its own (same token).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pmsplat.errors import PmsplatError

LOCK_NAME = "reproduce.lock"


class OutputLockedError(PmsplatError):
    """The output folder is locked by another run that is (or may be) still alive."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: process id, host name, start time (ISO 8601, UTC) and a unique token."""

    pid: int
    host: str
    since: str
    token: str

    @classmethod
    def me(cls) -> "LockOwner":
        """The current process as a lock owner (a fresh token each call)."""
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return cls(os.getpid(), socket.gethostname(), since, secrets.token_hex(8))

    def describe(self) -> str:
        """``PID 4242 on host node-7, since 2026-12-07T20:10:00Z``."""
        return f"PID {self.pid} on host {self.host}, since {self.since}"

    def is_stale(self) -> bool:
        """True when the owner ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        return not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def read_owner(path: Path) -> LockOwner:
    """The owner recorded in the lock file ``path``; :class:`OutputLockedError` when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
        return LockOwner(int(data["pid"]), str(data["host"]), str(data["since"]), str(data.get("token", "")))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OutputLockedError(
            f"the lock file {path} is unreadable ({type(error).__name__}); if no other `pmsplat reproduce` is using "
            f"{Path(path).parent}, delete it (rm {path}) and run again."
        ) from error


def _create(path: Path, owner: LockOwner) -> bool:
    """Create ``path`` holding ``owner`` atomically; False when it already exists."""
    text = json.dumps({"pid": owner.pid, "host": owner.host, "since": owner.since, "token": owner.token})
    temporary = path.with_name(f".{path.name}.{owner.pid}.{owner.token}.tmp")
    temporary.write_text(text)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: exclusive create, then write
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return True
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _guard(folder: Path) -> Iterator[None]:
    """A short exclusive ``flock`` of the folder (a no-op where flock or directory handles are
    unavailable: the atomic create alone then protects the lock)."""
    try:
        import fcntl

        descriptor = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the flock


def acquire(folder: Path, log: Callable[[str], None] = print) -> LockOwner:
    """Take the lock of ``folder`` (which must exist) for this process; returns the owner record.

    Takes over a stale lock (``log`` says whose); raises :class:`OutputLockedError` when another
    live run holds it."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    owner = LockOwner.me()
    with _guard(folder):
        if _create(path, owner):
            return owner
        try:
            held = read_owner(path)
        except FileNotFoundError:  # released in between
            held = None
        if held is not None and not held.is_stale():
            raise OutputLockedError(
                f"the output folder {folder} is in use by another `pmsplat reproduce` ({held.describe()}; lock file "
                f"{path}). Wait for that run to finish or pass another --out; if that run is gone, delete the lock "
                "file and run again."
            )
        if held is not None:
            log(f"Taking over the stale lock of {folder}: its owner ({held.describe()}) is no longer running.")
            path.unlink(missing_ok=True)
        if not _create(path, owner):  # cannot happen under the guard unless flock is unavailable
            raise OutputLockedError(f"the output folder {folder} was locked by another run just now; run again later.")
    return owner


def release(folder: Path, owner: LockOwner) -> None:
    """Remove the lock of ``folder`` if ``owner`` still holds it."""
    path = Path(folder) / LOCK_NAME
    with contextlib.suppress(FileNotFoundError, OutputLockedError):
        if read_owner(path).token == owner.token:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def hold_lock(folder: Path, log: Callable[[str], None] = print) -> Iterator[LockOwner]:
    """Hold the lock of ``folder`` for the ``with`` block; released on exit, also on an exception."""
    owner = acquire(folder, log)
    try:
        yield owner
    finally:
        release(folder, owner)
