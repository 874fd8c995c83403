"""Optional-package versions chosen for each Slicer's Python and bundled numpy/scipy/pydicom.

StartNetCoreLib/requirements.py is imported from its file: it is pure (no slicer). The bundled
versions come from Slicer's SuperBuild at tags v5.8.1 and v5.10.0 (recorded in SLICER_BUNDLED).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CORE_LIB = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore" / "StartNetCoreLib"


def _requirements_module():
    spec = importlib.util.spec_from_file_location("startnet_core_requirements", CORE_LIB / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


req = _requirements_module()


def _python(slicer_line: str):
    return req.parse_version(req.SLICER_BUNDLED[slicer_line]["python"])


def test_recorded_slicer_bundles():
    assert req.SLICER_BUNDLED["5.8"] == {"python": "3.9.10", "numpy": "1.26.4", "scipy": "1.13.1", "pydicom": "2.4.4"}
    assert req.SLICER_BUNDLED["5.10"] == {"python": "3.12.10", "numpy": "2.0.2", "scipy": "1.13.1",
                                          "pydicom": "2.4.4"}


def test_slicer_5_8_gets_python_3_9_lines():
    chosen = req.choose_requirements(_python("5.8"), req.SLICER_BUNDLED["5.8"])
    assert chosen["numba"] == "numba>=0.58,<0.61"  # 0.60 is the last numba for Python 3.9
    assert chosen["highdicom"] == "highdicom>=0.22,<0.23"  # 0.23 needs pydicom 3
    assert set(chosen) == set(req.OPTIONAL_PACKAGES)


def test_slicer_5_10_keeps_pydicom_2_and_numpy_2_0():
    bundled = req.SLICER_BUNDLED["5.10"]
    chosen = req.choose_requirements(_python("5.10"), bundled)
    assert chosen["highdicom"] == "highdicom>=0.22,<0.23"  # Python 3.12 could take 0.23, pydicom 2.4.4 cannot
    assert chosen["numba"] == "numba>=0.60"
    arguments = req.install_arguments([chosen["highdicom"], chosen["numba"]], bundled)
    assert arguments == ["highdicom>=0.22,<0.23", "numba>=0.60", "numpy==2.0.2", "scipy==1.13.1", "pydicom==2.4.4"]


def test_a_python_with_pydicom_3_gets_current_highdicom():
    chosen = req.choose_requirements((3, 12), {"numpy": "2.2.1", "pydicom": "3.0.1"})
    assert chosen["highdicom"] == "highdicom>=0.23"
    # Python 3.9 cannot run highdicom 0.23 whatever pydicom says
    assert req.choose_requirements((3, 9), {"numpy": "1.26.4"})["highdicom"] == "highdicom>=0.22,<0.23"


def test_choice_follows_the_running_versions_not_a_fixed_table():
    # a Python 3.9 with numpy 2.0 still gets the last 3.9 numba, which supports numpy 2.0
    assert req.choose_requirements((3, 9), {"numpy": "2.0.2"})["numba"] == "numba>=0.60,<0.61"
    assert req.choose_requirements((3, 11, 7), {"numpy": "1.26.4", "pydicom": None})["highdicom"] == "highdicom>=0.23"
    with pytest.raises(ValueError, match="Python 3.8"):
        req.choose_requirements((3, 8), {})


def test_versions_and_pins():
    assert req.parse_version("1.26.4rc1") == (1, 26, 4)
    assert req.parse_version(None) is None
    with pytest.raises(ValueError, match="release number"):
        req.parse_version("unknown")
    assert req.bundled_pins({"numpy": "1.26.4", "scipy": None}) == ["numpy==1.26.4"]
    assert req.install_arguments([], {"numpy": "1.26.4"}) == []


def test_scikit_image_for_rtstruct_fits_each_slicer():
    # 0.24 is the last scikit-image for Python 3.9 (Slicer 5.8) and the first built against numpy 2 (Slicer 5.10)
    slicer_58 = req.choose_requirements((3, 9, 10), req.SLICER_BUNDLED["5.8"])
    slicer_510 = req.choose_requirements((3, 12, 10), req.SLICER_BUNDLED["5.10"])
    assert slicer_58["skimage"] == "scikit-image>=0.22,<0.25"
    assert slicer_510["skimage"] == "scikit-image>=0.24"
