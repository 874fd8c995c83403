"""On-demand installation of Python packages Slicer does not bundle (numba, SQLAlchemy, highdicom, tzdata, ...).

Never called at import time or in a module constructor: a widget calls
:func:`ensure_dependencies` when the user starts an action that needs them, and the user is asked
before anything is installed. Self-tests call it with ``prompt=False`` (the build farm has none of
the optional packages and nobody to click OK).

Versions are chosen for the running Python and the numpy/scipy/pydicom that Slicer bundles
(:mod:`StartNetCoreLib.requirements`), and those bundled packages are pinned in the same pip call.
The time-zone database (``tzdata``) counts as missing only where Python finds no zone files
(Windows); every START-NET action reads DICOM times in a local zone, so it is checked in every call.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Dict, Iterable, List, Optional

from StartNetCoreLib.requirements import (
    BUNDLED_PACKAGES,
    OPTIONAL_PACKAGES,
    choose_requirements,
    install_arguments,
)

# Checked by every ensure_dependencies call: needed wherever DICOM date/times are read.
ALWAYS_CHECKED = ("tzdata",)


def installed_versions(distributions: Iterable[str]) -> Dict[str, Optional[str]]:
    """Installed version of each distribution (None when not installed)."""
    from importlib import metadata

    versions: Dict[str, Optional[str]] = {}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def requirements_for_this_python() -> Dict[str, str]:
    """Requirement of each optional package for the running Python and its bundled packages."""
    return choose_requirements(sys.version_info[:2], installed_versions(BUNDLED_PACKAGES))


def _is_missing(import_name: str) -> bool:
    if import_name == "tzdata":
        from startnet.dicomio.timing import time_zone_database_available

        return not time_zone_database_available()
    return importlib.util.find_spec(import_name) is None


def _names(import_names) -> List[str]:
    names = list(import_names or OPTIONAL_PACKAGES)
    unknown = [name for name in names if name not in OPTIONAL_PACKAGES]
    if unknown:
        raise ValueError(f"unknown optional package(s) {unknown}; known: {list(OPTIONAL_PACKAGES)}")
    return names + [name for name in ALWAYS_CHECKED if name not in names]


def missing_requirements(import_names=None) -> List[str]:
    """pip requirements of the optional packages (default: all) that are not importable / not usable."""
    requirements = requirements_for_this_python()
    return [requirements[name] for name in _names(import_names) if _is_missing(name)]


def ensure_dependencies(import_names=None, *, prompt: bool = True) -> bool:
    """Install what is missing (after asking, unless ``prompt=False``). True when all are usable afterwards."""
    missing = missing_requirements(import_names)
    if not missing:
        return True
    import slicer

    if prompt:
        message = (
            "START-NET needs these Python packages, which are not installed in Slicer yet:\n\n"
            + "\n".join(f"  {requirement}" for requirement in missing)
            + "\n\nInstall them now? (This downloads them from the Python Package Index; Slicer's own numpy, "
            "scipy and pydicom are kept as they are.)"
        )
        if not slicer.util.confirmOkCancelDisplay(message, windowTitle="START-NET: install dependencies"):
            return False
    arguments = install_arguments(missing, installed_versions(BUNDLED_PACKAGES))
    # slicer.util.pip_install(list) runs "python -m pip install <args>" (same at Slicer v5.8.1 and v5.10.0)
    with slicer.util.WaitCursor():
        slicer.util.pip_install(arguments)
    importlib.invalidate_caches()
    return not missing_requirements(import_names)
