"""Trial database URLs without their passwords (for Slicer settings, messages and logs).

A URL typed into a Slicer panel is kept in the application settings, never in the scene, and
never with a password: PostgreSQL passwords come from the database's own credential files, which
psycopg (libpq) reads when the URL has no password: ``~/.pgpass`` (on Windows
``%APPDATA%\\postgresql\\pgpass.conf``), the file ``PGPASSFILE`` names, or a connection service
(``pg_service.conf``, ``?service=NAME``).

The URL is split with the same pattern as SQLAlchemy's ``make_url`` (``sqlalchemy.engine.url``,
2.x), so "the password" here is what SQLAlchemy would send; a ``password=`` query parameter
(passed on to libpq by psycopg) counts as a password too. Pure functions, no SQLAlchemy needed.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import List, Optional
from urllib.parse import unquote

from startnet.errors import InputError

_URL = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
PASSWORD_QUERY_KEYS = ("password",)
CREDENTIAL_FILES_HINT = ("put the password in the PostgreSQL password file (~/.pgpass; on Windows "
                         "%APPDATA%\\postgresql\\pgpass.conf; or the file PGPASSFILE names) or use a connection "
                         "service (pg_service.conf, ?service=NAME)")


def _match(url: str) -> Optional[re.Match]:
    """The URL's parts, or None for a plain file path (no ``://``)."""
    if "://" not in url:
        return None
    return _URL.match(url)


def _query_pairs(query: str) -> List[str]:
    return [pair for pair in query.split("&") if pair]


def _is_password_pair(pair: str) -> bool:
    return unquote(pair.partition("=")[0]).strip().lower() in PASSWORD_QUERY_KEYS


def _rewrite(url: str, replacement: Optional[str]) -> str:
    """``url`` with its password(s) replaced by ``replacement`` (None: removed)."""
    m = _match(url)
    if m is None:
        return url
    out = url
    if m.group("query") is not None:
        start, end = m.span("query")
        pairs = []
        for pair in _query_pairs(m.group("query")):
            if _is_password_pair(pair):
                if replacement is None:
                    continue
                pair = pair.partition("=")[0] + "=" + replacement
            pairs.append(pair)
        query = "&".join(pairs)
        out = out[:start - 1] + (("?" + query) if query else "") + out[end:]
    if m.group("password") is not None:
        start, end = m.span("password")
        out = out[:start - 1] + ("" if replacement is None else ":" + replacement) + out[end:]
    return out


def has_password(url: str) -> bool:
    """Whether the URL carries a password (in the user part or as a ``password=`` query parameter)."""
    m = _match((url or "").strip())
    if m is None:
        return False
    in_query = m.group("query") is not None and any(_is_password_pair(p) for p in _query_pairs(m.group("query")))
    return m.group("password") is not None or in_query


def url_without_password(url: str) -> str:
    """The URL with any password removed (``user:pw@host`` -> ``user@host``, ``password=`` dropped)."""
    return _rewrite((url or "").strip(), None)


def redact_url(url: str) -> str:
    """The URL with any password shown as ``***`` (for messages and logs)."""
    return _rewrite((url or "").strip(), "***")


def backend(url: str) -> str:
    """``sqlite`` for a plain path, else the URL's backend (``postgresql+psycopg`` -> ``postgresql``)."""
    m = _match(url)
    if m is None:
        return "sqlite"
    return m.group("name").split("+")[0].lower()


def _absolute(path: str) -> bool:
    return PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()


def check_url_for_panel(text: str) -> str:
    """The trial database a user typed into a Slicer panel, checked before it is stored or opened.

    Returns the stripped text (an absolute SQLite file path, ``sqlite:///<absolute path>`` or a
    ``postgresql://`` URL). Raises :class:`InputError` for an empty entry, a relative SQLite path
    (Slicer's working folder is not the user's), an unsupported database, or a URL that holds a
    password (refused, not silently stripped, so the user knows where the password must go).
    """
    text = (text or "").strip()
    if not text:
        raise InputError("no trial database given: enter the full path of the SQLite file or a postgresql:// URL")
    m = _match(text)
    if "://" not in text:
        path = str(Path(text).expanduser()) if text.startswith("~") else text
        if not _absolute(path):
            raise InputError(f"trial database path {text!r} is relative: give the full path of the SQLite file")
        return path
    shown = redact_url(text)
    if m is None or backend(text) not in SUPPORTED_BACKENDS:
        raise InputError(f"trial database URL {shown!r}: only sqlite:/// and postgresql:// URLs are supported")
    if has_password(text):
        raise InputError(f"trial database URL {shown!r} contains a password; passwords are not stored in Slicer: "
                         f"remove it from the URL and {CREDENTIAL_FILES_HINT}")
    if backend(text) == "sqlite":
        database = unquote(m.group("database") or "")
        if not database or database == ":memory:":
            raise InputError(f"trial database URL {shown!r}: no SQLite file given (sqlite:////full/path/trial.db)")
        if not _absolute(database):
            raise InputError(f"trial database URL {shown!r}: the SQLite path {database!r} is relative; give the "
                             f"full path (sqlite:////full/path/trial.db)")
    return text
