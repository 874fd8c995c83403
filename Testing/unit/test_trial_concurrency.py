"""Separate processes writing at once lose nothing; a writer killed mid-transaction leaves no trace.

Runs on SQLite (WAL, BEGIN IMMEDIATE, busy timeout) and on a real PostgreSQL server (row lock on
the patient). Writers are real OS processes (multiprocessing "spawn", or ``python -c``
subprocesses for the SIGKILL tests), started together behind a barrier.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from startnet.errors import TrialRuleError
from startnet.trial import summary
from startnet.trial.identity import User
from startnet.trial.records import CycleEntry
from startnet.trial.store import TrialStore

D0 = dt.date(2025, 1, 13)
CTX = multiprocessing.get_context("spawn")


def _date(i: int) -> dt.date:
    return D0 + dt.timedelta(weeks=10 * i)


def _add_cycles(url, patient, n, barrier, queue):
    try:
        store = TrialStore.open(url, None if url.startswith("postgresql") else User(f"writer-{patient}"))
        barrier.wait(timeout=60)
        for k in range(1, n + 1):
            store.add_cycle(patient, CycleEntry(k, _date(k - 1), 7.5, 1.0))
        queue.put(("ok", patient))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put(("error", f"{patient}: {type(exc).__name__}: {exc}"))


def _correct(url, patient, n, tag, barrier, queue):
    try:
        store = TrialStore.open(url, None if url.startswith("postgresql") else User(f"corrector-{tag}"))
        barrier.wait(timeout=60)
        for i in range(n):
            store.correct_cycle(patient, 1, {"remarks": f"{tag}-{i}"}, reason=f"correction {tag} {i}")
        queue.put(("ok", tag))
    except Exception as exc:
        queue.put(("error", f"{tag}: {type(exc).__name__}: {exc}"))


def _race_cycle_1(url, patient, barrier, queue):
    try:
        store = TrialStore.open(url)
        barrier.wait(timeout=60)
        store.add_cycle(patient, CycleEntry(1, _date(0), 7.5, 3.0))
        queue.put(("ok", ""))
    except TrialRuleError as exc:
        queue.put(("refused", str(exc)))
    except Exception as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def _run_all(jobs):
    queue = CTX.Queue()
    barrier = CTX.Barrier(len(jobs))
    procs = [CTX.Process(target=fn, args=(*args, barrier, queue)) for fn, args in jobs]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(trial_db_url):
    admin = TrialStore.initialise(trial_db_url, None if trial_db_url.startswith("postgresql") else User("coordinator"))
    for pid in ("SN-A", "SN-B", "SN-C", "SN-X"):
        admin.enroll(pid, "Skåne", 2, dt.date(2025, 1, 2))
    admin.add_cycle("SN-X", CycleEntry(1, _date(0), 7.5, 3.0))
    n_cycles, n_corrections = 6, 6
    results = _run_all([(_add_cycles, (trial_db_url, pid, n_cycles)) for pid in ("SN-A", "SN-B", "SN-C")]
                       + [(_correct, (trial_db_url, "SN-X", n_corrections, tag)) for tag in ("p", "q")])
    assert [r for r in results if r[0] != "ok"] == []
    for pid in ("SN-A", "SN-B", "SN-C"):
        cycles = admin.cycles(pid)
        assert [c["cycle"] for c in cycles] == list(range(1, n_cycles + 1))
        assert summary.status(admin, pid)["cumulative_kidney_gy"] == pytest.approx(n_cycles * 1.0)
    versions = admin.cycles("SN-X", all_versions=True)
    assert [v["version"] for v in versions] == list(range(1, 2 * n_corrections + 2))
    remarks = {v["remarks"] for v in versions if v["remarks"]}
    assert remarks == {f"{t}-{i}" for t in "pq" for i in range(n_corrections)}  # every correction kept
    audit = admin.audit_trail()
    assert sum(a["action"] == "add_cycle" for a in audit) == 3 * n_cycles + 1
    assert sum(a["action"] == "correct_cycle" for a in audit) == 2 * n_corrections
    assert summary.check_consistency(admin) == []
    admin.close()


@pytest.mark.slow
def test_same_cycle_raced_is_recorded_once(trial_db_url):
    admin = TrialStore.initialise(trial_db_url)
    admin.enroll("SN-R", "Uppsala", 2, dt.date(2025, 1, 2))
    results = _run_all([(_race_cycle_1, (trial_db_url, "SN-R"))] * 4)
    kinds = sorted(r[0] for r in results)
    assert kinds == ["ok", "refused", "refused", "refused"], results
    assert all(r[1] == "cycle 1 already recorded for patient SN-R (use correct-cycle to change it)"
               for r in results if r[0] == "refused")
    assert len(admin.cycles("SN-R", all_versions=True)) == 1
    assert summary.check_consistency(admin) == []
    admin.close()


_PAUSING_WRITER = textwrap.dedent("""
    import datetime as dt, pathlib, sys, time
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from startnet.trial.models import CycleVersion
    from startnet.trial.records import CycleEntry
    from startnet.trial.store import TrialStore

    url, marker, action = sys.argv[1:4]

    @event.listens_for(Session, "after_flush")
    def _pause(session, _ctx):  # the new version written (on PostgreSQL with its audit rows, by the
        # database's triggers), transaction not committed: wait to be killed
        if any(isinstance(o, CycleVersion) for o in session.new):
            pathlib.Path(marker).write_text("in transaction")
            time.sleep(600)

    store = TrialStore.open(url)
    if action == "add_cycle":
        store.add_cycle("SN-K", CycleEntry(2, dt.date(2025, 3, 24), 7.5, 3.0))
    else:
        store.correct_cycle("SN-K", 1, {"kidney_gy": 9.9}, reason="killed")
""")


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early: {proc.stderr.read()}")
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError("writer never reached the middle of its transaction")
        time.sleep(0.05)


@pytest.mark.parametrize("action", ["add_cycle", "correct_cycle"])
def test_writer_killed_mid_transaction_leaves_database_consistent(trial_db_url, tmp_path, action):
    admin = TrialStore.initialise(trial_db_url)
    admin.enroll("SN-K", "Karolinska", 2, dt.date(2025, 1, 2))
    admin.add_cycle("SN-K", CycleEntry(1, dt.date(2025, 1, 13), 7.5, 3.0))
    before_versions = admin.cycles("SN-K", all_versions=True)
    before_audit = admin.audit_trail()
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _PAUSING_WRITER, trial_db_url, str(marker), action],
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert admin.cycles("SN-K", all_versions=True) == before_versions
    assert admin.audit_trail() == before_audit
    assert summary.check_consistency(admin) == []
    # the killed writer's lock is gone: the same change now goes through at once
    admin.add_cycle("SN-K", CycleEntry(2, dt.date(2025, 3, 24), 7.5, 3.0))
    admin.correct_cycle("SN-K", 1, {"kidney_gy": 2.5}, reason="after the kill")
    assert summary.status(admin, "SN-K")["cumulative_kidney_gy"] == pytest.approx(5.5)
    assert summary.check_consistency(admin) == []
    admin.close()


_BUSY_WRITER = textwrap.dedent("""
    import datetime as dt, sys
    from startnet.trial.records import CycleEntry
    from startnet.trial.store import TrialStore
    store = TrialStore.open(sys.argv[1])
    k = len(store.cycles("SN-B")) + 1
    print("ready", flush=True)
    while True:
        store.add_cycle("SN-B", CycleEntry(k, dt.date(2025, 1, 13) + dt.timedelta(weeks=10 * (k - 1)), 7.5, 0.05))
        if k % 3 == 0:
            store.correct_cycle("SN-B", k, {"remarks": "checked"}, reason="second reading")
        k += 1
""")


@pytest.mark.slow
def test_writers_killed_at_random_moments_leave_database_consistent(trial_db_url):
    admin = TrialStore.initialise(trial_db_url)
    admin.enroll("SN-B", "Sahlgrenska", 2, dt.date(2025, 1, 2))
    rng = random.Random(20261123)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _BUSY_WRITER, trial_db_url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.2, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        assert summary.check_consistency(admin) == []
    cycles = admin.cycles("SN-B")
    assert len(cycles) >= 4  # the writers made progress between kills
    assert [c["cycle"] for c in cycles] == list(range(1, len(cycles) + 1))
    assert summary.status(admin, "SN-B")["cumulative_kidney_gy"] == pytest.approx(0.05 * len(cycles))
    admin.close()


def test_locked_read_sees_the_cycle_committed_by_the_lock_holder(postgres_server):
    """PostgreSQL: a writer's read of the patient's cycles happens AFTER it got the patient's lock.

    The client locks the patient and reads its current cycles in one statement (the patient's row
    LATERAL ``startnet_locked_cycles``); a statement's own snapshot is older than a lock it waits
    for, so the read must run on a later snapshot (the VOLATILE function's), or a writer waiting on
    the lock checks the protocol rules against cycles that no longer are all the cycles.
    """
    import threading

    from startnet.trial.store import _LOCKED_CYCLES

    owner = f"lock_owner_{os.getpid()}"
    postgres_server.create_owner(owner)
    url = postgres_server.create_database(f"lockread_{owner}", owner=owner)
    store = TrialStore.initialise(url)
    store.enroll("SN-L1", "Uppsala", 2, dt.date(2025, 1, 2))
    store.close()
    locked_read = _LOCKED_CYCLES.element.text.replace(":pid", "%s")
    holder = postgres_server.connect(f"lockread_{owner}", user=owner)
    waiter = postgres_server.connect(f"lockread_{owner}", user=owner)
    try:
        assert [r[-1] for r in holder.execute(locked_read, ("SN-L1",)).fetchall()] == [None]  # lock held, no cycle
        holder.execute("INSERT INTO cycle_versions (patient_pk, cycle, version, current, date, activity_gbq, "
                       "kidney_gy, recorded_at_utc, recorded_by) SELECT id, 1, 1, TRUE, '2025-01-13', 7.4, 3.0, "
                       "now(), 'x' FROM patients WHERE patient_id = 'SN-L1'")
        seen = []
        thread = threading.Thread(target=lambda: seen.append(waiter.execute(locked_read, ("SN-L1",)).fetchall()))
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and not seen  # waits for the patient's lock
        holder.commit()
        thread.join(timeout=30)
        cycle_column = [c.name for c in _LOCKED_CYCLES.selected_columns].index("cycle")
        assert [row[cycle_column] for row in seen[0]] == [1]  # the cycle committed while it waited
    finally:
        holder.close()
        waiter.close()
