"""The trial database URL in Slicer's application settings, never in the scene, never with a password.

Qt only: ``qt.QSettings()`` is Slicer's user settings file (``slicer.util.settingsValue`` uses the
same default object; Slicer 5.8.1 and 5.10.0). The URL is checked by
:func:`startnet.trial.urls.check_url_for_panel` before it is stored: a URL holding a password is
refused with a message telling the user to put the password in ``~/.pgpass`` (psycopg reads it
when the URL has none). Used by the Trial Tracker and Dosimetry panels, which share the setting.
"""

from __future__ import annotations

TRIAL_DATABASE_KEY = "StartNet/TrialDatabaseUrl"


def _settings(settings=None):
    if settings is not None:
        return settings
    import qt

    return qt.QSettings()


def trialDatabaseUrl(settings=None) -> str:
    """The stored trial database (path or URL without password), "" when none is set.

    A value that holds a password (written by hand or by an older version) is not returned: it
    is replaced by the same URL without the password.
    """
    from startnet.trial.urls import has_password, url_without_password

    store = _settings(settings)
    value = store.value(TRIAL_DATABASE_KEY) if store.contains(TRIAL_DATABASE_KEY) else ""
    value = str(value or "").strip()
    if has_password(value):
        value = url_without_password(value)
        store.setValue(TRIAL_DATABASE_KEY, value)
    return value


def setTrialDatabaseUrl(text: str, settings=None) -> str:
    """Check and store the trial database typed into a panel; returns what was stored.

    Raises :class:`startnet.errors.InputError` (nothing stored) for an empty entry, a relative
    SQLite path, an unsupported database or a URL with a password.
    """
    from startnet.trial.urls import check_url_for_panel

    value = check_url_for_panel(text)
    store = _settings(settings)
    store.setValue(TRIAL_DATABASE_KEY, value)
    return value
