"""``StartNetCoreLib/settings.py`` loaded without Slicer, over a dict-backed stand-in for ``qt.QSettings``.

The helper uses only ``contains``, ``value`` and ``setValue`` of ``qt.QSettings`` (the same at
Slicer 5.8.1 and 5.10.0); the tests give it this stand-in through its ``settings`` argument.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CORE_DIR = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore"


class FakeSettings:
    """The part of qt.QSettings the helper uses."""

    def __init__(self, values=None):
        self.values = dict(values or {})

    def contains(self, key):
        return key in self.values

    def value(self, key, default=None):
        return self.values.get(key, default)

    def setValue(self, key, value):
        self.values[key] = value


def load_settings_module(module_name: str):
    """A fresh copy of StartNetCoreLib/settings.py (it imports ``qt`` only when no settings are passed)."""
    spec = importlib.util.spec_from_file_location(module_name, CORE_DIR / "StartNetCoreLib" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
