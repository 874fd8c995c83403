"""Trial database URLs without their passwords (for Slicer settings, messages and logs).

A URL typed into a Slicer panel is kept in the application settings, never in the scene, and
never with a password: PostgreSQL passwords come from the database's own credential files, which
psycopg (libpq) reads when the URL has no password: ``~/.pgpass`` (on Windows
``%APPDATA%\\postgresql\\pgpass.conf``), the file ``PGPASSFILE`` names, or a connection service
(``pg_service.conf``, ``?service=NAME``).

A password may hold any character, so the credentials end at the LAST ``@``
(``u:p@ss@host`` is user ``u``, password ``p@ss``): everything between the user's ``:`` and that
``@`` is the password, and is what is removed or masked, whatever it contains. SQLAlchemy's
``make_url`` splits at the FIRST ``@`` instead (its password pattern is ``[^@]*``), so it would
take part of such a password for the host, send it to DNS and show it in messages:
:func:`ambiguity` names such a URL so that it is refused before it is parsed or shown (its
password must be percent-encoded, or kept out of the URL). The rest (host, port, database,
query) is split with SQLAlchemy's own pattern (``sqlalchemy.engine.url``, 2.x); a ``password=``
query parameter (passed on to libpq by psycopg) counts as a password too. Pure functions, no
SQLAlchemy needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import List, Optional, Tuple
from urllib.parse import unquote

from startnet.errors import InputError

_SCHEME = re.compile(r"(?P<name>[\w\+]+)://")
_HOST_ON = re.compile(  # what follows the credentials: SQLAlchemy's pattern
    r"""
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
PERCENT_ENCODING = "@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25"
CREDENTIAL_FILES_HINT = ("put the password in the PostgreSQL password file (~/.pgpass; on Windows "
                         "%APPDATA%\\postgresql\\pgpass.conf; or the file PGPASSFILE names) or use a connection "
                         "service (pg_service.conf, ?service=NAME)")


@dataclass(frozen=True)
class _Parts:
    """Where a URL's parts are (``(start, end)`` indices into the URL; None: absent)."""

    name: str
    credentials: Optional[Tuple[int, int]]  # user[:password], without the '@'
    password: Optional[Tuple[int, int]]
    database: Optional[str]
    query: Optional[Tuple[int, int]]


def _match(url: str) -> Optional[_Parts]:
    """The URL's parts, or None for a plain file path (no ``scheme://``)."""
    if "://" not in url:
        return None
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    begin = scheme.end()
    rest = url[begin:]
    at = _credentials_end(rest)
    credentials = password = None
    if at is not None:
        credentials = (begin, begin + at)
        colon = rest.find(":", 0, at)
        if colon >= 0:
            password = (begin + colon + 1, begin + at)
    host_from = begin + (at + 1 if at is not None else 0)
    m = _HOST_ON.match(url, host_from)
    query = m.span("query") if m.group("query") is not None else None
    return _Parts(scheme.group("name"), credentials, password, m.group("database"), query)


def _credentials_end(rest: str) -> Optional[int]:
    """Index in ``rest`` (the URL after ``scheme://``) of the ``@`` ending the credentials: the
    last ``@`` of all (a password may hold ``@ : / ? #``). Text before it whose user name (up to
    the first ``:``) holds a ``/`` is a host and path, not credentials: ``host/db?a=x@y`` has
    none. An ``@`` in a query value after a password is thus taken as part of the password: the
    URL is shown masked up to it (never less than the password) and :func:`ambiguity` refuses it.
    """
    at = rest.rfind("@")
    if at < 0:
        return None
    user = rest[:at].split(":", 1)[0]
    if "/" in user:
        return None
    return at


def ambiguity(url: str) -> Optional[str]:
    """Why SQLAlchemy would split this URL's credentials elsewhere than :func:`_match` (None: it
    would not): an unencoded ``@`` in the user name or password. The text never holds the password."""
    parts = _match((url or "").strip())
    if parts is None or parts.credentials is None:
        return None
    start, end = parts.credentials
    if "@" in url.strip()[start:end]:
        if parts.password is None:
            return "the user name holds an unencoded '@': percent-encode it in the URL (@ as %40)"
        return (f"the password (or a query value after it) holds an unencoded '@': percent-encode it in the URL "
                f"({PERCENT_ENCODING}) or leave the password out of the URL and {CREDENTIAL_FILES_HINT}")
    return None


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
    if m.query is not None:
        start, end = m.query
        pairs = []
        for pair in _query_pairs(url[start:end]):
            if _is_password_pair(pair):
                if replacement is None:
                    continue
                pair = pair.partition("=")[0] + "=" + replacement
            pairs.append(pair)
        query = "&".join(pairs)
        out = out[:start - 1] + (("?" + query) if query else "") + out[end:]
    if m.password is not None:
        start, end = m.password
        out = out[:start - 1] + ("" if replacement is None else ":" + replacement) + out[end:]
    return out


def has_password(url: str) -> bool:
    """Whether the URL carries a password (in the user part or as a ``password=`` query parameter)."""
    url = (url or "").strip()
    m = _match(url)
    if m is None:
        return False
    in_query = m.query is not None and any(_is_password_pair(p) for p in _query_pairs(url[m.query[0]:m.query[1]]))
    return m.password is not None or in_query


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
    return m.name.split("+")[0].lower()


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
        database = unquote(m.database or "")
        if not database or database == ":memory:":
            raise InputError(f"trial database URL {shown!r}: no SQLite file given (sqlite:////full/path/trial.db)")
        if not _absolute(database):
            raise InputError(f"trial database URL {shown!r}: the SQLite path {database!r} is relative; give the "
                             f"full path (sqlite:////full/path/trial.db)")
    return text
