"""Issue 12: the trial database over TLS with ``sslmode=verify-full``.

A PostgreSQL server of its own with a throw-away certificate authority (``running_postgres(tls=True)``,
``openssl``): the CLI initialises and reads the trial through a URL that asks libpq to verify the
server's certificate against that CA and its name (127.0.0.1); the session is encrypted; a CA that
did not sign the server's certificate is refused in one line, before any password is sent.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from trial_postgres import PostgresUnavailable, running_postgres

from startnet.cli import main
from startnet.trial.store import TrialStore

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def tls_server():
    manager = running_postgres(tls=True)
    try:
        server = manager.__enter__()
    except PostgresUnavailable as exc:  # FAIL, never skip
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)


def _cli(capsys, monkeypatch, url, *args):
    for key in ("STARTNET_USER", "STARTNET_USER_SITE", "STARTNET_TRIAL_DB", "PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(key, raising=False)
    code = main(["trial", "--db", url, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verify_full_connects_encrypted_and_refuses_another_ca(tls_server, tmp_path, capsys, monkeypatch):
    owner = f"tls_owner_{os.getpid()}"
    tls_server.create_owner(owner)
    plain = tls_server.create_database(f"tls_{owner}", owner=owner)
    url = f"{plain}&sslmode=verify-full&sslrootcert={tls_server.ca_file}"
    code, out, err = _cli(capsys, monkeypatch, url, "init")
    assert code == 0 and "trial database ready" in out, err
    code, _, err = _cli(capsys, monkeypatch, url, "enroll", "--patient", "SN-T1", "--site", "Uppsala",
                        "--arm", "2", "--enrolled", "2025-01-02")
    assert code == 0, err
    store = TrialStore.open(url)
    try:
        with store.engine.connect() as conn:
            ssl, version = conn.exec_driver_sql(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").one()
    finally:
        store.close()
    assert ssl is True and version.startswith("TLS"), (ssl, version)

    other = tmp_path / "other-ca"
    other.mkdir()
    subprocess.run([shutil.which("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=not the server's CA", "-keyout", str(other / "ca.key"), "-out",
                    str(other / "ca.crt")], check=True, capture_output=True)
    code, _, err = _cli(capsys, monkeypatch, f"{plain}&sslmode=verify-full&sslrootcert={other / 'ca.crt'}",
                        "status", "--patient", "SN-T1")
    line = err.strip()
    assert code != 0 and line.startswith("error: ") and "\n" not in line, err
    assert "certificate verify failed" in line, line
