"""One writer per output: the lease on run.output_dir, on local folders and S3; dead holders are taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from compeffdist.lease import LEASE, LeaseLost, LeaseRecord, OutputBusy, OutputLease, read_lease
from compeffdist.storage import Location

pytestmark = pytest.mark.unit

HOLDER = """
import sys, time
from compeffdist.lease import OutputLease
from compeffdist.storage import Location
lease = OutputLease(Location.of(sys.argv[1]), heartbeat_s=0.2, stale_after_beats=3)
lease.acquire()
print("held", lease.run_id, flush=True)
time.sleep(120)
"""


def _holder(root: Path) -> tuple[subprocess.Popen, str]:
    """Another process holding the lease on `root`; returns it and its run id."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    line = child.stdout.readline().split()
    assert line[:1] == ["held"], "the holder process did not take the lease"
    return child, line[1]


def _record(**changes) -> LeaseRecord:
    now = time.time()
    fields = dict(
        run_id="other-run", owner="someone", host="other-node", pid=4242, command="compeffdist run job.yaml",
        started_at=now - 500, heartbeat_at=now, stale_after_s=60.0,
    )  # fmt: skip
    return LeaseRecord(**{**fields, **changes})


def _write(root: Path, record: LeaseRecord) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / LEASE).write_text(json.dumps(asdict(record)))


def test_a_live_holder_refuses_a_second_run_naming_it(tmp_path):
    child, run_id = _holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(OutputBusy) as info:
            OutputLease(Location.of(tmp_path)).acquire()
        assert time.monotonic() - started < 5  # at once, not after a timeout
        message = str(info.value)
        assert f"run {run_id}" in message and f"pid {child.pid}" in message and socket.gethostname() in message
        assert "last heartbeat" in message and str(tmp_path) in message
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_a_killed_holder_is_taken_over_at_once_with_a_message(tmp_path, reap):
    child, old_run = _holder(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    if reap:
        child.wait()
    else:  # killed but not yet reaped by its parent: the pid still exists, as a zombie
        deadline = time.time() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.05)
    messages: list[str] = []
    lease = OutputLease(Location.of(tmp_path), log=messages.append)
    lease.acquire()
    try:
        assert read_lease(Location.of(tmp_path)).run_id == lease.run_id
        assert len(messages) == 1 and f"run {old_run}" in messages[0]
        assert f"its process (pid {child.pid} on this host) is gone" in messages[0]
    finally:
        lease.release()
        child.wait()
    assert read_lease(Location.of(tmp_path)) is None


def test_a_holder_elsewhere_is_stale_only_after_missed_heartbeats(tmp_path):
    _write(tmp_path, _record(heartbeat_at=time.time() - 5))
    with pytest.raises(OutputBusy, match=r"other-run \(someone@other-node, pid 4242.*last heartbeat 5 s ago"):
        OutputLease(Location.of(tmp_path)).acquire()
    _write(tmp_path, _record(heartbeat_at=time.time() - 100))
    messages: list[str] = []
    with OutputLease(Location.of(tmp_path), log=messages.append) as lease:
        assert read_lease(Location.of(tmp_path)).run_id == lease.run_id
    assert "no heartbeat for 100 s (stale after 60 s)" in messages[0]


def test_heartbeats_refresh_the_lease_and_a_takeover_is_noticed(tmp_path):
    root = Location.of(tmp_path)
    lease = OutputLease(root, heartbeat_s=0.1, stale_after_beats=3)
    lease.acquire()
    first = read_lease(root).heartbeat_at
    time.sleep(0.5)
    assert read_lease(root).heartbeat_at > first
    lease.verify()
    _write(tmp_path, _record(run_id="usurper"))
    deadline = time.time() + 5
    while lease.lost is None and time.time() < deadline:
        time.sleep(0.05)
    assert lease.lost is not None and "usurper" in lease.lost
    with pytest.raises(LeaseLost, match=r"no longer holds .*usurper.*nothing was published"):
        lease.verify()
    lease.release()
    assert read_lease(root).run_id == "usurper"  # another run's lease is never removed


def test_verify_fails_when_the_lease_was_taken_between_heartbeats(tmp_path):
    root = Location.of(tmp_path)
    with OutputLease(root, heartbeat_s=60) as lease:
        _write(tmp_path, _record(run_id="usurper"))
        with pytest.raises(LeaseLost, match="usurper"):
            lease.verify()


def test_an_unreadable_lease_file_is_taken_over(tmp_path):
    (tmp_path / LEASE).write_text("{not json", encoding="utf-8")
    messages: list[str] = []
    with OutputLease(Location.of(tmp_path), log=messages.append):
        pass
    assert "unreadable lease" in messages[0]


def test_lease_on_an_object_store(s3_root):
    root = Location.of(s3_root).join("lease-test")
    first = OutputLease(root, heartbeat_s=0.5)
    first.acquire()
    try:
        assert read_lease(root).run_id == first.run_id
        with pytest.raises(OutputBusy, match=f"run {first.run_id}"):
            OutputLease(root).acquire()
        first.verify()
    finally:
        first.release()
    assert read_lease(root) is None
    with OutputLease(root) as second:
        assert read_lease(root).run_id == second.run_id
