"""Base widget for the START-NET scripted modules (Slicer application only).

Follows Slicer's Extension Wizard template: the .ui is loaded with ``slicer.util.loadUI``, the
parameter node (a ``@parameterNodeWrapper`` class) is bound to the widgets through their
``SlicerParameterName`` property with ``connectGui``, and the widget stays thin: it reads the
parameter node, calls the module logic and shows results. Long work runs inside
:meth:`StartNetModuleWidget.progress` (a cancellable progress dialog) or in a background process
(:mod:`StartNetCoreLib.process`); errors are shown with ``slicer.util.tryWithErrorDisplay`` by
:meth:`StartNetModuleWidget.run`, which returns ``(ok, value)``.
"""

from __future__ import annotations

import contextlib
import logging

import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin


class OperationCancelled(Exception):
    """Raised inside a progress callback when the user pressed Cancel."""


class StartNetModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Template-style module widget; subclasses set ``MODULE_NAME`` and ``logicClass``."""

    MODULE_NAME = ""
    logicClass = None

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    # -- template life cycle -------------------------------------------------------------
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.MODULE_NAME}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.logicClass()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.connectSignals()
        self.initializeParameterNode()

    def connectSignals(self) -> None:
        """Connect buttons to handlers (override)."""

    def updateGuiState(self, caller=None, event=None) -> None:
        """Enable/disable buttons from the parameter node (override)."""

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiState)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiState)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiState)
            self.updateGuiState()

    # -- helpers ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def progress(self, title: str, steps: int = 100):
        """Cancellable progress dialog; yields ``report(fraction, text)`` for the logic to call."""
        dialog = slicer.util.createProgressDialog(parent=slicer.util.mainWindow(), windowTitle=title,
                                                  labelText=title, maximum=steps)
        dialog.setCancelButtonText("Cancel")

        def report(fraction: float, text: str = "") -> None:
            if dialog.wasCanceled:
                raise OperationCancelled(f"{title}: cancelled by the user")
            dialog.setValue(int(round(max(0.0, min(1.0, fraction)) * steps)))
            if text:
                dialog.setLabelText(text)
                slicer.util.showStatusMessage(text)
            slicer.app.processEvents()

        try:
            yield report
        finally:
            dialog.close()

    def run(self, errorMessage: str, function, *args, **kwargs):
        """``(True, result)``, or ``(False, None)`` after the error was shown or the user cancelled.

        ``slicer.util.tryWithErrorDisplay`` shows the error and then RE-RAISES it (Slicer v5.8.1 and
        v5.10.0, util.py), so the exception is caught here, after it was shown, and logged with its
        traceback; a Qt slot must not end in an exception. Callers continue only when ``ok``.
        """
        try:
            with slicer.util.tryWithErrorDisplay(errorMessage, waitCursor=True):
                return True, function(*args, **kwargs)
        except OperationCancelled as exc:
            slicer.util.showStatusMessage(str(exc), 5000)
        except Exception:  # already shown by tryWithErrorDisplay
            logging.error(errorMessage, exc_info=True)
        return False, None

    @staticmethod
    def showTable(tableNode) -> None:
        """Show a table node in the layout's table view."""
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
