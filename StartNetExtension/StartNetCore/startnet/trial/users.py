"""Who may use a PostgreSQL trial database: ``startnet trial grant | revoke | users`` (owner only).

A login is a PostgreSQL role with LOGIN and a password. ``grant`` creates it when missing (the
password read from ``--password-file``, sent to the server only as a SCRAM-SHA-256 verifier
computed by libpq, so the plain password is never in a statement or a server log), makes it a
member of exactly one group role (``startnet_site``/``startnet_coordinator``/``startnet_monitor``,
created by migration 0003), records login -> role, site in ``trial_users`` (what the row-level
security policies read; audited by a trigger), grants CONNECT on this database and lets the role
log in (``ALTER ROLE ... LOGIN``: a login revoked earlier is granted again the same way, its
password kept unless ``--password-file`` gives a new one). ``revoke`` removes the three grants and
makes the role ``NOLOGIN``: its next connection, to any database of the cluster, is refused ("role
... is not permitted to log in"), and its open sessions see nothing more (the policies read
``trial_users`` at every statement).

The role is disabled, not dropped: ``DROP ROLE`` fails while the role holds privileges or owns
objects in any database of the cluster, and a dropped name could be created again for someone
else, whose actions would then be indistinguishable by name from the old login's in the audit
trail (which names logins as text). A disabled role keeps the name reserved for the same person;
the administrator may still ``DROP ROLE`` it by hand.

One login serves one trial database: group roles are cluster-wide, so a login granted in two
trial databases of one cluster is scoped by each database's own ``trial_users``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from sqlalchemy import text

from startnet.errors import InputError, TrialRuleError
from startnet.trial.audit_chain import utc_text
from startnet.trial.identity import canonical_site

ROLES = ("site", "coordinator", "monitor")
GROUP = {role: f"startnet_{role}" for role in ROLES}
_LOGIN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _require_owner(store) -> None:
    if not store.is_postgresql:
        raise InputError("SQLite has no logins or access control (anyone who can open the file can do anything); "
                         "several users or sites need PostgreSQL: `startnet trial --db FILE migrate-to URL`")
    if store.user.role != "owner":
        raise TrialRuleError(f"only the owner of the trial database manages users; login {store.user.name!r} is "
                             f"a {store.user.role} user")


def _check_login(login: str) -> str:
    login = (login or "").strip()
    if not _LOGIN.match(login):
        raise InputError(f"login {login!r}: expected 1-63 characters a-z 0-9 _ starting with a letter or _ "
                         f"(PostgreSQL role name, lower case)")
    if login.startswith("pg_") or login in GROUP.values():
        raise InputError(f"login {login!r} is reserved")
    return login


def read_password_file(path: str) -> str:
    """The first line of ``path`` (a password never comes from the command line)."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"password file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"password file {path}: not readable ({exc})") from None
    password = raw.splitlines()[0] if raw.splitlines() else ""
    if len(password) < 12:
        raise InputError(f"password file {path}: the password on its first line must have at least 12 characters")
    return password


def _scram_verifier(conn, login: str, password: str) -> str:
    """SCRAM-SHA-256 verifier of the password, computed client-side by libpq."""
    raw = conn.connection.driver_connection
    if hasattr(raw, "pgconn"):  # psycopg 3
        verifier = raw.pgconn.encrypt_password(password.encode("utf-8"), login.encode("utf-8"), b"scram-sha-256")
        return verifier.decode("ascii")
    from psycopg2.extensions import encrypt_password  # psycopg2

    return encrypt_password(password, login, raw, "scram-sha-256")


def grant(store, login: str, role: str, site: Optional[str], password: Optional[str]) -> Dict[str, Any]:
    _require_owner(store)
    login = _check_login(login)
    if role not in ROLES:
        raise InputError(f"--role {role!r}: expected one of {', '.join(ROLES)}")
    if role == "site":
        if not site:
            raise InputError("--role site needs --site SITE")
        site = canonical_site(site, store.protocol.sites)
    elif site:
        raise InputError(f"--site is only for --role site (a {role} sees every site)")
    with store.engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar()
        existing = conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :l"),
                                {"l": login}).first()
        if existing is not None and (existing[0] or existing[1]):
            raise InputError(f"login {login!r} is a superuser or bypasses row-level security: it cannot be "
                             f"limited to a role; grant a separate login")
        if login == store.user.name:
            raise InputError(f"login {login!r} is the owner connected now; grant a separate login")
        if existing is None:
            if password is None:
                raise InputError(f"login {login!r} does not exist yet: give its password with --password-file FILE")
            conn.exec_driver_sql(f'CREATE ROLE "{login}" LOGIN PASSWORD \'{_scram_verifier(conn, login, password)}\'')
        else:  # may have been disabled by revoke: it logs in again
            conn.exec_driver_sql(f'ALTER ROLE "{login}" LOGIN')
            if password is not None:
                conn.exec_driver_sql(f'ALTER ROLE "{login}" PASSWORD \'{_scram_verifier(conn, login, password)}\'')
        for group in GROUP.values():
            if group != GROUP[role]:
                conn.exec_driver_sql(f'REVOKE {group} FROM "{login}"')
        conn.exec_driver_sql(f'GRANT {GROUP[role]} TO "{login}"')
        conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO "{login}"')
        conn.execute(text(
            "INSERT INTO trial_users (login, role, site, granted_at_utc, granted_by) "
            "VALUES (:l, :r, :s, now(), session_user) ON CONFLICT (login) DO UPDATE SET role = EXCLUDED.role, "
            "site = EXCLUDED.site, granted_at_utc = EXCLUDED.granted_at_utc, granted_by = EXCLUDED.granted_by"),
            {"l": login, "r": role, "s": site})
    return {"login": login, "role": role, "site": site, "created": existing is None}


def revoke(store, login: str) -> Dict[str, Any]:
    _require_owner(store)
    login = _check_login(login)
    with store.engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar()
        if login == store.user.name:
            raise InputError(f"login {login!r} is the owner connected now; it cannot revoke itself")
        role_row = conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :l"),
                                {"l": login}).first()
        if role_row is not None and (role_row[0] or role_row[1]):
            raise InputError(f"login {login!r} is a superuser or bypasses row-level security: it was never granted "
                             f"by startnet and is not disabled by it")
        row = conn.execute(text("DELETE FROM trial_users WHERE login = :l RETURNING role, site"), {"l": login}).first()
        exists = role_row is not None
        if row is None and not exists:
            raise InputError(f"login {login!r} does not exist")
        if exists:
            for group in GROUP.values():
                conn.exec_driver_sql(f'REVOKE {group} FROM "{login}"')
            conn.exec_driver_sql(f'REVOKE CONNECT ON DATABASE "{database}" FROM "{login}"')
            conn.exec_driver_sql(f'ALTER ROLE "{login}" NOLOGIN')  # its next connection is refused
    return {"login": login, "role": row[0] if row else None, "site": row[1] if row else None}


def users(store) -> List[Dict[str, Any]]:
    _require_owner(store)
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT u.login, u.role, u.site, u.granted_at_utc, u.granted_by, r.rolcanlogin "
            "FROM trial_users u LEFT JOIN pg_roles r ON r.rolname = u.login ORDER BY u.role, u.site, u.login"))
        return [{"login": r[0], "role": r[1], "site": r[2], "granted_at_utc": utc_text(r[3]), "granted_by": r[4],
                 "can_log_in": bool(r[5])} for r in rows]
