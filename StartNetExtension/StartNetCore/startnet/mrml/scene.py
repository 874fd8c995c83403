"""Creating, saving and loading MRML scenes headless (slicer-core) or inside Slicer."""

from __future__ import annotations

from pathlib import Path

import slicer

from startnet.errors import OutputError


def new_scene():
    """A fresh vtkMRMLScene with the module logics that conversions need registered."""
    scene = slicer.vtkMRMLScene()
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLScene(scene)
    # keep the logic alive as long as the scene (converter rules live in a singleton factory,
    # but the logic also observes the scene for segmentation nodes)
    scene._startnet_logics = [segmentations_logic]  # noqa: SLF001 - python-side attribute
    return scene


def save_mrb(scene, path) -> Path:
    """Write the scene with all its data into a Medical Reality Bundle (.mrb) file."""
    path = Path(path)
    if path.suffix.lower() != ".mrb":
        raise OutputError(f"{path}: a Slicer scene bundle must end in .mrb")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: output folder does not exist")
    if not scene.WriteToMRB(str(path)):
        raise OutputError(f"{path}: Slicer could not write the scene bundle")
    return path
