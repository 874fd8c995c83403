"""Trial database URLs in the Slicer panels: no password is stored, shown or accepted.

``startnet.trial.urls`` splits URLs like SQLAlchemy's ``make_url`` (checked against it here);
``StartNetCoreLib.settings`` keeps the URL in Slicer's application settings (a dict-backed stand-in
for ``qt.QSettings`` here) and refuses one with a password.
"""

from __future__ import annotations

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
