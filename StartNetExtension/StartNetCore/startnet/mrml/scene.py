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
