"""DosimetrySegmentation's logic on MRML: seeded/automatic segmentation, import, comparison.

Masks are made on the reference SPECT grid (the dosimetry grid) and stored as segments named
with the pipeline's names (kidney_left, kidney_right, liver, spleen, tumour_N). Used by the
DosimetrySegmentation module; tested headless with slicer-core.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np

from startnet.errors import InputError
from startnet.mrml.segmentations import masks_to_segmentation, segmentation_to_masks
from startnet.mrml.tables import table_from_records
from startnet.mrml.volumes import volume_to_sitk

# Segments worth keeping from a whole-body automatic segmentation (TotalSegmentator names).
DOSIMETRY_STRUCTURES = ("kidney_left", "kidney_right", "liver", "spleen", "urinary_bladder")
COMPARISON_COLUMNS = ("name", "dice", "jaccard", "hd95_mm", "mean_surface_distance_mm", "volume_a_ml",
                      "volume_b_ml", "volume_difference_ml", "volume_difference_percent", "mean_dose_a_gy",
                      "mean_dose_b_gy", "mean_dose_difference_gy", "mean_dose_difference_percent")


def seed_kind(label: str) -> Tuple[str, str]:
    """(kind, structure name) of a seed point from its label: kidney, tumour or organ."""
    from startnet.segmentation import canonical_name

    name = canonical_name(label or "")
    if name.startswith("kidney"):
        if name not in ("kidney_left", "kidney_right"):
            raise InputError(f"seed '{label}': name kidney seeds kidney_left or kidney_right")
        return "kidney", name
    if name.startswith(("tumour", "tumor", "lesion")):
        return "tumour", name.replace("tumor", "tumour")
    if name in ("liver", "spleen"):
        return "organ", name
    raise InputError(f"seed '{label}': expected a label kidney_left, kidney_right, liver, spleen or tumour_N")


def _replace_segments(scene, segmentation_node, masks: Dict[str, np.ndarray], reference) -> None:
    segmentation = segmentation_node.GetSegmentation()
    for name in masks:
        segment_id = segmentation.GetSegmentIdBySegmentName(name)
        if segment_id:
            segmentation.RemoveSegment(segment_id)
    masks_to_segmentation(scene, masks, reference, node=segmentation_node)


class SegmentationSceneLogic:
    def __init__(self, scene):
        self.scene = scene
        self.log: List[str] = []

    def auto_segment_kidneys(self, ct_node, spect_node, segmentation_node, *, cortex_only: bool = False):
        """Propose kidney seeds from SPECT uptake and CT, segment them; log says how confident."""
        from startnet.segmentation import find_kidney_seeds, segment_kidney_from_seed

        ct, spect = volume_to_sitk(ct_node), volume_to_sitk(spect_node)
        masks: Dict[str, np.ndarray] = OrderedDict()
        self.log = []
        for proposal in find_kidney_seeds(ct, spect):
            if proposal.seed_lps is None:
                self.log.append(f"{proposal.side}: not found ({proposal.reason})")
                continue
            result = segment_kidney_from_seed(ct, spect, proposal.seed_lps, cortex_only=cortex_only,
                                              name=proposal.side)
            masks[proposal.side] = result.array
            self.log.append(f"{proposal.side}: {result.volume_ml:.0f} mL, confidence {proposal.confidence}")
        if not masks:
            raise InputError("no kidney found automatically; place seed points and use 'Segment from seed points'")
        _replace_segments(self.scene, segmentation_node, masks, spect)
        return segmentation_node

    def segment_from_seeds(self, ct_node, spect_node, seed_node, segmentation_node, *, cortex_only: bool = False,
                           tumour_threshold_percent: float = 40.0):
        """One segment per seed point; the point's label names the structure."""
        from startnet.segmentation import segment_kidney_from_seed, segment_organ_from_seed, segment_tumour_from_seed

        if seed_node is None or seed_node.GetNumberOfControlPoints() == 0:
            raise InputError("place at least one seed point (label it kidney_left, tumour_1, liver ...)")
        ct, spect = volume_to_sitk(ct_node), volume_to_sitk(spect_node)
        masks: Dict[str, np.ndarray] = OrderedDict()
        self.log = []
        for i in range(seed_node.GetNumberOfControlPoints()):
            ras = [0.0, 0.0, 0.0]
            seed_node.GetNthControlPointPositionWorld(i, ras)
            lps = (-ras[0], -ras[1], ras[2])
            kind, name = seed_kind(seed_node.GetNthControlPointLabel(i))
            if kind == "kidney":
                result = segment_kidney_from_seed(ct, spect, lps, cortex_only=cortex_only, name=name)
            elif kind == "tumour":
                result = segment_tumour_from_seed(ct, spect, lps, name=name, adaptive=False,
                                                  threshold_fraction=tumour_threshold_percent / 100.0)
            else:
                result = segment_organ_from_seed(ct, spect, lps, name, name=name)
            masks[name] = result.array
            self.log.append(f"{name}: {result.volume_ml:.1f} mL ({result.method})")
        _replace_segments(self.scene, segmentation_node, masks, spect)
        return segmentation_node

    def import_segmentation(self, path: str, reference_node, segmentation_node):
        """Segments of a .seg.nrrd / DICOM SEG / labelmap file, on the reference grid."""
        from startnet.segmentation import load_segmentation

        reference = volume_to_sitk(reference_node)
        loaded = load_segmentation(path, reference)
        _replace_segments(self.scene, segmentation_node, dict(loaded.masks), reference)
        self.log = [f"imported {len(loaded.masks)} segments from {path}"]
        return segmentation_node

    def keep_dosimetry_structures(self, segmentation_node) -> List[str]:
        """Rename segments to pipeline names and remove those dosimetry does not use."""
        from startnet.segmentation import canonical_name

        segmentation = segmentation_node.GetSegmentation()
        kept = []
        for segment_id in list(segmentation.GetSegmentIDs()):
            segment = segmentation.GetSegment(segment_id)
            name = canonical_name(segment.GetName())
            if name in DOSIMETRY_STRUCTURES or name.startswith("tumour"):
                segment.SetName(name)
                kept.append(name)
            else:
                segmentation.RemoveSegment(segment_id)
        return kept

    def compare(self, segmentation_a, segmentation_b, reference_node, *, dose_node=None, table_node=None):
        """Per-segment agreement (Dice, Jaccard, HD95, MSD, volume and mean-dose differences) as a table."""
        from startnet.segmentation import compare_segmentations

        reference = volume_to_sitk(reference_node)
        a = segmentation_to_masks(self.scene, segmentation_a, reference)
        b = segmentation_to_masks(self.scene, segmentation_b, reference)
        dose = None
        if dose_node is not None:
            from startnet.mrml.volumes import volume_geometry

            if volume_geometry(dose_node).size_ijk != tuple(reference.GetSize()):
                raise InputError("the dose map must be on the reference grid (same size) to compare mean doses")
            dose = volume_to_sitk(dose_node)
        rows = compare_segmentations(a, b, spacing_mm=reference.GetSpacing(), dose_gy=dose)
        if not rows:
            raise InputError("the two segmentations share no segment name")
        records = [{c: row.to_dict().get(c) for c in COMPARISON_COLUMNS} for row in rows]
        return table_from_records(self.scene, records, "Segmentation comparison", node=table_node,
                                  columns=list(COMPARISON_COLUMNS))


