"""Which versions of START-NET's optional Python packages fit the running Slicer (pure: no slicer import).

Slicer bundles numpy, scipy and pydicom at fixed versions, and its own modules (DICOM browser,
Segment Editor, ...) are built and tested against exactly those. Installing an optional package
must never replace them, so :func:`install_arguments` passes the bundled versions as ``==`` pins in
the same ``pip install`` call: pip then picks optional-package versions that work with them, or
fails without changing anything.

Bundled versions, read from Slicer's SuperBuild at each release tag:

==============  ====================  ==========================  =============  ==============
Slicer (tag)    Python (CMakeLists:   numpy (External_python-     scipy (...-    pydicom (...-
                Slicer_REQUIRED_      numpy.cmake)                scipy.cmake)   dicom-
                PYTHON_VERSION)                                                  requirements)
==============  ====================  ==========================  =============  ==============
5.8  (v5.8.1)   3.9.10                1.26.4                      1.13.1         2.4.4
5.10 (v5.10.0)  3.12.10               2.0.2                       1.13.1         2.4.4
==============  ====================  ==========================  =============  ==============

Choices that pip alone would get wrong (checked with ``pip install --dry-run --python-version``
against these pins):

- highdicom >= 0.23 requires pydicom >= 3 (and Python >= 3.10): with Slicer's pydicom 2.4 (5.8
  *and* 5.10) the pydicom-2 line ``highdicom>=0.22,<0.23`` is used; unpinned, pip would upgrade
  pydicom to 3 inside Slicer 5.10.
- numba 0.60 is the last release for Python 3.9 (0.61 requires Python >= 3.10) and supports
  numpy 1.22-2.0, so Slicer 5.8 (numpy 1.26.4) gets ``numba>=0.58,<0.61``. Python >= 3.10 gets
  ``numba>=0.60`` (the first release supporting numpy 2.0); with numpy pinned pip selects a numba
  whose numpy range includes the bundled one (0.67 for Slicer 5.10's numpy 2.0.2).
- scikit-image (import name ``skimage``, RTSTRUCT contour filling): 0.24 is the last release for
  Python 3.9 and the first built against numpy 2, so Slicer 5.8 gets ``scikit-image>=0.22,<0.25``
  (numpy 1.26.4) and Python >= 3.10 ``scikit-image>=0.24`` (Slicer 5.10's numpy 2.0.2).
- tzdata: only needed where Python finds no system zone files (Windows; Slicer does not bundle
  ``tzdata``); :mod:`StartNetCoreLib.dependencies` decides whether it is missing.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# Slicer-bundled packages that optional installs must keep at their installed version.
BUNDLED_PACKAGES: Tuple[str, ...] = ("numpy", "scipy", "pydicom")
# Optional packages by import name (the name importlib finds), in install order.
OPTIONAL_PACKAGES: Tuple[str, ...] = ("numba", "sqlalchemy", "alembic", "highdicom", "matplotlib", "skimage",
                                       "tzdata")

# What each supported Slicer release bundles (see the table above; tags v5.8.1 and v5.10.0).
SLICER_BUNDLED: Dict[str, Dict[str, str]] = {
    "5.8": {"python": "3.9.10", "numpy": "1.26.4", "scipy": "1.13.1", "pydicom": "2.4.4"},  # Slicer v5.8.1
    "5.10": {"python": "3.12.10", "numpy": "2.0.2", "scipy": "1.13.1", "pydicom": "2.4.4"},  # Slicer v5.10.0
}


def parse_version(text: Optional[str]) -> Optional[Tuple[int, ...]]:
    """Leading numeric release parts of a version string ('2.0.2' -> (2, 0, 2), '1.26.4rc1' -> (1, 26, 4))."""
    if not text:
        return None
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text))
    if not match:
        raise ValueError(f"version {text!r}: expected a release number like 1.26.4")
    return tuple(int(part) for part in match.group(1).split("."))


def choose_requirements(python_version: Sequence[int], bundled: Mapping[str, Optional[str]]) -> Dict[str, str]:
    """pip requirement of each optional package (by import name) for this Python and these bundled versions.

    ``python_version``: (major, minor[, micro]) of the running interpreter; ``bundled``: installed
    version of each of :data:`BUNDLED_PACKAGES` (None or missing when not installed).
    """
    python = tuple(int(v) for v in python_version[:2])
    if python < (3, 9):
        raise ValueError(f"Python {'.'.join(map(str, python))}: START-NET needs Python 3.9 or newer (Slicer 5.8+)")
    numpy = parse_version(bundled.get("numpy"))
    pydicom = parse_version(bundled.get("pydicom"))

    if python == (3, 9):
        numba = "numba>=0.58,<0.61"  # 0.60: last numba for Python 3.9
    else:
        numba = "numba>=0.60"  # 0.60: first numba for numpy 2.0; the numpy pin bounds it from above
    if numpy is not None and numpy >= (2, 0) and python == (3, 9):
        numba = "numba>=0.60,<0.61"

    pydicom_2 = pydicom is not None and pydicom < (3,)
    highdicom = "highdicom>=0.22,<0.23" if (pydicom_2 or python == (3, 9)) else "highdicom>=0.23"

    return {
        "numba": numba,
        "sqlalchemy": "SQLAlchemy>=2.0",
        "alembic": "alembic>=1.12",
        "highdicom": highdicom,
        "matplotlib": "matplotlib>=3.7",
        "skimage": "scikit-image>=0.22,<0.25" if python == (3, 9) else "scikit-image>=0.24",
        "tzdata": "tzdata>=2024.1",
    }


def bundled_pins(bundled: Mapping[str, Optional[str]]) -> List[str]:
    """``name==version`` for each installed Slicer-bundled package, so pip keeps it."""
    return [f"{name}=={bundled[name]}" for name in BUNDLED_PACKAGES if bundled.get(name)]


def install_arguments(requirements: Sequence[str], bundled: Mapping[str, Optional[str]]) -> List[str]:
    """Arguments for ``pip install``: the requirements plus the bundled packages pinned (empty if nothing to do)."""
    if not requirements:
        return []
    return list(requirements) + bundled_pins(bundled)
