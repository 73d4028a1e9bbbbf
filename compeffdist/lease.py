"""One writer per output: a run's lease on its output_dir, on local folders and object stores alike.

The lease is one JSON object, `<output_dir>/_lease.json`: run id, owner, host, pid, command, start
time and the holder's last heartbeat. A daemon thread in the driver refreshes the heartbeat every
`run.lease.heartbeat_s`. A second run finds a fresh lease and stops at once, naming the holder. A
lease is stale, and the next run takes it over with a message, when its holder ran on this host
and its process is gone, or when it missed `run.lease.stale_after_beats` heartbeats (holders on
other hosts; clocks are assumed NTP-synchronised, as Ray's own heartbeats assume).

Object stores (through pyarrow) have no locks and no conditional PUT, so a run there writes its
lease, waits `SETTLE_S`, and reads it back: of two runs racing for one output, the one whose write
landed last wins and the other stops. Local folders (NFS included) make the read-check-write one
step under a `filelock` lock beside the lease. Either way the lease is a fence, not a promise: every
heartbeat re-reads it and the runner calls `verify()` before each publish, so a run that lost its
lease publishes nothing.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from compeffdist.storage import Location

LEASE = "_lease.json"
LOCAL_LOCK = ".lease.lock"
SETTLE_S = 1.0
LOCK_TIMEOUT_S = 30.0


class OutputBusy(Exception):
    """Another live run holds the output's lease; the message names it."""


class LeaseLost(Exception):
    """This run's lease (or a stage's work area) was taken by another run: it must not publish."""


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds an output: the content of the lease object."""

    run_id: str
    owner: str
    host: str
    pid: int
    command: str
    started_at: float
    heartbeat_at: float
    stale_after_s: float

    def describe(self, now: float | None = None) -> str:
        ago = max(0.0, (now or time.time()) - self.heartbeat_at)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return (
            f"run {self.run_id} ({self.owner}@{self.host}, pid {self.pid}, `{self.command}`), "
            f"started {started}, last heartbeat {ago:.0f} s ago"
        )

    def stale_reason(self, now: float | None = None) -> str | None:
        """Why this lease may be taken over, or None while its holder looks alive."""
        if self.host == socket.gethostname() and _process_gone(self.pid):
            return f"its process (pid {self.pid} on this host) is gone"
        silent = (now or time.time()) - self.heartbeat_at
        if silent > self.stale_after_s:
            return f"no heartbeat for {silent:.0f} s (stale after {self.stale_after_s:.0f} s)"
        return None


def _process_gone(pid: int) -> bool:
    """True when no process has this pid on this host, or only a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def read_lease(root: Location) -> LeaseRecord | None:
    """The lease on an output, or None when nobody holds it."""
    try:
        text = (root / LEASE).read_text()
    except FileNotFoundError:
        return None
    try:
        return LeaseRecord(**json.loads(text))
    except (json.JSONDecodeError, TypeError) as exc:
        # Writes are atomic, so this is a foreign or damaged file: treat it as a long-dead holder.
        return LeaseRecord("unreadable", "?", "?", -1, f"unreadable lease: {exc}", 0.0, 0.0, 0.0)


class OutputLease:
    """Holds `<root>/_lease.json` for one run: acquire, heartbeat in a daemon thread, verify, release."""

    def __init__(
        self,
        root: Location,
        heartbeat_s: float = 10.0,
        stale_after_beats: int = 6,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.heartbeat_s = heartbeat_s
        self.run_id = uuid.uuid4().hex[:12]
        self.record = LeaseRecord(
            run_id=self.run_id,
            owner=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            started_at=time.time(),
            heartbeat_at=time.time(),
            stale_after_s=heartbeat_s * stale_after_beats,
        )
        self.lost: str | None = None
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _file(self) -> Location:
        return self.root / LEASE

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Local folders: one process at a time reads, checks and writes the lease. Object stores: no lock."""
        if not self.root.is_local:
            yield
            return
        from filelock import FileLock

        self.root.mkdir()
        with FileLock(str(self.root.local_path / LOCAL_LOCK), timeout=LOCK_TIMEOUT_S):
            yield

    def _write(self) -> None:
        self._file.write_text(json.dumps(asdict(self.record), indent=2))

    def acquire(self) -> None:
        """Take the lease, or raise OutputBusy naming the live holder; a stale holder is taken over with a message."""
        with self._guard():
            current = read_lease(self.root)
            if current is not None and current.run_id != self.run_id:
                reason = current.stale_reason()
                if reason is None:
                    raise OutputBusy(self._busy_message(current))
                self._log(f"taking over {self.root} from {current.describe()}: {reason}")
            self.record = replace(self.record, heartbeat_at=time.time())
            self._write()
        if not self.root.is_local:
            time.sleep(SETTLE_S)
            current = read_lease(self.root)
            if current is None or current.run_id != self.run_id:
                raise OutputBusy(self._busy_message(current) if current else f"{self.root}: another run raced for it")
        self._thread = threading.Thread(target=self._beat, name="compeffdist-lease", daemon=True)
        self._thread.start()

    def _busy_message(self, holder: LeaseRecord) -> str:
        return (
            f"{self.root} is in use by {holder.describe()}. Wait for it to finish or stop it; a lease whose "
            f"process is gone is taken over at once on its host, elsewhere after {holder.stale_after_s:.0f} s "
            "without a heartbeat."
        )

    def _beat(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self._guard():
                    current = read_lease(self.root)
                    if current is None or current.run_id != self.run_id:
                        self.lost = f"taken over by {current.describe()}" if current else "the lease file was removed"
                        self._log(f"lease on {self.root} lost: {self.lost}; this run will not publish")
                        return
                    self.record = replace(self.record, heartbeat_at=time.time())
                    self._write()
                failing_since = None
            except Exception as exc:  # a storage hiccup: keep trying until the lease would look stale to others
                failing_since = failing_since or time.time()
                if time.time() - failing_since > self.record.stale_after_s:
                    self.lost = f"could not refresh it for {self.record.stale_after_s:.0f} s: {exc}"
                    self._log(f"lease on {self.root} lost: {self.lost}")
                    return

    def verify(self) -> None:
        """Raise LeaseLost unless this run still holds the lease (called before every publish)."""
        if self.lost is None:
            current = read_lease(self.root)
            if current is None or current.run_id != self.run_id:
                self.lost = f"taken over by {current.describe()}" if current else "the lease file was removed"
        if self.lost is not None:
            raise LeaseLost(f"this run ({self.run_id}) no longer holds {self.root}: {self.lost}; nothing was published")

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + LOCK_TIMEOUT_S)
        try:
            with self._guard():
                current = read_lease(self.root)
                if current is not None and current.run_id == self.run_id:
                    self._file.delete()
        except Exception as exc:  # the run's outcome stands; the lease just goes stale
            stale = f"{self.record.stale_after_s:.0f} s"
            self._log(f"could not remove the lease on {self.root} ({exc}); others see it stale after {stale}")

    def __enter__(self) -> OutputLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())
