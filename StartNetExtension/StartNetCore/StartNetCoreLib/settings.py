"""The trial database URL in Slicer's application settings, never in the scene, never with a password.

Qt only: ``qt.QSettings()`` is Slicer's user settings file (``slicer.util.settingsValue`` uses the
same default object; Slicer 5.8.1 and 5.10.0). The URL is checked by
:func:`startnet.trial.urls.check_url_for_panel` before it is stored: a URL holding a password is
refused with a message telling the user to put the password in ``~/.pgpass`` (psycopg reads it
when the URL has none). Used by the Trial Tracker and Dosimetry panels, which share the setting.

The site's camera calibration folder (``StartNet/CalibrationPath``: the CAL.json files of the
Camera Calibration module, one per camera) is an application setting too: it describes the site's
cameras, not one patient's scene. The Dosimetry module passes it to the job, which applies the file
of the SPECT's camera (:func:`startnet.calibration.use.apply_to_loaded_cycle`).
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


CALIBRATION_PATH_KEY = "StartNet/CalibrationPath"


def calibrationPath(settings=None) -> str:
    """The site's camera calibration folder (or one CAL.json) for the Dosimetry module, "" when none is set."""
    store = _settings(settings)
    value = store.value(CALIBRATION_PATH_KEY) if store.contains(CALIBRATION_PATH_KEY) else ""
    return str(value or "").strip()


def setCalibrationPath(text: str, settings=None) -> str:
    """Check and store the calibration folder (or CAL.json) typed into the Dosimetry panel; "" clears it.

    Raises :class:`startnet.errors.InputError` (nothing stored) for a path that does not exist.
    """
    from pathlib import Path

    from startnet.errors import InputError

    value = str(text or "").strip()
    if value and not Path(value).exists():
        raise InputError(f"calibration folder {value}: no such folder or file; choose the folder of the cameras' "
                         "CAL.json files (Camera Calibration module) or clear the field")
    if value and Path(value).is_file() and Path(value).suffix.lower() != ".json":
        raise InputError(f"calibration {value}: expected a folder of CAL.json files or one .json file")
    store = _settings(settings)
    store.setValue(CALIBRATION_PATH_KEY, value)
    return value
