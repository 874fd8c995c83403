"""TimepointRegistration's logic on MRML: load a cycle, register it in the scene, review it.

All state lives in the scene (the cycle node of :mod:`startnet.mrml.cycle_state`), so this object
holds only the scene and the cycle node it works on; after a scene reload it finds the cycle node
again. Steps: :mod:`startnet.mrml.cycle_load` (folder or DICOM file lists -> volumes in the subject
hierarchy), :mod:`startnet.mrml.cycle_register` (one transform node per time point, quality
table). Used by the TimepointRegistration module; tested headless with slicer-core.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from startnet.dicomio import Overrides
from startnet.errors import InputError
from startnet.mrml import cycle_state as state
from startnet.mrml.cycle_load import LoadedCycle, hours_post_injection, load_cycle_into_scene, timepoint_layers
from startnet.mrml.cycle_register import register_in_scene
from startnet.mrml.tables import records_from_table
from startnet.mrml.volumes import sitk_to_volume, volume_to_sitk

Progress = Optional[Callable[[float, str], None]]


class CycleSceneLogic:
    def __init__(self, scene):
        self.scene = scene
        self._cycle_node = None
        self.loaded: Optional[LoadedCycle] = None

    @property
    def cycle_node(self):
        node = self._cycle_node
        if node is None or self.scene.GetNodeByID(node.GetID()) is not node:
            node = self._cycle_node = state.find_cycle_node(self.scene)
        return node

    def load_cycle(self, source: Union[str, Sequence[str]], *, calibration_cps_per_mbq: Optional[float] = None,
                   reference_index: Optional[int] = None, progress: Progress = None) -> str:
        """Load every time point (folder or list of DICOM files); returns a one-paragraph summary."""
        overrides = Overrides(calibration_cps_per_mbq=calibration_cps_per_mbq)
        source = [str(f) for f in source] if isinstance(source, (list, tuple)) else str(source)
        self.loaded = load_cycle_into_scene(self.scene, source, overrides, reference_index=reference_index,
                                            progress=progress)
        self._cycle_node = self.loaded.cycle_node
        return self.loaded.summary

    def timepoint_count(self) -> int:
        node = self.cycle_node
        return state.timepoint_count(node) if node is not None else 0

    def hours(self) -> List[float]:
        node = self.cycle_node
        return hours_post_injection(node) if node is not None else []

    def reference_index(self) -> int:
        return state.reference_index(state.require_cycle_node(self.scene, self.cycle_node))

    def reference_ct_node(self, reference_index: Optional[int] = None):
        node = state.require_cycle_node(self.scene, self.cycle_node)
        index = state.reference_index(node) if reference_index is None else reference_index
        return state.timepoint_node(node, "ct", index)

    def reference_layers(self):
        """(background CT, foreground SPECT) of the reference time point: what the widget shows fused."""
        return self.timepoint_layers(self.reference_index())

    def timepoint_layers(self, index: int):
        return timepoint_layers(self.scene, index, self.cycle_node)

    def register(self, reference_index: Optional[int] = None, *, deformable: bool = False, progress: Progress = None):
        """Register all time points onto the reference in the scene; returns the quality table node."""
        return register_in_scene(self.scene, self.cycle_node, reference_index, deformable=deformable,
                                 progress=progress)

    def has_registration(self) -> bool:
        node = self.cycle_node
        return node is not None and state.quality_table_node(node) is not None

    def quality_summary(self) -> str:
        node = self.cycle_node
        table = state.quality_table_node(node) if node is not None else None
        if table is None:
            return ""
        lines = []
        for row in records_from_table(table):
            if row["reference"] in (True, "True"):
                continue
            moved = float(np.linalg.norm([float(v) for v in str(row["translation_mm"]).split()]))
            flag = "  IMPLAUSIBLE: check it" if "IMPLAUSIBLE" in str(row["warnings"]) else ""
            lines.append(f"{float(row['hours_post_injection']):.1f} h: moved {moved:.1f} mm, rotation "
                         f"{row['rotation_deg']} deg{flag}")
        return "\n".join(lines)

    def check_image_node(self, index: Optional[int] = None):
        """Checkerboard of the reference CT and one time point's CT through its CURRENT scene transform."""
        from startnet.mrml.cycle_inputs import transforms_from_scene
        from startnet.registration import checkerboard

        node = state.require_cycle_node(self.scene, self.cycle_node)
        if not self.has_registration():
            raise InputError("register the time points first")
        reference = state.reference_index(node)
        others = [i for i in range(state.timepoint_count(node)) if i != reference]
        if not others:
            raise InputError("only one time point: nothing to check")
        chosen = others[-1] if index is None else int(index)
        reference_ct = volume_to_sitk(state.timepoint_node(node, "ct", reference), harden_parent_transform=False)
        moving_ct = volume_to_sitk(state.timepoint_node(node, "ct", chosen), harden_parent_transform=False)
        transform = transforms_from_scene(node, reference, reference_ct)[chosen] or sitk.Euler3DTransform()
        on_reference = sitk.Resample(moving_ct, reference_ct, transform, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        image = checkerboard(reference_ct, on_reference)
        name = f"Check image reference vs {self.hours()[chosen]:.1f} h"
        existing = self.scene.GetFirstNodeByName(name)
        return sitk_to_volume(self.scene, image, name, node=existing)
