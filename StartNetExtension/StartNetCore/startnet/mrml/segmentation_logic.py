"""DosimetrySegmentation's logic on MRML: seeded/automatic segmentation, import, comparison.

Segments live at the reference CT's resolution: the segmentation's reference geometry is the
reference CT (Segment Editor edits on the CT grid, not on 4.8 mm SPECT voxels). The seeded and
automatic methods segment on the SPECT grid (where they were tuned) and their masks are brought
onto the CT grid (:func:`startnet.segmentation.mask_on_grid`). Segments get the pipeline's names
(kidney_left, kidney_right, liver, spleen, urinary_bladder, tumour_N) and Slicer's standard
terminology; re-running replaces the segments of the same name and keeps every other segment.
Used by the DosimetrySegmentation module; tested headless with slicer-core.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import numpy as np

from startnet.errors import InputError
from startnet.mrml.segmentation_export import set_reference_geometry
from startnet.mrml.segmentations import masks_to_segmentation, segmentation_to_masks
from startnet.mrml.tables import table_from_records
from startnet.mrml.volumes import volume_to_sitk

# Segments worth keeping from a whole-body automatic segmentation (TotalSegmentator class names,
# which are also the pipeline's names).
DOSIMETRY_STRUCTURES = ("kidney_left", "kidney_right", "liver", "spleen", "urinary_bladder")
# The lumbar vertebrae the image-based marrow dose uses (``--marrow-voi segments``,
# :func:`startnet.dosimetry.marrow_image.marrow_voi_names`); TotalSegmentator calls them vertebrae_L2..L4.
MARROW_VOI_STRUCTURES = ("vertebra_L2", "vertebra_L3", "vertebra_L4")
# What the DosimetrySegmentation module asks TotalSegmentator for and merges.
TOTALSEGMENTATOR_STRUCTURES = DOSIMETRY_STRUCTURES + MARROW_VOI_STRUCTURES
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


def replace_segments(scene, segmentation_node, masks: Dict[str, np.ndarray], reference) -> None:
    """Write ``masks`` (on ``reference``'s grid) as segments, replacing only segments of the same names."""
    segmentation = segmentation_node.GetSegmentation()
    for name in masks:
        segment_id = segmentation.GetSegmentIdBySegmentName(name)
        while segment_id:
            segmentation.RemoveSegment(segment_id)
            segment_id = segmentation.GetSegmentIdBySegmentName(name)
    masks_to_segmentation(scene, masks, reference, node=segmentation_node)


def structure_key(text: str) -> str:
    """Pipeline name of a source segment's ID or name: ``canonical_name``, and a lumbar vertebra
    (``vertebrae_L2`` of TotalSegmentator, ``L3 vertebra`` of its standard names...) as ``vertebra_L2..L4``."""
    from startnet.dosimetry.marrow_image import marrow_voi_names
    from startnet.segmentation import canonical_name

    levels, _ = marrow_voi_names([text])
    if levels:
        return f"vertebra_{next(iter(levels))}"
    return canonical_name(text)


def _check_reference_ct(ct_node) -> None:
    if ct_node is None:
        raise InputError("select the reference CT: segments are made at its resolution")


class SegmentationSceneLogic:
    def __init__(self, scene):
        self.scene = scene
        self.log: List[str] = []

    def _on_ct_grid(self, ct_node, segmentation_node, ct, masks: Dict[str, np.ndarray]) -> None:
        """SPECT-grid segmentation results -> segments at the reference CT's resolution."""
        from startnet.segmentation import mask_on_grid

        set_reference_geometry(segmentation_node, ct_node)
        on_ct = OrderedDict((name, mask_on_grid(image, ct)) for name, image in masks.items())
        for name, mask in on_ct.items():
            if not mask.any():
                raise InputError(f"{name}: the segment does not overlap the reference CT")
        replace_segments(self.scene, segmentation_node, on_ct, ct)
        self._link_to_cycle(ct_node, segmentation_node)

    def _link_to_cycle(self, ct_node, segmentation_node) -> None:
        """The cycle whose CT the segments were made on references them: the Dosimetry module finds them there."""
        from startnet.mrml.cycle_state import cycle_node_of_volume, set_segmentation_node

        cycle_node = cycle_node_of_volume(self.scene, ct_node)
        if cycle_node is not None:
            set_segmentation_node(cycle_node, segmentation_node)

    def auto_segment_kidneys(self, ct_node, spect_node, segmentation_node, *, cortex_only: bool = False):
        """Propose kidney seeds from SPECT uptake and CT, segment them; log says how confident."""
        from startnet.segmentation import find_kidney_seeds, segment_kidney_from_seed

        _check_reference_ct(ct_node)
        ct, spect = volume_to_sitk(ct_node), volume_to_sitk(spect_node)
        masks = OrderedDict()
        self.log = []
        for proposal in find_kidney_seeds(ct, spect):
            if proposal.seed_lps is None:
                self.log.append(f"{proposal.side}: not found ({proposal.reason})")
                continue
            result = segment_kidney_from_seed(ct, spect, proposal.seed_lps, cortex_only=cortex_only,
                                              name=proposal.side)
            masks[proposal.side] = result.mask
            self.log.append(f"{proposal.side}: {result.volume_ml:.0f} mL, confidence {proposal.confidence}")
        if not masks:
            raise InputError("no kidney found automatically; place seed points and use 'Segment from seed points'")
        self._on_ct_grid(ct_node, segmentation_node, ct, masks)
        return segmentation_node

    def segment_from_seeds(self, ct_node, spect_node, seed_node, segmentation_node, *, cortex_only: bool = False,
                           tumour_threshold_percent: float = 40.0):
        """One segment per seed point; the point's label names the structure."""
        from startnet.segmentation import segment_kidney_from_seed, segment_organ_from_seed, segment_tumour_from_seed

        _check_reference_ct(ct_node)
        if seed_node is None or seed_node.GetNumberOfControlPoints() == 0:
            raise InputError("place at least one seed point (label it kidney_left, tumour_1, liver ...)")
        ct, spect = volume_to_sitk(ct_node), volume_to_sitk(spect_node)
        masks = OrderedDict()
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
            masks[name] = result.mask
            self.log.append(f"{name}: {result.volume_ml:.1f} mL ({result.method})")
        self._on_ct_grid(ct_node, segmentation_node, ct, masks)
        return segmentation_node

    def import_segmentation(self, path: str, reference_node, segmentation_node):
        """Segments of a .seg.nrrd / DICOM SEG / RTSTRUCT / labelmap file, on the reference CT's grid."""
        from startnet.segmentation import load_segmentation

        _check_reference_ct(reference_node)
        reference = volume_to_sitk(reference_node)
        loaded = load_segmentation(path, reference)
        set_reference_geometry(segmentation_node, reference_node)
        replace_segments(self.scene, segmentation_node, dict(loaded.masks), reference)
        self._link_to_cycle(reference_node, segmentation_node)
        self.log = [f"imported {len(loaded.masks)} segments from {path}"] + list(loaded.notes)
        return segmentation_node

    def merge_segments(self, source_node, segmentation_node, reference_node,
                       structures: Sequence[str] = DOSIMETRY_STRUCTURES) -> List[str]:
        """Copy the ``structures`` of ``source_node`` (e.g. a TotalSegmentator result) into ``segmentation_node``.

        A source segment is matched by its ID or its name (TotalSegmentator uses the class name as
        ID and may name the segment "left kidney"; its ``vertebrae_L2`` / "L2 vertebra" is
        ``vertebra_L2``, :func:`structure_key`); it is written under the standard name, with
        the standard terminology, at ``reference_node``'s (the CT's) resolution. Only segments of
        those names are replaced in ``segmentation_node``; its other segments are kept. Returns
        the names merged.
        """
        _check_reference_ct(reference_node)
        source = source_node.GetSegmentation()
        wanted: Dict[str, str] = OrderedDict()
        for i in range(source.GetNumberOfSegments()):
            segment_id = source.GetNthSegmentID(i)
            for key in (segment_id, structure_key(segment_id), structure_key(source.GetSegment(segment_id).GetName())):
                if key in structures and key not in wanted:
                    wanted[key] = segment_id
                    break
        if not wanted:
            raise InputError(f"'{source_node.GetName()}' has none of the structures {list(structures)}")
        reference = volume_to_sitk(reference_node)
        all_masks = segmentation_to_masks(self.scene, source_node, reference)
        names = {source.GetSegment(segment_id).GetName(): name for name, segment_id in wanted.items()}
        masks = OrderedDict((names[n], m) for n, m in all_masks.items() if n in names and m.any())
        set_reference_geometry(segmentation_node, reference_node)
        replace_segments(self.scene, segmentation_node, masks, reference)
        self._link_to_cycle(reference_node, segmentation_node)
        self.log = [f"{name}: {float(mask.sum()) * _voxel_ml(reference):.0f} mL" for name, mask in masks.items()]
        return list(masks)

    def compare(self, segmentation_a, segmentation_b, reference_node, *, dose_node=None, table_node=None):
        """Per-segment agreement (Dice, Jaccard, HD95, MSD, volume and mean-dose differences) as a table.

        The masks are compared on ``reference_node``'s grid (the reference CT, where the segments
        are made), or on the dose map's grid when one is given (mean doses need it).
        """
        from startnet.mrml.segmentation_export import segmentation_labelmap_on_geometry
        from startnet.segmentation import compare_segmentations

        grid_node = dose_node if dose_node is not None else reference_node
        if grid_node is None:
            raise InputError("select the reference CT (or a dose map) to compare the segmentations on")
        a = segmentation_labelmap_on_geometry(self.scene, segmentation_a, grid_node)
        b = segmentation_labelmap_on_geometry(self.scene, segmentation_b, grid_node)
        reference = a.reference
        dose = volume_to_sitk(dose_node) if dose_node is not None else None
        rows = compare_segmentations(a.masks, b.masks, spacing_mm=reference.GetSpacing(), dose_gy=dose)
        if not rows:
            raise InputError("the two segmentations share no segment name")
        records = [{c: row.to_dict().get(c) for c in COMPARISON_COLUMNS} for row in rows]
        return table_from_records(self.scene, records, "Segmentation comparison", node=table_node,
                                  columns=list(COMPARISON_COLUMNS))




def _voxel_ml(image) -> float:
    return float(np.prod(image.GetSpacing())) / 1000.0
