"""pytest fixtures for the trial tracker: a real PostgreSQL server for the test session.

``postgres_server`` (session scope) finds ``initdb``/``pg_ctl`` under
/usr/lib/postgresql/*/bin (Debian package ``postgresql``, installed by
``tools/install-system-deps.sh``), initialises a cluster in a temporary folder, starts it on a
free localhost port (socket in the same folder) and stops it at the end of the session.
PostgreSQL refuses to run as root, so under uid 0 the server runs as the ``postgres`` system
user (``runuser``), which is given the temporary folder. Missing binaries FAIL the tests that
need the server (never skip): the suite must run against both backends.

``trial_db_url`` is parametrised over ``sqlite`` and ``postgresql`` and gives each test an
empty database of its own (an SQLite file path, or a fresh PostgreSQL database).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server did not start."""


def _server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: "
            "run `bash tools/install-system-deps.sh` (Debian package postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: List[str], log: Path) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    if proc.returncode != 0:
        extra = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise PostgresUnavailable(f"PostgreSQL command failed ({' '.join(cmd)}):\n{proc.stdout}\n{extra}")


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster on a free localhost port (also used by the benchmark)."""
    bindir = _server_bin()
    tmp = Path(tempfile.mkdtemp(prefix="startnet-pg-"))
    data, log = tmp / "data", tmp / "server.log"
    prefix: List[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(tmp, user="postgres", group="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    try:
        _run(prefix + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                       "--locale=C", "--no-sync"], log)
        port = _free_port()
        options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        _run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
                       "start"], log)
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    manager = running_postgres()
    problem = None
    try:
        server = manager.__enter__()
    except PostgresUnavailable as exc:
        problem = str(exc)
    if problem is not None:  # FAIL, never skip: the suite must run on both backends
        pytest.fail(problem, pytrace=False)
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)


_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def trial_db_url(request, tmp_path) -> str:
    """An empty database for one test, on each backend in turn."""
    if request.param == "sqlite":
        return str(tmp_path / "trial.db")
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"trial_{os.getpid()}_{next(_counter)}")
