"""Claims: which driver trains a run, so that two sweeps on one results folder never train a run twice.

Before a task trains a run, it claims it: it creates ``RESULTS/claims/<run_id>.claim`` with
``O_CREAT | O_EXCL``, which only one process can do, on a local disk as on NFS. The file holds one
JSON line naming its holder::

    {"host": "node17", "pid": 4242, "pid_namespace": "pid:[4026531836]", "token": "5f0c9e1d..."}

While the run trains, a background thread (the heartbeat) touches the file every ``timeout / 20``
seconds, and the task removes it when it ends (completed, failed, Ctrl-C or SIGTERM). A run whose
claim is held by another driver is left to it.

A claim untouched for ``timeout`` seconds is stale: its driver is gone (SIGKILL, a lost node) and
must not hold the run forever. So is, at once, a claim whose holder ran on this host (in this pid
namespace) and has ended, such as a killed worker process of the local executor. The timeout is
ten minutes (heartbeat every 30 s) unless the environment variable ``HARNESS_CLAIM_TIMEOUT`` sets
it, in seconds; set it well above the longest pause a heartbeat may see (a file-system stall), since
a driver whose claim went stale while it still trains shares its run with the taker.

A stale claim is taken over under a takeover lock (``RESULTS/claims/.<run_id>.claim.takeover``,
created with ``O_EXCL`` and held for milliseconds): its holder judges the claim stale again,
renames it aside to a unique name, which only one process can do, and creates a claim of its own
with ``O_EXCL``. Ages are read from the file system's clock (the modification time of a file just
created beside the claims), so the nodes' clocks need not agree. ``flock`` is not used: network
file systems do not all honour it.

A claim only says who trains a run; the ``runs`` table says what became of it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.options import seconds_from_env
from harness.results import interrupts_deferred

TIMEOUT_ENV = "HARNESS_CLAIM_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
"""Seconds without a heartbeat after which a claim is stale (``HARNESS_CLAIM_TIMEOUT`` overrides it)."""
HEARTBEATS_PER_TIMEOUT = 20
"""Heartbeats a claim gets within one timeout (every 30 s with the default timeout)."""


def configured_timeout() -> float:
    """The claim timeout: ``HARNESS_CLAIM_TIMEOUT`` when set, else :data:`DEFAULT_TIMEOUT`.

    Returns
    -------
    float
        Seconds without a heartbeat after which a claim is stale.

    Raises
    ------
    harness.errors.ConfigError
        The variable is not a finite number of seconds above 0.
    """
    return seconds_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def claim_path(results_dir: Path, run_id: str) -> Path:
    """Where the claim on a run lives: ``RESULTS/claims/<run_id>.claim``."""
    return Path(results_dir) / "claims" / f"{run_id}.claim"


class Claim:
    """A claim this process holds on one run, kept fresh by a heartbeat thread until released.

    Parameters
    ----------
    path : pathlib.Path
        The claim file, created by this process.
    token : str
        The unique token written into it: the claim is still this process's while the file holds it.
    timeout : float
        The claim timeout in seconds; the heartbeat touches the file every ``timeout / 20`` seconds.
    """

    def __init__(self, path: Path, token: str, timeout: float):
        self.path, self.token = path, token
        self.stopped = threading.Event()
        self.heartbeat = threading.Thread(
            target=self.beat, args=(timeout / HEARTBEATS_PER_TIMEOUT,), name=f"claim {path.stem}", daemon=True
        )
        self.heartbeat.start()

    def beat(self, interval: float) -> None:
        """Touch the claim file every ``interval`` seconds while it is ours, until released."""
        while not self.stopped.wait(interval):
            if self.held():
                with contextlib.suppress(OSError):  # a passing file-system error: the next beat tries again
                    os.utime(self.path)  # no times given: the file system's own clock (the server's, on NFS)

    def held(self) -> bool:
        """Whether the claim file is still this process's (a stale claim may have been taken over)."""
        return read_claim(self.path).get("token") == self.token

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file, unless another driver has taken it over."""
        self.stopped.set()
        self.heartbeat.join()
        if self.held():
            self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def claimed(results_dir: Path, run_id: str, *, timeout: float | None = None) -> Iterator[Claim | None]:
    """Claim a run for the block, or learn that another driver holds it.

    Parameters
    ----------
    results_dir : pathlib.Path
        The results folder, shared by every driver of the run.
    run_id : str
        The run to claim.
    timeout : float, optional
        Seconds without a heartbeat after which another driver's claim is stale and is taken over
        (default: :func:`configured_timeout`).

    Yields
    ------
    Claim or None
        The claim, held with its heartbeat until the block ends (also on an exception, Ctrl-C or
        SIGTERM turned into one); None when another driver holds a claim that is not stale.
    """
    timeout = configured_timeout() if timeout is None else timeout
    path = claim_path(results_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    claim = None
    try:
        with interrupts_deferred():  # no Ctrl-C between creating the file and holding the claim
            token = create(path)
            if token is None and stale(path, timeout):
                token = take_over(path, timeout)
            claim = None if token is None else Claim(path, token, timeout)
        yield claim
    finally:
        if claim is not None:
            with interrupts_deferred():  # a second Ctrl-C or SIGTERM must not leave the file behind
                claim.release()


def create(path: Path) -> str | None:
    """Create the claim file ``path`` with ``O_EXCL`` and this process's holder line; its token, or
    None when the file exists."""
    token = uuid.uuid4().hex
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps({**this_process(), "token": token}) + "\n")
    return token


def this_process() -> dict:
    """Who this process is: its host, its pid and the pid namespace where that pid names it (Linux; empty
    elsewhere)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": namespace}


def stale(path: Path, timeout: float) -> bool:
    """Whether the claim ``path`` may be taken over: untouched for ``timeout`` seconds (or gone), or held
    by a process of this host that has ended."""
    return age(path) >= timeout or ended(read_claim(path))


def ended(line: dict) -> bool:
    """Whether the holder line ``line`` names a process of this host and pid namespace that has ended."""
    here, pid = this_process(), line.get("pid")
    if (line.get("host"), line.get("pid_namespace")) != (here["host"], here["pid_namespace"]):
        return False
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user's process
        return False
    return False


def take_over(path: Path, timeout: float) -> str | None:
    """Take over the stale claim ``path``: the token of the claim created in its place, or None.

    One taker at a time holds the takeover lock (a file beside the claim, created with ``O_EXCL``),
    judges the claim stale again, renames it aside and creates a claim of its own. A taker that
    judged the claim stale while another took it over so finds the new claim fresh, and leaves it.
    A stale lock (its taker died within those few milliseconds) is moved aside.
    """
    lock = path.with_name(f".{path.name}.takeover")
    if create(lock) is None:
        if not stale(lock, timeout):
            return None
        discard(lock)
        if create(lock) is None:
            return None
    try:
        if not stale(path, timeout):
            return None
        discard(path)
        return create(path)
    finally:
        lock.unlink(missing_ok=True)


def discard(path: Path) -> None:
    """Rename ``path`` aside to a unique name (which only one process can do) and remove it there."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, aside)
        aside.unlink()


def age(path: Path) -> float:
    """Seconds since ``path`` was last touched, by the file system's clock; infinite when it is gone."""
    try:
        touched = path.stat().st_mtime
    except FileNotFoundError:
        return math.inf
    return file_system_now(path.parent) - touched


def file_system_now(folder: Path) -> float:
    """The time by the clock of the file system holding ``folder``: the modification time of a file
    created there (this machine's clock where none can be created)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".now-")
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(name)


def read_claim(path: Path) -> dict:
    """The holder line of the claim file ``path``; empty when there is none (or it is still being written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Holder:
    """Who holds the claim on a run.

    Attributes
    ----------
    host : str
        The host name of the driver's process.
    pid : int
        Its process id on that host.
    age : float
        Seconds since its last heartbeat, by the file system's clock.
    """

    host: str
    pid: int
    age: float

    def __str__(self) -> str:
        return f"claimed by {self.host} pid {self.pid}, heartbeat {self.age:.0f} s ago"


def holder(results_dir: Path, run_id: str) -> Holder | None:
    """Who holds the claim on ``run_id`` in ``results_dir``, stale or not; None when nobody does."""
    path = claim_path(results_dir, run_id)
    seconds = age(path)
    if math.isinf(seconds):
        return None
    line = read_claim(path)
    return Holder(line.get("host", "?"), line.get("pid", 0), seconds)
