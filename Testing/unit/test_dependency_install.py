"""ensure_dependencies: what it asks and what it passes to pip (a stand-in slicer.util records the calls).

Self-tests on a clean Slicer call it with prompt=False: no dialog, pip gets the chosen requirements
plus Slicer's bundled numpy/scipy/pydicom pinned at their installed versions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest

CORE_DIR = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore"


@pytest.fixture
def dependencies(monkeypatch):
    monkeypatch.syspath_prepend(str(CORE_DIR))
    spec = importlib.util.spec_from_file_location("startnet_core_dependencies_install",
                                                  CORE_DIR / "StartNetCoreLib" / "dependencies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = {"pip": [], "asked": []}
    installed = set()

    def pip_install(arguments):
        calls["pip"].append(list(arguments))
        installed.update(a.split(">")[0].split("=")[0].split("<")[0].lower() for a in arguments)

    def confirm(message, windowTitle=None):
        calls["asked"].append(message)
        return calls.get("answer", True)

    util = types.SimpleNamespace(pip_install=pip_install, confirmOkCancelDisplay=confirm,
                                 WaitCursor=contextlib.nullcontext)
    monkeypatch.setitem(sys.modules, "slicer", types.SimpleNamespace(util=util))
    absent = {"numba", "highdicom"}
    monkeypatch.setattr(module, "_is_missing", lambda name: name in absent and name not in installed)
    slicer_5_8 = {"numpy": "1.26.4", "scipy": "1.13.1", "pydicom": "2.4.4"}  # as bundled at v5.8.1
    monkeypatch.setattr(module, "installed_versions", lambda names: dict(slicer_5_8))
    monkeypatch.setattr(module, "requirements_for_this_python",
                        lambda: module.choose_requirements((3, 9, 10), slicer_5_8))
    return module, calls


def test_no_prompt_installs_with_bundled_pins(dependencies):
    module, calls = dependencies
    assert module.missing_requirements(["numba", "highdicom", "matplotlib"]) == [
        "numba>=0.58,<0.61", "highdicom>=0.22,<0.23"]
    assert module.ensure_dependencies(["numba", "highdicom"], prompt=False)
    assert calls["asked"] == []
    assert calls["pip"] == [["numba>=0.58,<0.61", "highdicom>=0.22,<0.23", "numpy==1.26.4", "scipy==1.13.1",
                             "pydicom==2.4.4"]]


def test_prompt_asks_and_a_refusal_installs_nothing(dependencies):
    module, calls = dependencies
    calls["answer"] = False
    assert not module.ensure_dependencies(["numba"])
    assert len(calls["asked"]) == 1 and "numba>=0.58,<0.61" in calls["asked"][0] and calls["pip"] == []
    assert module.ensure_dependencies(["matplotlib"])  # nothing missing: neither asked nor installed
    assert len(calls["asked"]) == 1 and calls["pip"] == []
    with pytest.raises(ValueError, match="unknown optional package"):
        module.missing_requirements(["pandas"])
