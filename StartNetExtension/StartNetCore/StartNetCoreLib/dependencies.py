"""On-demand installation of Python packages Slicer does not bundle (numba, SQLAlchemy, ...).

Never called at import time or in a module constructor: a widget calls
:func:`ensure_dependencies` when the user starts an action that needs them, and the user is asked
before anything is installed.
"""

from __future__ import annotations

import importlib.util
from typing import Dict, List

# import name -> pip requirement
OPTIONAL_REQUIREMENTS: Dict[str, str] = {
    "numba": "numba>=0.58",
    "sqlalchemy": "SQLAlchemy>=2.0",
    "alembic": "alembic>=1.12",
    "highdicom": "highdicom>=0.22",
    "matplotlib": "matplotlib>=3.7",
}


def missing_requirements(import_names=None) -> List[str]:
    """pip requirements of the optional packages that are not importable."""
    names = list(import_names or OPTIONAL_REQUIREMENTS)
    return [OPTIONAL_REQUIREMENTS[name] for name in names if importlib.util.find_spec(name) is None]


def ensure_dependencies(import_names=None) -> bool:
    """Ask the user, then pip-install what is missing. Returns True when all are importable."""
    import slicer

    missing = missing_requirements(import_names)
    if not missing:
        return True
    message = (
        "START-NET needs these Python packages, which are not installed in Slicer yet:\n\n"
        + "\n".join(f"  {requirement}" for requirement in missing)
        + "\n\nInstall them now? (This downloads them from the Python Package Index.)"
    )
    if not slicer.util.confirmOkCancelDisplay(message, windowTitle="START-NET: install dependencies"):
        return False
    with slicer.util.WaitCursor():
        slicer.util.pip_install(missing)
    importlib.invalidate_caches()
    return not missing_requirements(import_names)
