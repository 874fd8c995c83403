"""The Dosimetry panel's camera calibration folder lives in Slicer's application settings
(``StartNetCoreLib.settings``, a dict-backed stand-in for ``qt.QSettings`` here): stored when it
exists, cleared with an empty entry, a missing path or a non-JSON file refused with one line and
nothing stored."""

from __future__ import annotations

import pytest
from settings_standin import FakeSettings, load_settings_module

from startnet.errors import InputError


@pytest.fixture
def settings_module():
    return load_settings_module("startnet_core_settings_cal")


def test_calibration_folder_is_stored_checked_and_cleared(settings_module, tmp_path):
    settings = FakeSettings()
    assert settings_module.calibrationPath(settings) == ""
    assert settings_module.setCalibrationPath(f" {tmp_path} ", settings) == str(tmp_path)
    assert settings_module.calibrationPath(settings) == str(tmp_path)
    with pytest.raises(InputError, match="no such folder or file") as error:
        settings_module.setCalibrationPath(str(tmp_path / "missing"), settings)
    assert "\n" not in str(error.value)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="expected a folder of CAL.json files"):
        settings_module.setCalibrationPath(str(tmp_path / "notes.txt"), settings)
    assert settings.values == {settings_module.CALIBRATION_PATH_KEY: str(tmp_path)}  # refused ones not stored
    (tmp_path / "CAL.json").write_text("{}")
    assert settings_module.setCalibrationPath(str(tmp_path / "CAL.json"), settings) == str(tmp_path / "CAL.json")
    assert settings_module.setCalibrationPath("", settings) == ""
    assert settings_module.calibrationPath(settings) == ""
