"""Trial database URLs in the Slicer panels: no password is stored, shown or accepted.

``startnet.trial.urls`` splits URLs like SQLAlchemy's ``make_url`` (checked against it here);
``StartNetCoreLib.settings`` keeps the URL in Slicer's application settings (a dict-backed stand-in
for ``qt.QSettings`` here) and refuses one with a password.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from settings_standin import FakeSettings, load_settings_module
from sqlalchemy.engine import make_url

from startnet.errors import InputError
from startnet.trial.urls import (
    check_url_for_panel,
    has_password,
    redact_url,
    url_without_password,
)

WITH_PASSWORD = [
    ("postgresql://trial:s3cret@db.example:5432/trial", "postgresql://trial@db.example:5432/trial",
     "postgresql://trial:***@db.example:5432/trial"),
    ("postgresql+psycopg://trial:p%40ss%3Aword@db.example/trial?sslmode=require",
     "postgresql+psycopg://trial@db.example/trial?sslmode=require",
     "postgresql+psycopg://trial:***@db.example/trial?sslmode=require"),
    ("postgresql://trial:@db.example/trial", "postgresql://trial@db.example/trial",
     "postgresql://trial:***@db.example/trial"),  # an empty password is still a password field
    ("postgresql://trial@db.example/trial?sslmode=require&password=s3cret&application_name=x",
     "postgresql://trial@db.example/trial?sslmode=require&application_name=x",
     "postgresql://trial@db.example/trial?sslmode=require&password=***&application_name=x"),
    ("postgresql://db.example/trial?password=s3cret", "postgresql://db.example/trial",
     "postgresql://db.example/trial?password=***"),
]
WITHOUT_PASSWORD = ["postgresql://trial@db.example/trial", "postgresql+psycopg://db.example:5433/trial",
                    "postgresql:///trial?service=startnet", "sqlite:////data/trial.db", "/data/trial.db",
                    r"C:\trial\trial.db", "sqlite:///C:/trial/trial.db"]


@pytest.mark.parametrize("url, without, redacted", WITH_PASSWORD)
def test_passwords_are_found_removed_and_redacted(url, without, redacted):
    assert has_password(url)
    assert url_without_password(url) == without and not has_password(without)
    assert redact_url(url) == redacted
    assert "s3cret" not in without + redacted
    # the same parts as SQLAlchemy sees them (the URL that would be opened)
    parsed, stripped = make_url(url), make_url(without)
    assert (stripped.username, stripped.host, stripped.port, stripped.database) == \
        (parsed.username, parsed.host, parsed.port, parsed.database)
    assert stripped.password is None and "password" not in stripped.query
    assert {k: v for k, v in parsed.query.items() if k != "password"} == dict(stripped.query)


@pytest.mark.parametrize("url", WITHOUT_PASSWORD)
def test_urls_without_password_are_left_as_they_are(url):
    assert not has_password(url)
    assert url_without_password(url) == url and redact_url(url) == url


@pytest.mark.parametrize("url", ["postgresql://trial@db.example/trial", "postgresql:///trial?service=startnet",
                                 "sqlite:////data/trial.db", "/data/trial.db", "  /data/trial.db  ",
                                 r"C:\trial\trial.db", "sqlite:///C:/trial/trial.db"])
def test_the_panel_accepts_full_paths_and_password_free_urls(url):
    assert check_url_for_panel(url) == url.strip()


def test_the_panel_expands_the_home_folder():
    assert check_url_for_panel("~/trial.db") == str(Path("~/trial.db").expanduser())


@pytest.mark.parametrize("typed, message", [
    ("", "no trial database given"),
    ("   ", "no trial database given"),
    ("trial.db", "'trial.db' is relative: give the full path"),
    ("sqlite:///trial.db", "SQLite path 'trial.db' is relative"),
    ("sqlite://", "no SQLite file given"),
    ("sqlite:///:memory:", "no SQLite file given"),
    ("mysql://trial@db.example/trial", "only sqlite:/// and postgresql:// URLs"),
    ("postgresql://trial:s3cret@db.example/trial", r"contains a password.*~/\.pgpass"),
    ("postgresql://trial@db.example/trial?password=s3cret", r"contains a password.*PGPASSFILE"),
])
def test_the_panel_refuses_with_a_clear_message(typed, message):
    with pytest.raises(InputError, match=message) as raised:
        check_url_for_panel(typed)
    assert "s3cret" not in str(raised.value)  # the message shows the URL redacted


@pytest.fixture
def settings_module():
    return load_settings_module("startnet_core_settings")


def test_settings_store_the_url_and_refuse_a_password(settings_module):
    settings = FakeSettings()
    assert settings_module.trialDatabaseUrl(settings) == ""
    stored = settings_module.setTrialDatabaseUrl(" postgresql://trial@db.example/trial ", settings)
    assert stored == "postgresql://trial@db.example/trial"
    assert settings_module.trialDatabaseUrl(settings) == stored
    with pytest.raises(InputError, match="contains a password"):
        settings_module.setTrialDatabaseUrl("postgresql://trial:s3cret@db.example/trial", settings)
    assert settings.values == {settings_module.TRIAL_DATABASE_KEY: stored}  # nothing else was stored


def test_settings_never_return_a_stored_password(settings_module):
    key = settings_module.TRIAL_DATABASE_KEY
    settings = FakeSettings({key: "postgresql://trial:s3cret@db.example/trial"})  # written by hand
    assert settings_module.trialDatabaseUrl(settings) == "postgresql://trial@db.example/trial"
    assert settings.values[key] == "postgresql://trial@db.example/trial"  # and removed from the file


# --- passwords holding URL delimiters (typed unencoded) ---------------------------------------------
# each password's pieces (split at its delimiters) are distinctive: none of them may be shown anywhere
TRICKY = ["Zq7@Kx9", "Zq7@Kx9@Wm3", "Zq7:Kx9/Wm3#Vb5", "Zq7?Kx9", "Zq7@Kx9:Wm3/Vb5", "Zq7%Kx9", "Zq7@Kx9?Wm3"]
TRICKY_HOSTS = ["127.0.0.1:1", "[::1]:1", "localhost:1"]


def _pieces(password):
    return [p for p in re.split(r"[@:/#?%]", password) if p]


@pytest.mark.parametrize("password", TRICKY)
@pytest.mark.parametrize("host", TRICKY_HOSTS)
def test_a_password_holding_delimiters_is_masked_whole(password, host):
    url = f"postgresql://someone:{password}@{host}/trial?sslmode=disable"
    assert has_password(url)
    assert redact_url(url) == f"postgresql://someone:***@{host}/trial?sslmode=disable"
    assert url_without_password(url) == f"postgresql://someone@{host}/trial?sslmode=disable"
    for piece in _pieces(password):
        assert piece not in redact_url(url) + url_without_password(url)
    with pytest.raises(InputError, match="contains a password") as raised:
        check_url_for_panel(url)
    assert not any(piece in str(raised.value) for piece in _pieces(password))


def test_an_at_sign_in_a_query_value_or_a_path_is_not_a_password():
    for url in ("postgresql://trial@db.example/trial?application_name=a@b", "sqlite:////data/a@b/trial.db",
                "postgresql://db.example/tri@l"):
        assert not has_password(url) and redact_url(url) == url


def _cli(args, monkeypatch, capsys, env=None):
    from startnet.cli import main

    for key in ("STARTNET_USER", "STARTNET_USER_SITE", "STARTNET_TRIAL_DB"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("password", TRICKY)
def test_no_piece_of_a_tricky_password_in_any_cli_error(password, tmp_path, monkeypatch, capsys):
    """Every path that opens a URL: status, init, migrate-to and STARTNET_TRIAL_DB; nobody listens on port 1."""
    url = f"postgresql://someone:{password}@localhost:1/trial"
    sqlite_db = tmp_path / "trial.db"
    code, _, err = _cli(["trial", "--db", str(sqlite_db), "init"], monkeypatch, capsys)
    assert code == 0, err
    for args, env in ((["trial", "--db", url, "status", "--patient", "SN-1"], None),
                      (["trial", "--db", url, "init"], None),
                      (["trial", "--db", str(sqlite_db), "migrate-to", url], None),
                      (["trial", "patients"], {"STARTNET_TRIAL_DB": url})):
        code, out, err = _cli(args, monkeypatch, capsys, env)
        line = err.strip()
        assert code != 0 and line.startswith("error: ") and "\n" not in line, (args, err)
        for piece in _pieces(password):
            assert piece not in out + err, (args, err)
        if "@" in password:  # refused before anything is opened, naming the problem
            assert "unencoded '@'" in line and "%40" in line, line
        else:
            assert "***" in line or "migrate-to" in args, line


def test_a_tricky_password_never_reaches_a_subprocess_output(tmp_path):
    password = "Zq7@Kx9:Wm3/Vb5"
    env = {**os.environ, "STARTNET_TRIAL_DB": ""}
    proc = subprocess.run([sys.executable, "-m", "startnet", "trial", "--db",
                           f"postgresql://someone:{password}@localhost:1/trial", "status", "--patient", "SN-1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    for piece in _pieces(password):
        assert piece not in proc.stdout + proc.stderr, proc.stderr
