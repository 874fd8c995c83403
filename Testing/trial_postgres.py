"""pytest fixtures for the trial tracker: a real PostgreSQL server for the test session.

``postgres_server`` (session scope) finds ``initdb``/``pg_ctl`` under
/usr/lib/postgresql/*/bin (Debian package ``postgresql``, installed by
``tools/install-system-deps.sh``), initialises a cluster in a temporary folder, starts it on a
free localhost port (socket in the same folder) and stops it at the end of the session.
PostgreSQL refuses to run as root, so under uid 0 the server runs as the ``postgres`` system
user (``runuser``), which is given the temporary folder. Missing binaries FAIL the tests that
need the server (never skip): the suite must run against both backends.

Authentication is ``scram-sha-256`` for every connection (``initdb -A scram-sha-256``), so that
logging in as another role without its password is really refused. Passwords are random, written
to a 0600 password file in the temporary folder (libpq's format, ``host:port:db:user:password``)
and found by libpq through the ``passfile`` connection parameter (``?passfile=`` in the URL);
they never appear on a command line or in a URL. ``postgres`` is the cluster's superuser.

``running_postgres(tls=True)`` also makes a throw-away certificate authority and a server
certificate for 127.0.0.1 and localhost (``openssl``), and turns TLS on (``ssl=on``):
``server.ca_file`` is what a client gives as ``sslrootcert`` with ``sslmode=verify-full``.

``trial_db_url`` is parametrised over ``sqlite`` and ``postgresql`` and gives each test an
empty database of its own (an SQLite file path, or a fresh PostgreSQL database).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import pytest


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    passfile: str  # libpq password file (0600) holding every test login's password
    ca_file: Optional[str] = None  # the certificate authority of the server's TLS certificate (tls=True)

    def url(self, database: str, user: Optional[str] = None) -> str:
        return (f"postgresql+psycopg://{user or self.user}@{self.host}:{self.port}/{database}"
                f"?passfile={self.passfile}")

    def connect(self, database: str = "postgres", user: Optional[str] = None, **kwargs):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=user or self.user, dbname=database,
                               passfile=self.passfile, **kwargs)

    def remember_password(self, user: str, password: str) -> None:
        """Add a login's password to the password file (never to a URL or a command line)."""
        with open(self.passfile, "a", encoding="utf-8") as f:
            f.write(f"{self.host}:{self.port}:*:{user}:{password}\n")

    def create_database(self, name: str, owner: Optional[str] = None) -> str:
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        return self.url(name, owner)

    def create_owner(self, name: str) -> str:
        """A non-superuser login that may create roles: the owner of a trial database's tables."""
        password = secrets.token_urlsafe(18)
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN CREATEROLE PASSWORD \'{password}\'')
        self.remember_password(name, password)
        return password


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


def _make_certificates(folder: Path, log: Path) -> List[str]:
    """A CA and a server certificate (SAN 127.0.0.1, localhost) signed by it; the server's options."""
    ca_key, ca_crt, key, csr, crt = (folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr",
                                                           "server.crt"))
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PostgresUnavailable("openssl not found (needed for the TLS test server)")
    _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=startnet test CA",
          "-keyout", str(ca_key), "-out", str(ca_crt)], log)
    _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key),
          "-out", str(csr)], log)
    extensions = folder / "san.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
          "-days", "2", "-extfile", str(extensions), "-out", str(crt)], log)
    os.chmod(key, 0o600)  # PostgreSQL refuses a key that others may read
    if os.geteuid() == 0:
        shutil.chown(key, user="postgres", group="postgres")
    return ["-c ssl=on", f"-c ssl_cert_file={crt}", f"-c ssl_key_file={key}"]


@contextlib.contextmanager
def running_postgres(tls: bool = False) -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster on a free localhost port (also used by the benchmark)."""
    bindir = _server_bin()
    tmp = Path(tempfile.mkdtemp(prefix="startnet-pg-"))
    data, log = tmp / "data", tmp / "server.log"
    prefix: List[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(tmp, user="postgres", group="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_urlsafe(24)
    pwfile, passfile = tmp / "superuser.pw", tmp / "pgpass"
    try:
        for path, text in ((pwfile, password + "\n"), (passfile, "")):
            fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        if prefix:
            shutil.chown(pwfile, user="postgres", group="postgres")
        _run(prefix + [str(bindir / "initdb"), "-D", str(data), "-A", "scram-sha-256", "--pwfile", str(pwfile),
                       "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"], log)
        pwfile.unlink()
        port = _free_port()
        options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        if tls:
            options = " ".join([options] + _make_certificates(tmp, log))
        _run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
                       "start"], log)
        server = PostgresServer(host="127.0.0.1", port=port, user="postgres", passfile=str(passfile),
                                ca_file=str(tmp / "ca.crt") if tls else None)
        server.remember_password("postgres", password)
        yield server
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
