"""StartNetModuleWidget.run with Slicer's real ``slicer.util.tryWithErrorDisplay`` (slicer-core copy).

``tryWithErrorDisplay`` shows the error and then re-raises it (Slicer v5.8.1 and v5.10.0), so the
old ``run`` let the exception out of every button handler and the code after it (``if outputs:``,
``updateGuiState()``) never ran. ``run`` now returns ``(ok, value)``: ``(False, None)`` after the
error was shown or the user cancelled. Only the Qt application pieces are stubbed (no desktop app here).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import slicer
import slicer.util

WIDGET = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore" / "StartNetCoreLib" / "widget.py"


class _App:
    def __init__(self):
        self.cursor = 0

    def setOverrideCursor(self, cursor):
        self.cursor += 1

    def restoreOverrideCursor(self):
        self.cursor -= 1

    @staticmethod
    def testingEnabled():
        return True  # no popup (as in Slicer's self-tests); the re-raise is the same either way


@pytest.fixture
def widget_module(monkeypatch):
    app = _App()
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setitem(sys.modules, "qt", types.SimpleNamespace(Qt=types.SimpleNamespace(WaitCursor=3)))
    loadable = types.ModuleType("slicer.ScriptedLoadableModule")
    loadable.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", loadable)
    messages = []
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, duration=0: messages.append(text))
    spec = importlib.util.spec_from_file_location("startnet_widget_under_test", WIDGET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.app, module.messages = app, messages
    return module


def test_try_with_error_display_re_raises():
    slicer.app = _App()
    try:
        with pytest.raises(ValueError), slicer.util.tryWithErrorDisplay("failed", waitCursor=False):
            raise ValueError("bad input")
    finally:
        del slicer.app


def test_run_returns_ok_and_value(widget_module):
    run = widget_module.StartNetModuleWidget.run
    widget = object()
    assert run(widget, "failed", lambda x: x * 2, 21) == (True, 42)

    def fails():
        raise ValueError("bad input")

    assert run(widget, "Dosimetry failed.", fails) == (False, None)  # shown and logged, not raised
    assert widget_module.app.cursor == 0  # the wait cursor was restored

    def cancelled():
        raise widget_module.OperationCancelled("Cycle dosimetry: cancelled by the user")

    assert run(widget, "Dosimetry failed.", cancelled) == (False, None)
    assert widget_module.messages == ["Cycle dosimetry: cancelled by the user"]
