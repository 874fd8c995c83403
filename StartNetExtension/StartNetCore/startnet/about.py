"""What this installation of startnet runs on: versions of its dependencies and the machine.

Written into every result's provenance and shown by the StartNetCore module in Slicer.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Dict, Optional

from startnet import __version__

DEPENDENCIES = ("numpy", "scipy", "SimpleITK", "pydicom", "numba", "sqlalchemy", "alembic", "matplotlib",
                "highdicom")


def _version(module_name: str) -> Optional[str]:
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
