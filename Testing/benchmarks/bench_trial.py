"""Trial database benchmark: cost of a fully checked, audited, locked cycle write; status; export.

A trial-sized database (300 patients across the four sites, 7 cycles each, arm 3: 4; 1800 cycles) is
written through :meth:`TrialStore.add_cycle` (patient lock, rule check, version row, audit row,
one transaction each) on SQLite (WAL, synchronous=FULL; audit row and hash chain by the client)
and on a throw-away PostgreSQL server (scram passwords) as the four site users that ``grant``
creates: every statement under row-level security, the audit rows and their hash chain written by
the SECURITY DEFINER triggers (issue 12).
Side by side in the same run (interleaved blocks of 50), the baseline is a bare SQLAlchemy Core
INSERT of the same cycle row into a copy of the table (same columns, no constraints), one
transaction per row, same database: the ratio is what correctness (lock, rules, audit) costs. It is
the median of the blocks' ratios (on a shared, loaded machine one slow block moves a ratio of
totals); the machine's load average is printed with it.
Also reported: one patient's ``status`` and the CSV export of all.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Column, MetaData, Table, insert

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from startnet.trial import summary  # noqa: E402
from startnet.trial.identity import User  # noqa: E402
from startnet.trial.models import CycleVersion  # noqa: E402
from startnet.trial.records import CycleEntry  # noqa: E402
from startnet.trial.store import TrialStore  # noqa: E402

SITES = ("Sahlgrenska", "Skåne", "Karolinska", "Uppsala")
N_PATIENTS, N_CYCLES = 300, 7
D0 = dt.date(2025, 1, 13)


def _fill(store: TrialStore, writers=None):
    """Write every cycle (patient i through ``writers[i % 4]``, else ``store``); after each block of
    50, as many bare INSERTs through ``store`` (interleaved, so that the machine's load affects both
    alike). Returns (s per add_cycle, s per bare insert, each block's ratio)."""
    writers = writers or [store] * 4
    for i in range(N_PATIENTS):
        writers[i % 4].enroll(f"SN-{i:04d}", SITES[i % 4], 1 + i % 3, dt.date(2025, 1, 2))
    jobs = [(i, k) for k in range(1, N_CYCLES + 1) for i in range(N_PATIENTS) if not (i % 3 == 2 and k > 4)]
    now = dt.datetime.now(dt.timezone.utc)
    bare_table = Table("bench_bare_cycles", MetaData(),  # same columns, no constraints or indexes
                       *[Column(c.name, c.type, primary_key=c.primary_key) for c in CycleVersion.__table__.columns])
    bare_table.create(store.engine)
    checked_s = bare_s = 0.0
    ratios = []
    for start in range(0, len(jobs), 50):
        block = jobs[start:start + 50]
        t0 = time.perf_counter()
        for i, k in block:
            writers[i % 4].add_cycle(f"SN-{i:04d}", CycleEntry(k, D0 + dt.timedelta(weeks=10 * (k - 1)), 7.4,
                                                      2.5 + 0.001 * i))
        t1 = time.perf_counter()
        for j in range(len(block)):
            with store.engine.begin() as conn:
                conn.execute(insert(bare_table), [{
                    "patient_pk": 1, "cycle": 1000 + start + j, "version": 1, "current": True, "date": D0,
                    "activity_gbq": 7.4, "kidney_gy": 2.5, "recorded_at_utc": now, "recorded_by": "bench"}])
        t2 = time.perf_counter()
        checked_s += t1 - t0
        bare_s += t2 - t1
        ratios.append((t1 - t0) / (t2 - t1))
    return checked_s / len(jobs), bare_s / len(jobs), ratios


def _site_writers(server, url: str, store: TrialStore):
    """PostgreSQL: one granted site user per site (passwords only in the server's 0600 passfile)."""
    import secrets

    from startnet.trial import users

    writers = []
    for k, site in enumerate(SITES):
        login, password = f"bench_site_{k}", secrets.token_urlsafe(16)
        users.grant(store, login, "site", site, password)
        server.remember_password(login, password)
        writers.append(TrialStore.open(url.replace("bench_owner@", f"{login}@")))
    return writers


def _measure(table, label: str, url: str, server=None) -> None:
    store = TrialStore.initialise(url, None if server else User("bench"))
    writers = _site_writers(server, url, store) if server else None
    per_write_s, per_bare_s, ratios = _fill(store, writers)
    for w in writers or []:
        w.close()
    status_t0 = time.perf_counter()
    for i in range(0, N_PATIENTS, 10):
        summary.status(store, f"SN-{i:04d}")
    per_status_s = (time.perf_counter() - status_t0) / (N_PATIENTS // 10)
    export_t0 = time.perf_counter()
    text = summary.export_csv_text(store)
    export_s = time.perf_counter() - export_t0
    problems = summary.check_consistency(store)
    store.close()
    what = ("site users under RLS, audit + hash chain by triggers" if server
            else "audit row + hash chain by the client")
    table.add(f"{label}: add_cycle (lock+rules+version+audit, 1 txn; {what})",
              f"{per_write_s * 1e3:.2f} ms/cycle", ratio=statistics.median(ratios), target="<= 5x",
              note=f"vs bare INSERT {per_bare_s * 1e3:.2f} ms/row (owner, no RLS/triggers), same database; "
                   f"median of {len(ratios)} blocks' ratios; load average "
                   + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    table.add(f"{label}: status of one patient ({N_CYCLES} cycles)", f"{per_status_s * 1e3:.1f} ms")
    table.add(f"{label}: CSV export", f"{export_s:.2f} s", note=f"{text.count(chr(10)) - 1} rows")
    table.add(f"{label}: consistency check after the run", f"{len(problems)} problems")


def run(table) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _measure(table, "sqlite", str(Path(folder) / "bench.db"))
    from trial_postgres import PostgresUnavailable, running_postgres

    try:
        with running_postgres() as server:
            server.create_owner("bench_owner")
            _measure(table, "postgresql", server.create_database("bench", owner="bench_owner"), server)
    except PostgresUnavailable as exc:
        table.add("postgresql", "not measured", note=str(exc).splitlines()[0])
