"""Without a time-zone database (Windows, no tzdata) loading DICOM stops with an actionable message.

The zone files are really hidden: zoneinfo's search path points to an empty folder and the
``tzdata`` package cannot be imported, so ``zoneinfo.ZoneInfo`` itself fails as it does on a
Windows Slicer. StartNetCoreLib.dependencies then reports ``tzdata`` as missing.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
import zoneinfo
from pathlib import Path

import dicom_factory as f
import numpy as np
import pytest

from startnet.dicomio import load_cycle
from startnet.dicomio.timing import get_zone, time_zone_database_available
from startnet.errors import InputError

CORE_DIR = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore"


def _dependencies_module():
    """StartNetCoreLib.dependencies imported from its file (pure at import: no slicer needed)."""
    if str(CORE_DIR) not in sys.path:
        sys.path.insert(0, str(CORE_DIR))
    spec = importlib.util.spec_from_file_location("startnet_core_dependencies",
                                                  CORE_DIR / "StartNetCoreLib" / "dependencies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_zone_data(tmp_path, monkeypatch):
    empty = tmp_path / "empty-zoneinfo"
    empty.mkdir()
    for name in [m for m in sys.modules if m == "tzdata" or m.startswith("tzdata.")] + ["tzdata"]:
        monkeypatch.setitem(sys.modules, name, None)  # import tzdata[.zoneinfo...] -> ImportError
    zoneinfo.reset_tzpath(to=[str(empty)])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        yield empty
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def _write_small_cycle(root: Path) -> None:
    volume = np.zeros((6, 8, 8), np.uint16)
    volume[2:4, 2:6, 2:6] = 100
    f.spect_and_ct(str(root / "tp0"), volume, acquisition=dt.datetime(2026, 6, 2, 10, 0, 0),
                   injection=dt.datetime(2026, 6, 1, 10, 0, 0), spect_origin=(-32.0, -32.0, -24.0),
                   ct_shape=(14, 20, 20))


def test_hidden_zone_files_make_zoneinfo_fail_and_startnet_say_install_tzdata(no_zone_data, tmp_path):
    with pytest.raises(zoneinfo.ZoneInfoNotFoundError):  # the real lookup fails, as on Windows
        zoneinfo.ZoneInfo("Europe/Stockholm")
    assert not time_zone_database_available()
    with pytest.raises(InputError, match=r"no time-zone database .*install 'tzdata'") as info:
        get_zone("Europe/Stockholm")
    assert str(no_zone_data) in str(info.value) and "slicer.util.pip_install('tzdata')" in str(info.value)

    _write_small_cycle(tmp_path / "cycle")
    with pytest.raises(InputError, match="no time-zone database"):
        load_cycle(str(tmp_path / "cycle"))

    dependencies = _dependencies_module()
    missing = dependencies.missing_requirements(["tzdata"])
    assert len(missing) == 1 and missing[0].startswith("tzdata")


def test_with_zone_data_a_mistyped_zone_is_named_and_tzdata_is_not_requested(tmp_path):
    assert time_zone_database_available()
    assert get_zone("Europe/Stockholm").utcoffset(dt.datetime(2026, 7, 1, 12, 0)) == dt.timedelta(hours=2)
    with pytest.raises(InputError, match="'Europe/Stokholm' is unknown") as info:
        get_zone("Europe/Stokholm")
    assert "no time-zone database" not in str(info.value)
    assert _dependencies_module().missing_requirements(["tzdata"]) == []
    _write_small_cycle(tmp_path / "cycle")
    assert len(load_cycle(str(tmp_path / "cycle")).timepoints) == 1
