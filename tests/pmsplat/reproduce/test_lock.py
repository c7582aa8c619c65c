"""The output-folder lock of `pmsplat reproduce` (:mod:`pmsplat.reproduce.lock`), used as a user would:

- a second `pmsplat reproduce` on a folder another live process holds stops at once with exit
  code 2 and one line naming the owner (PID, host, since), without a traceback, and leaves the
  holder's lock in place;
- a lock left by a dead process on this host is taken over with a message, and the lock is
  released when the run ends, here on an error (a bad override stops the first stage);
- in-process: the lock is exclusive, released on an exception, and a lock of another host is
  never taken over.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pmsplat.reproduce.lock import LOCK_NAME, OutputLockedError, acquire, hold_lock, read_owner

HOLDER = """
import sys, time
from pathlib import Path
from pmsplat.reproduce.lock import acquire
acquire(Path(sys.argv[1]), log=print)
print("ready", flush=True)
time.sleep(120)
"""


def _reproduce(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pmsplat.cli", "reproduce", "--baseline", "mvsplat", "--schedule", "smoke", *arguments],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_on_a_locked_folder_stops_at_once_naming_the_owner(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        owner = read_owner(out / LOCK_NAME)
        done = _reproduce("--root", str(tmp_path / "data"), "--out", str(out), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        line = lines[0]
        assert line.startswith("pmsplat reproduce: ")
        assert f"PID {holder.pid}" in line and f"host {socket.gethostname()}" in line
        assert f"since {owner.since}" in line and str(out / LOCK_NAME) in line
        assert not (tmp_path / "data").exists()  # stopped before generating anything
        assert not (out / "runs").exists()
        assert read_owner(out / LOCK_NAME) == owner  # the holder's lock is untouched
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_with_a_message_and_released_on_error(tmp_path, tiny_synthetic):
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    stale = {"pid": dead, "host": socket.gethostname(), "since": "2026-01-01T00:00:00Z", "token": "old"}
    (out / LOCK_NAME).write_text(json.dumps(stale))
    # A bad override: the first stage stops at once, after the lock was taken.
    done = _reproduce("--root", str(tiny_synthetic), "--out", str(out), "no_such_key=1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    text = " ".join(done.stderr.split())  # the log wraps long lines at the terminal width
    assert f"Taking over the stale lock of {out}: its owner (PID {dead} on host {socket.gethostname()}" in text
    assert "no longer running" in text
    assert "no_such_key" in text
    assert not (out / LOCK_NAME).exists()  # released on the error


def test_the_lock_is_exclusive_and_released_on_an_exception(tmp_path):
    with pytest.raises(RuntimeError), hold_lock(tmp_path, log=lambda _: None) as owner:
        assert read_owner(tmp_path / LOCK_NAME) == owner
        with pytest.raises(OutputLockedError, match=f"PID {os.getpid()} on host"):
            acquire(tmp_path, log=lambda _: None)  # our own process is alive: not stale
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    assert not list(tmp_path.iterdir())  # no temporary files left behind


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    other = {"pid": _dead_pid(), "host": socket.gethostname() + "-elsewhere", "since": "2026-01-01T00:00:00Z"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(OutputLockedError, match="-elsewhere"):
        acquire(tmp_path, log=lambda _: None)
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == other


def test_an_unreadable_lock_file_says_how_to_fix_it(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(OutputLockedError, match="unreadable.*delete it"):
        acquire(tmp_path, log=lambda _: None)
