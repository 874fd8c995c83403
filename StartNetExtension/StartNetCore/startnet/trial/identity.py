"""Who is acting (audit trail, site scoping) and what a patient may be called (pseudonyms only).

SQLite (one site, no access control): the user is taken from ``--user``/``--user-site`` or the
environment variables ``STARTNET_USER``/``STARTNET_USER_SITE``; the default is the operating-system
user with no site restriction (a trial coordinator). A user with a site may read and change only
that site's patients (checked by the client only).

PostgreSQL: the user is the database login (``session_user``) with the role and site the
administrator granted it (``startnet trial grant``), read from the server
(:meth:`startnet.trial.store.TrialStore.user`); names given by the client are refused.

Patient IDs must be trial pseudonyms. Anything that looks like a Swedish personal identity
number (personnummer YYMMDD-XXXX / YYYYMMDDXXXX, or a coordination number with day + 60) is
refused, so that no directly identifying number ever reaches the database.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from startnet.errors import InputError, TrialRuleError

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# (century)(YYMMDD) optional separator (4 digits), not part of a longer digit run
_PNR = re.compile(r"(?<!\d)(\d{2})?(\d{2})(\d{2})(\d{2})[-+ ]?(\d{4})(?!\d)")


@dataclass(frozen=True)
class User:
    name: str
    site: Optional[str] = None  # None: no site restriction
    role: Optional[str] = None  # PostgreSQL: site | coordinator | monitor | owner (None on SQLite)

    def check_site(self, site: str, action: str, patient_id: str) -> None:
        if self.site is not None and _fold(self.site) != _fold(site):
            raise TrialRuleError(f"user {self.name!r} (site {self.site}) may not {action} patient "
                                 f"{patient_id!r} of site {site}")


def current_user(name: Optional[str] = None, site: Optional[str] = None,
                 sites: Optional[Sequence[str]] = None) -> User:
    """The acting user from explicit values, else the environment, else the OS user (no site)."""
    name = name or os.environ.get("STARTNET_USER") or _os_user()
    site = site or os.environ.get("STARTNET_USER_SITE") or None
    if site is not None and sites is not None:
        site = canonical_site(site, sites)
    return User(name=name, site=site)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _fold(text: str) -> str:
    """Case- and accent-insensitive key ("Skane" == "Skåne")."""
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# Other names of the START-NET sites (hospital or city, REFERENCE.md section 1).
SITE_ALIASES = {"akademiska": "Uppsala", "lund": "Skåne", "gothenburg": "Sahlgrenska",
                "goteborg": "Sahlgrenska", "stockholm": "Karolinska"}


def canonical_site(site: str, sites: Sequence[str]) -> str:
    key = _fold(site)
    for known in sites:
        if _fold(known) == key:
            return known
    alias = SITE_ALIASES.get(key)
    if alias is not None and alias in sites:
        return alias
    raise InputError(f"site {site!r} is not a trial site; expected one of: {', '.join(sites)}")


def looks_like_personnummer(text: str) -> bool:
    for m in _PNR.finditer(text):
        month, day = int(m.group(3)), int(m.group(4))
        if day > 60:
            day -= 60  # samordningsnummer
        if not (1 <= month <= 12 and 1 <= day <= 31):
            continue
        year = int(m.group(2)) + (int(m.group(1)) * 100 if m.group(1) else 2000)
        if m.group(1) and not 18 <= int(m.group(1)) <= 20:
            continue
        try:
            dt.date(year, month, day)
        except ValueError:
            if not (month == 2 and day == 29):  # leap day of an unknown century
                continue
        return True
    return False


def validate_patient_id(patient_id: str) -> str:
    patient_id = (patient_id or "").strip()
    if looks_like_personnummer(patient_id):
        raise InputError(f"patient ID {patient_id!r} looks like a Swedish personal identity number "
                         f"(YYMMDD-XXXX / YYYYMMDDXXXX); record only the trial pseudonym")
    if not _PSEUDONYM.match(patient_id):
        raise InputError(f"patient ID {patient_id!r} is not a valid pseudonym: expected 1-64 characters "
                         f"A-Z a-z 0-9 . _ - starting with a letter or digit")
    return patient_id


def reject_identity_numbers(values: Dict[str, Any], where: str) -> None:
    """Refuse free text (remarks, reasons, lab or eligibility entries) holding a personnummer."""
    stack = list(values.items())
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, str) and looks_like_personnummer(value):
            raise InputError(f"{where}: {key} contains what looks like a Swedish personal identity number; "
                             f"the trial database holds pseudonyms only")

