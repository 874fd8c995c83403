"""What this installation of startnet runs on: versions of its dependencies and the machine.

Written into every result's provenance and shown by the StartNetCore module in Slicer.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from typing import Dict, Optional

from startnet import __version__

DEPENDENCIES = ("numpy", "scipy", "SimpleITK", "pydicom", "numba", "sqlalchemy", "alembic", "matplotlib",
                "highdicom")


def _version(module_name: str) -> Optional[str]:
    """The version of an importable module: of the module itself when it is already imported, else its
    installed distribution's (without importing it: importing sqlalchemy and alembic only to read their
    versions cost every run 0.5 s), else (a module without package metadata, e.g. one built into Slicer)
    of the module imported."""
    module = sys.modules.get(module_name)
    if module is None:
        if importlib.util.find_spec(module_name) is None:
            return None
        try:
            return importlib.metadata.version(module_name)
        except importlib.metadata.PackageNotFoundError:
            pass
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
    return str(getattr(module, "__version__", None) or getattr(module, "Version", lambda: "unknown")())


def environment_report() -> Dict[str, object]:
    """Versions of startnet, Python and each dependency (None when not installed), and CPU count."""
    return {
        "startnet": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "dependencies": {name: _version(name) for name in DEPENDENCIES},
    }


def missing_dependencies() -> list:
    """Names of required dependencies that cannot be imported."""
    return [name for name, version in environment_report()["dependencies"].items() if version is None]
