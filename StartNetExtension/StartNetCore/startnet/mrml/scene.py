"""Creating, saving and loading MRML scenes headless (slicer-core) or inside Slicer."""

from __future__ import annotations

from pathlib import Path

import slicer

from startnet.errors import OutputError


def new_scene():
    """A fresh vtkMRMLScene with the module logics that conversions need registered."""
    from startnet.mrml.segmentations import _segmentations_logic

    scene = slicer.vtkMRMLScene()
    _segmentations_logic(scene)  # kept on the scene: it observes it for segmentation nodes
    return scene


def save_mrb(scene, path) -> Path:
    """Write the scene with all its data into a Medical Reality Bundle (.mrb) file."""
    path = Path(path).resolve()  # Slicer writes the bundle only to a full path
    if path.suffix.lower() != ".mrb":
        raise OutputError(f"{path}: a Slicer scene bundle must end in .mrb")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: output folder does not exist")
    if not scene.WriteToMRB(str(path)):
        raise OutputError(f"{path}: Slicer could not write the scene bundle")
    return path


def read_mrb(path, scene=None):
    """Load a Medical Reality Bundle (.mrb) into ``scene`` (a new one by default) and return the scene.

    Headless, ``vtkMRMLScene.ReadFromMRB`` reads the bundled files through the data I/O manager,
    which must be wired as Slicer's application does (vtkMRMLRemoteIOLogic + vtkDataIOManagerLogic);
    the logics are kept on the scene object. In the Slicer application use ``slicer.util.loadScene``.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise OutputError(f"{path}: scene bundle does not exist")
    scene = scene if scene is not None else new_scene()
    if getattr(scene, "_startnet_io_logics", None) is None:
        application = slicer.vtkMRMLApplicationLogic()
        application.SetMRMLScene(scene)
        remote = slicer.vtkMRMLRemoteIOLogic()
        remote.SetMRMLScene(scene)
        data_io = slicer.vtkDataIOManagerLogic()
        data_io.SetMRMLApplicationLogic(application)
        data_io.SetAndObserveDataIOManager(remote.GetDataIOManager())
        remote.AddDataIOToScene()
        scene._startnet_io_logics = (application, remote, data_io)
    if not scene.ReadFromMRB(str(path)):
        raise OutputError(f"{path}: Slicer could not read the scene bundle")
    return scene
