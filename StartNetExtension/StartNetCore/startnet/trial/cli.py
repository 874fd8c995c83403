"""``startnet trial ...``: the trial tracker's command line (contract of issue 6, item 5).

``--db`` takes an SQLAlchemy URL or a plain SQLite file path (default: env STARTNET_TRIAL_DB).
SQLite: ``--user``/``--user-site`` (env STARTNET_USER / STARTNET_USER_SITE) name who acts, for the
audit trail and site scoping; the default is the operating-system user with no site restriction.
PostgreSQL: the database login acts, with the role and site granted to it (``grant``); the
options are refused and the environment variables ignored.
Values are parsed by the handlers (not argparse) so that every error is one line, exit code 2
for bad input and 3 for a refused trial action.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from startnet.errors import InputError, OutputError
from startnet.trial.identity import current_user
from startnet.trial.protocol import Protocol, default_protocol
from startnet.trial.results import check_matches, load_results
from startnet.trial.urls import backend

# SQLAlchemy/Alembic (startnet.trial.store, .summary) are imported by the handlers only, so that
# building the ``startnet`` parser for other commands does not pay for them.


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument("--db", default=default, metavar="URL",
                        help="SQLAlchemy URL or SQLite file path (env STARTNET_TRIAL_DB)")
    parser.add_argument("--user", default=default,
                        help="SQLite only: user name for the audit trail (env STARTNET_USER)")
    parser.add_argument("--user-site", default=default, metavar="SITE",
                        help="SQLite only: restrict the user to one site (env STARTNET_USER_SITE)")


def register(subparsers) -> None:
    trial = subparsers.add_parser(
        "trial", help="START-NET trial tracker (patients, cycles, kidney dose)",
        description="Records START-NET patients and cycles and checks the next cycle against the protocol. "
                    "--db takes an SQLAlchemy URL or an SQLite file path (env STARTNET_TRIAL_DB). "
                    "SQLite (one site, no access control): --user/--user-site (env STARTNET_USER/"
                    "STARTNET_USER_SITE) name who acts; the default is the operating-system user with no site "
                    "restriction. PostgreSQL: the database login acts, with the role and site the owner granted "
                    "it (grant/revoke/users); --user/--user-site are refused. Exit codes: 0 done, 1 check found "
                    "problems, 2 bad input, 3 refused by the trial rules or the database.")
    _common(trial, top=True)
    sub = trial.add_subparsers(dest="trial_command", metavar="ACTION")
    trial.set_defaults(handler=lambda args: (trial.print_help(), 2)[1])

    def add(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, top=False)
        p.set_defaults(handler=handler)
        return p

    p = add("init", _init, "create or upgrade the trial database (Alembic upgrade head)")
    p.add_argument("--protocol", metavar="FILE.json", help="protocol parameters (default: START-NET)")

    p = add("enroll", _enroll, "enrol a patient (refused if an eligibility criterion fails)")
    p.add_argument("--patient", required=True, metavar="ID", help="trial pseudonym (never a personnummer)")
    p.add_argument("--site", required=True)
    p.add_argument("--arm", required=True, metavar="N")
    p.add_argument("--enrolled", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--eligibility", metavar="FILE.json", help="eligibility record (criteria and labs)")

    for name, handler, text in (("add-cycle", _add_cycle, "record a cycle"),
                                ("correct-cycle", _correct_cycle, "record a corrected version of a cycle")):
        p = add(name, handler, text)
        p.add_argument("--patient", required=True, metavar="ID")
        p.add_argument("--cycle", required=True, metavar="N")
        required = name == "add-cycle"
        p.add_argument("--date", required=required, metavar="YYYY-MM-DD")
        p.add_argument("--activity-gbq", required=required, metavar="X", help="measured administered activity")
        dose = p.add_mutually_exclusive_group(required=required)
        dose.add_argument("--kidney-gy", metavar="Y", help="mean kidney absorbed dose of this cycle")
        dose.add_argument("--results", metavar="RESULTS.json", help="the dosimetry pipeline's results.json")
        p.add_argument("--kidney-left-gy", metavar="Y")
        p.add_argument("--kidney-right-gy", metavar="Y")
        p.add_argument("--uncertainty-pct", metavar="U", help="relative standard uncertainty of the kidney dose")
        p.add_argument("--bed-gy", metavar="B", help="kidney BED of this cycle")
        p.add_argument("--labs", metavar="FILE.json", help="lab values before the cycle")
        p.add_argument("--capecitabine-mg-m2", metavar="D", help="arm 1: capecitabine dose in mg/m2")
        p.add_argument("--bsa-m2", metavar="A", help="body-surface area used for capecitabine")
        p.add_argument("--capecitabine-days", metavar="N", help="days capecitabine was given")
        p.add_argument("--capecitabine-schedule", metavar="TEXT", help='e.g. "twice daily, days 1-14"')
        p.add_argument("--remarks", metavar="TEXT")
        p.add_argument("--deviation-reason", metavar="TEXT", help="record a protocol deviation with this reason")
        p.add_argument("--json", action="store_true", help="print the stored record as JSON")
        if name == "correct-cycle":
            p.add_argument("--reason", required=True, metavar="TEXT", help="why the record is corrected")

    p = add("status", _status, "cumulative kidney dose and the next cycle's limits")
    p.add_argument("--patient", required=True, metavar="ID")
    p.add_argument("--json", action="store_true")

    p = add("history", _history, "all versions of every cycle and the audit trail")
    p.add_argument("--patient", required=True, metavar="ID")
    p.add_argument("--json", action="store_true")

    p = add("export", _export, "export every visible cycle")
    p.add_argument("--format", required=True, choices=["csv"])
    p.add_argument("--all-versions", action="store_true", help="include superseded versions")
    p.add_argument("--out", metavar="FILE", help="write here instead of standard output")

    p = add("patients", _patients, "list patients (the user's site only, if restricted)")
    p.add_argument("--site")
    p.add_argument("--json", action="store_true")

    p = add("cameras", _cameras, "cameras and calibration files each site's recorded doses came from")
    p.add_argument("--site")
    p.add_argument("--json", action="store_true")

    add("check", _check, "verify the database's invariants (versions, audit entries, the audit hash chain, every "
                         "row against its audit entry); exit 1 naming the first altered, inserted or removed row")

    p = add("grant", _grant, "PostgreSQL, owner only: create or update a login and give it one role")
    p.add_argument("login", metavar="LOGIN", help="PostgreSQL login (role) name, lower case")
    p.add_argument("--role", required=True, metavar="site|coordinator|monitor",
                   help="site: one site's patients; coordinator: all sites; monitor: read-only, all sites")
    p.add_argument("--site", help="the site of a site user")
    p.add_argument("--password-file", metavar="FILE",
                   help="file whose first line is the login's password (needed when the login is created)")

    p = add("revoke", _revoke, "PostgreSQL, owner only: end a login's access to this trial database")
    p.add_argument("login", metavar="LOGIN")

    p = add("users", _users, "PostgreSQL, owner only: list the logins and their roles and sites")
    p.add_argument("--json", action="store_true")

    p = add("migrate-to", _migrate_to, "copy this trial (every patient, cycle version and audit row) into an "
                                       "empty PostgreSQL database and check both sides")
    p.add_argument("url", metavar="URL", help="postgresql://OWNER@HOST/DB (password from ~/.pgpass or PGPASSFILE)")


# --- value parsing (one-line errors) -----------------------------------------------------------
def _date(text: Optional[str], option: str) -> Optional[dt.date]:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


def _float(text: Optional[str], option: str) -> Optional[float]:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{option} {text!r}: expected a finite number >= 0")
    return value


def _int(text: Optional[str], option: str) -> Optional[int]:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a whole number") from None
    if value < 1:
        raise InputError(f"{option} {text!r}: expected a number >= 1")
    return value


def _json_file(path: Optional[str], what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} file {path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} file {path}: not readable JSON ({exc})") from None


def _store(args, init: bool = False, protocol: Optional[Protocol] = None):
    from startnet.trial.store import TrialStore

    db = args.db or os.environ.get("STARTNET_TRIAL_DB")
    if not db:
        raise InputError("no database: give --db URL (or a SQLite file path) or set STARTNET_TRIAL_DB")
    if backend(db) == "postgresql":
        if args.user or args.user_site:
            raise InputError("--user/--user-site are not accepted with PostgreSQL: the database login is the acting "
                             "user, with the role and site the administrator granted it (startnet trial grant); "
                             "STARTNET_USER/STARTNET_USER_SITE are ignored there")
        return TrialStore.initialise(db, None, protocol) if init else TrialStore.open(db, None)
    user_site = args.user_site
    sites = (protocol or default_protocol()).sites
    user = current_user(args.user, user_site)
    if init:
        store = TrialStore.initialise(db, user, protocol)
    else:
        store = TrialStore.open(db, user)
        sites = store.protocol.sites
    if user.site is not None:  # canonical spelling of the user's site
        user = current_user(user.name, user.site, sites)
        store._user = user
    return store


# --- handlers ----------------------------------------------------------------------------------
def _init(args) -> int:
    protocol = None
    if args.protocol:
        data = _json_file(args.protocol, "protocol")
        if not isinstance(data, dict):
            raise InputError(f"protocol file {args.protocol}: expected a JSON object of parameters")
        protocol = Protocol.from_dict(data)
    from startnet.trial.db import shown_url

    store = _store(args, init=True, protocol=protocol)
    print(f"trial database ready: {shown_url(store.engine)}")
    return 0


def _enroll(args) -> int:
    store = _store(args)
    arm = _int(args.arm, "--arm")
    record = _json_file(args.eligibility, "eligibility")
    info = store.enroll(args.patient, args.site, arm, _date(args.enrolled, "--enrolled"), record,
                        eligibility_source=f"eligibility file {args.eligibility}")
    missing = (info["eligibility"] or {}).get("not_documented") or []
    print(f"enrolled {info['patient']} at {info['site']}, arm {info['arm']}, {info['enrolled']}")
    if info["eligibility"] is None:
        print("note: no eligibility record given")
    else:
        if missing:
            print(f"note: eligibility criteria not documented: {', '.join(missing)}")
        unknown = info["eligibility"].get("not_evaluated") or []
        if unknown:
            print(f"note: eligibility entries matching no criterion (not evaluated): {', '.join(unknown)}")
    return 0


def _cycle_values(args, for_correction: bool) -> Dict[str, Any]:
    values: Dict[str, Any] = {
        "date": _date(args.date, "--date"),
        "activity_gbq": _float(args.activity_gbq, "--activity-gbq"),
        "kidney_gy": _float(args.kidney_gy, "--kidney-gy"),
        "kidney_left_gy": _float(args.kidney_left_gy, "--kidney-left-gy"),
        "kidney_right_gy": _float(args.kidney_right_gy, "--kidney-right-gy"),
        "kidney_uncertainty_pct": _float(args.uncertainty_pct, "--uncertainty-pct"),
        "kidney_bed_gy": _float(args.bed_gy, "--bed-gy"),
        "labs": _json_file(args.labs, "labs"),
        "capecitabine_mg_per_m2": _float(args.capecitabine_mg_m2, "--capecitabine-mg-m2"),
        "body_surface_area_m2": _float(args.bsa_m2, "--bsa-m2"),
        "capecitabine_days": _int(args.capecitabine_days, "--capecitabine-days"),
        "capecitabine_schedule": args.capecitabine_schedule,
        "remarks": args.remarks,
    }
    if args.kidney_gy is not None:
        values["dosimetry_source"] = "entered (--kidney-gy)"
    if args.results is not None:
        result = load_results(args.results)
        cycle = _int(args.cycle, "--cycle")
        if values["activity_gbq"] is not None:
            for warning in check_matches(result, args.patient, cycle, values["activity_gbq"]):
                print(f"warning: {warning} (recorded with the cycle)", file=sys.stderr)
        from_results = {"kidney_gy": result.kidney_gy, "kidney_left_gy": result.kidney_left_gy,
                        "kidney_right_gy": result.kidney_right_gy, "kidney_uncertainty_pct": result.uncertainty_pct,
                        "kidney_bed_gy": result.bed_gy}
        for key, value in from_results.items():
            if values[key] is not None and value is not None and not math.isclose(values[key], value, rel_tol=1e-9):
                raise InputError(f"{key} given on the command line ({values[key]:g}) differs from results "
                                 f"file {args.results} ({value:g})")
            values[key] = value if value is not None else values[key]
        values["dosimetry_source"] = result.source
        values["dosimetry"] = result.provenance
    if for_correction:
        return {k: v for k, v in values.items() if v is not None}
    return values


def _print_record(args, record: Dict[str, Any], verb: str, patient: str) -> None:
    from startnet.trial import summary

    if args.json:
        print(summary.dumps_json(record))
        return
    print(f"{verb} cycle {record['cycle']} (version {record['version']}) for {patient}: {record['date']}, "
          f"{record['activity_gbq']:g} GBq, kidney {record['kidney_gy']:.3f} Gy")
    for d in record["deviations"]:
        print(f"protocol deviation recorded ({d['code']}): {d['message']}; reason: {record['deviation_reason']}")


def _add_cycle(args) -> int:
    from startnet.trial.records import CycleEntry

    store = _store(args)
    values = _cycle_values(args, for_correction=False)
    entry = CycleEntry(cycle=_int(args.cycle, "--cycle"), **values)
    record = store.add_cycle(args.patient, entry, deviation_reason=args.deviation_reason)
    if args.deviation_reason and not record["deviations"] and not args.json:
        print("note: no protocol deviation, --deviation-reason not recorded", file=sys.stderr)
    _print_record(args, record, "recorded", args.patient)
    return 0


def _correct_cycle(args) -> int:
    store = _store(args)
    changes = _cycle_values(args, for_correction=True)
    record = store.correct_cycle(args.patient, _int(args.cycle, "--cycle"), changes, args.reason,
                                 deviation_reason=args.deviation_reason)
    for warning in record["later_cycle_warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    _print_record(args, record, "corrected", args.patient)
    return 0


def _status(args) -> int:
    from startnet.trial import summary

    store = _store(args)
    st = summary.status(store, args.patient)
    if args.json:
        print(summary.dumps_json(st))
        return 0
    print(f"patient {st['patient']}  site {st['site']}  arm {st['arm']}  enrolled {st['enrolled']}")
    print(f"{'cycle':>5} {'date':>10} {'GBq':>7} {'kidney Gy':>9} {'Gy/GBq':>7} {'cum. Gy':>8}  deviations")
    for c in st["cycles"]:
        devs = ",".join(d["code"] for d in c["deviations"])
        print(f"{c['cycle']:>5} {c['date']:>10} {c['activity_gbq']:>7.3f} {c['kidney_gy']:>9.3f} "
              f"{c['gy_per_gbq']:>7.3f} {c['cumulative_kidney_gy']:>8.3f}  {devs}")
    print(f"cumulative kidney dose {st['cumulative_kidney_gy']:.3f} Gy of {st['limit_gy']:g} Gy "
          f"(remaining {st['remaining_kidney_gy']:.3f} Gy)")
    for lesion in st.get("lesions") or []:
        cumulative = lesion["cumulative_mean_gy"]
        seen = ",".join(str(r["cycle"]) for r in lesion["per_cycle"])
        gone = ",".join(str(n) for n in lesion["not_seen_in"])
        print(f"lesion {lesion['id']}: {lesion['status']}, cycles {seen}, cumulative "
              + ("n/a" if cumulative is None else f"{cumulative:.2f} Gy") + (f", not seen in {gone}" if gone else ""))
    for method, m in st["marrow"].items():
        if isinstance(m, dict) and m["cumulative_gy"] is not None:
            missing = f", not in cycle(s) {', '.join(map(str, m['cycles_missing']))}" if m["cycles_missing"] else ""
            print(f"cumulative marrow dose ({method.replace('_', '-')}) {m['cumulative_gy']:.3f} Gy "
                  f"+/- {m['cumulative_uncertainty_gy']:.3f} Gy{missing}")
    n = st["next_cycle"]
    if n["allowed"]:
        window = f"{n['earliest_date']} to {n['latest_date'] or '(open)'}"
        last = "  LAST CYCLE EXPECTED" if n["last_cycle_expected"] else ""
        print(f"next cycle {n['cycle']}: allowed, at most {_floor_gbq(n['max_activity_gbq']):.3f} GBq, "
              f"{window}{last}")
    else:
        print(f"next cycle {n['cycle']}: NOT allowed")
    if n["probability_limit_exceeded"] is not None:
        rule = ("point estimate" if n["planning_confidence"] is None
                else f"planned at {n['planning_confidence']:.0%} confidence")
        print(f"  P(true cumulative > {st['limit_gy']:g} Gy) {100.0 * n['probability_limit_exceeded']:.1f} % at "
              f"{_floor_gbq(n['max_activity_gbq']):.3f} GBq ({rule}); at most "
              f"{_floor_gbq(n['max_activity_gbq_95']):.3f} GBq keeps it <= 5 %")
    print(f"  {n['reason']}")
    return 0


def _floor_gbq(activity_gbq: float) -> float:
    """Activities are shown rounded down to 1 MBq (never up over the limit)."""
    return math.floor(activity_gbq * 1000.0 + 1e-6) / 1000.0


def _history(args) -> int:
    from startnet.trial import summary

    store = _store(args)
    h = summary.history(store, args.patient)
    if args.json:
        print(summary.dumps_json(h))
        return 0
    print(f"patient {h['patient']['patient']}: {len(h['versions'])} cycle versions, {len(h['audit'])} audit entries")
    for v in h["versions"]:
        flag = "current" if v["current"] else "superseded"
        why = f"  correction: {v['correction_reason']}" if v["correction_reason"] else ""
        devs = "".join(f"  deviation {d['code']} (reason: {v['deviation_reason']})" for d in v["deviations"])
        print(f"  cycle {v['cycle']} v{v['version']} ({flag}) {v['date']} {v['activity_gbq']:g} GBq "
              f"{v['kidney_gy']:.3f} Gy  by {v['recorded_by']} at {v['recorded_at_utc']}{why}{devs}")
    for a in h["audit"]:
        print(f"  {a['at_utc']} {a['user']}{'@' + a['user_site'] if a['user_site'] else ''} "
              f"{a['action']} {a['entity_key']}")
    return 0


def _export(args) -> int:
    from startnet.trial import summary

    store = _store(args)
    text = summary.export_csv_text(store, all_versions=args.all_versions)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"export file {args.out}: cannot be written ({exc.strerror})") from None
    else:
        sys.stdout.write(text)
    return 0


def _patients(args) -> int:
    from startnet.trial import summary

    store = _store(args)
    rows = store.patients(args.site)
    if args.json:
        print(summary.dumps_json(rows))
    else:
        for p in rows:
            print(f"{p['patient']}\t{p['site']}\tarm {p['arm']}\t{p['enrolled']}")
    return 0


def _cameras(args) -> int:
    from startnet.trial import summary
    from startnet.trial.cameras import cameras_by_site

    rows = cameras_by_site(_store(args), args.site)
    if args.json:
        print(summary.dumps_json(rows))
    else:
        for row in rows:
            sha = f" calibration {row['calibration_sha256'][:12]}" if row["calibration_sha256"] else ""
            print(f"{row['site']}\t{row['camera']}{sha}\t{len(row['cycles'])} cycle(s): {', '.join(row['cycles'])}")
    return 0


def _check(args) -> int:
    from startnet.trial import summary
    from startnet.trial.integrity import check_audit

    store = _store(args)
    problems = summary.check_consistency(store)
    for line in problems:
        print(f"inconsistent: {line}")
    if not problems:
        info = check_audit(store)[1]
        print(f"audit trail intact: {info['audit_rows']} rows, chain head {info['head_hash']}")
    print("database consistent" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def _grant(args) -> int:
    from startnet.trial import users

    password = users.read_password_file(args.password_file) if args.password_file else None
    info = users.grant(_store(args), args.login, args.role, args.site, password)
    where = f" at {info['site']}" if info["site"] else ""
    print(f"{'created' if info['created'] else 'updated'} login {info['login']}: {info['role']}{where}")
    return 0


def _revoke(args) -> int:
    from startnet.trial import users

    info = users.revoke(_store(args), args.login)
    print(f"revoked login {info['login']}" + (f" ({info['role']})" if info["role"] else " (had no access)"))
    return 0


def _users(args) -> int:
    from startnet.trial import summary, users

    rows = users.users(_store(args))
    if args.json:
        print(summary.dumps_json(rows))
        return 0
    for u in rows:
        state = "" if u["can_log_in"] else "  (cannot log in)"
        print(f"{u['login']}\t{u['role']}\t{u['site'] or '(all sites)'}\tgranted {u['granted_at_utc']} by "
              f"{u['granted_by']}{state}")
    return 0


def _migrate_to(args) -> int:
    from startnet.trial.migrate import migrate_to

    info = migrate_to(_store(args), args.url)
    print(f"copied {info['patients']} patients, {info['cycle_versions']} cycle versions and {info['audit_rows']} "
          f"audit rows to {info['to']}; both databases check consistent")
    return 0
