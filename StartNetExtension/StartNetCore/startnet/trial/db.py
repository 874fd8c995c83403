"""Database connection and schema migration of the trial tracker.

``--db`` takes an SQLAlchemy URL (``sqlite:///trial.db``, ``postgresql+psycopg://user@host/db``)
or a plain file path, meaning an SQLite file.

SQLite (one site on a local disk; WAL does not work on network file systems, so several sites
share a PostgreSQL server instead). SQLite has NO access control: whoever can read the file reads
every patient, whoever can write it can change anything (the audit hash chain only shows that it
happened), nor does it enforce the protocol rules (PostgreSQL's migration 0005 does, in a
trigger): only the client checks them. The file is therefore created readable and writable by
its owner only (0600; SQLite gives its -wal/-shm files the same mode). WAL journal (readers never block the writer),
``synchronous=FULL``, foreign keys on, a 30 s busy timeout, and every write transaction opened
with ``BEGIN IMMEDIATE`` so that the read-check-write of a cycle is serialised between processes
(no lost update). A process killed mid-transaction leaves the database as it was before that
transaction (SQLite's journal).

PostgreSQL: READ COMMITTED transactions; a write locks its patient's row (``SELECT ... FOR
UPDATE``) before reading the cycles it checks; the schema upgrade takes an advisory lock so two
``init`` runs at once do not collide.

The schema is only ever created by Alembic (``upgrade head``); no ``create_all``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from startnet.errors import InputError
from startnet.trial.urls import PERCENT_ENCODING, ambiguity, redact_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_UPGRADE_LOCK = 0x53544E54  # "STNT"


def normalise_url(db: str) -> str:
    """An SQLAlchemy URL from ``--db`` (a plain path means an SQLite file)."""
    db = (db or "").strip()
    if not db:
        raise InputError("--db: no database given (an SQLite file path or an SQLAlchemy URL)")
    if "://" not in db:
        return "sqlite:///" + str(Path(db).expanduser().resolve())
    problem = ambiguity(db)
    if problem is not None:  # SQLAlchemy would take part of the password for the host (and show it)
        raise InputError(f"--db {redact_url(db)!r}: {problem}")
    try:
        url = make_url(db)
    except ArgumentError:
        raise InputError(f"--db {redact_url(db)!r}: not a database URL (expected "
                         f"postgresql://user@host:port/database or sqlite:////path/trial.db)") from None
    except ValueError:  # a port that is not a number; its text may quote the URL, so it is not shown
        raise InputError(f"--db {redact_url(db)!r}: not a database URL (the port after the host must be a "
                         f"number; a password holding @ : / ? # must be percent-encoded: "
                         f"{PERCENT_ENCODING})") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InputError(f"--db {redact_url(db)!r}: only sqlite and postgresql databases are supported")
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3 (startnet[postgres]) is the driver we ship
        return url.render_as_string(hide_password=False)
    return db


def shown_url(engine_or_url) -> str:
    """A database URL for messages, logs and audit details: every password (in the user part or a
    ``password=`` query parameter, which SQLAlchemy's ``hide_password`` leaves visible) as ``***``."""
    url = getattr(engine_or_url, "url", engine_or_url)
    rendered = url.render_as_string(hide_password=True) if hasattr(url, "render_as_string") else str(url)
    return redact_url(rendered)


def sqlite_path(url: str) -> Optional[Path]:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(db: str, must_exist: bool = True) -> Engine:
    url = normalise_url(db)
    path = sqlite_path(url)
    if path is not None:
        if path.is_dir():
            raise InputError(f"trial database {path} is a folder; give the path of the SQLite database file")
        if must_exist and not path.is_file():
            # opening never creates a database: a mistyped path must not become a new, empty trial
            raise InputError(f"trial database {path} does not exist (check the path for a typo); a new database is "
                             f"created only by the administrator: `startnet trial --db {path} init`")
        if not path.parent.is_dir():
            raise InputError(f"database {path}: folder {path.parent} does not exist")
        if not path.exists():
            _create_private_file(path)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise InputError(f"--db {redact_url(url)}: database driver {exc.name!r} is not installed "
                         f"(pip install 'startnet[postgres]')") from None


def _create_private_file(path: Path) -> None:
    """An empty SQLite file readable and writable by its owner only (whatever the umask)."""
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created at the same moment by another init: SQLite opens it as it is
    except OSError as exc:
        raise InputError(f"database {path}: cannot be created ({exc.strerror})") from None
    os.close(fd)
    if hasattr(os, "chmod"):
        os.chmod(str(path), 0o600)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> Optional[str]:
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest migration (idempotent, safe to run concurrently)."""
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_UPGRADE_LOCK})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise InputError(f"database {shown_url(engine)}: cannot be "
                         f"initialised ({_first_line(exc)})") from None
    return head_revision()


def require_current_schema(engine: Engine) -> None:
    try:
        revision = current_revision(engine)
    except OperationalError as exc:
        reason = _first_line(exc)
        hint = (" (check the database name for a typo; a new trial database is created by the administrator, "
                "then initialised with `startnet trial --db URL init`)" if "does not exist" in reason else "")
        if "not permitted to log in" in reason:
            hint = (" (this login was revoked or disabled; the administrator grants it again with "
                    "`startnet trial --db OWNER_URL grant LOGIN --role site|coordinator|monitor`)")
        raise InputError(f"trial database {shown_url(engine)}: cannot be "
                         f"opened ({reason}){hint}") from None
    head = head_revision()
    if revision != head:
        shown = shown_url(engine)
        if revision is None:
            raise InputError(f"database {shown} is not a trial database yet; the administrator creates it with "
                             f"`startnet trial --db {shown} init`")
        raise InputError(f"trial database {shown} has schema revision {revision}, this software needs {head}; "
                         f"the administrator upgrades it with `startnet trial --db {shown} init`")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
