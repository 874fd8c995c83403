"""MRML round trip (slicer-core) of a segmentation produced by startnet.segmentation: masks ->
segmentation node -> Slicer's own .seg.nrrd writer -> load_segmentation, and node -> masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from startnet.mrml.dosimetry_logic import write_segmentation_node
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentations import (
    masks_to_segmentation,
    segment_colours,
    segment_names,
    segmentation_to_masks,
)
from startnet.phantom import PhantomConfig, build_phantom
from startnet.segmentation import (
    Segmentation,
    compare_segmentations,
    load_segmentation,
    segment_kidney_from_seed,
    segment_tumour_from_seed,
)


@pytest.fixture(scope="module")
def produced():
    phantom = build_phantom(PhantomConfig(preset="small", seed=8, motion=False))
    spect = phantom.timepoints[0].spect_bqml
    labels = phantom.labels
    ids = {n: v for v, n in phantom.label_names.items()}
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(labels)
    seeds = {}
    for name in ("kidney_left", "kidney_right", "tumour_1"):
        z, y, x = ndi.center_of_mass(array == ids[name])
        seeds[name] = labels.TransformContinuousIndexToPhysicalPoint((x, y, z))
    seg = Segmentation(spect, source="seeded")
    for side in ("kidney_left", "kidney_right"):
        seg.add(side, segment_kidney_from_seed(phantom.ct_hu, spect, seeds[side], name=side).array)
    seg.add("tumour_1", segment_tumour_from_seed(phantom.ct_hu, spect, seeds["tumour_1"]).array, (0.2, 0.8, 0.2))
    # overlaps kidney_left: Slicer has to store it in a second layer
    seg.add("kidney_left_cortex", segment_kidney_from_seed(phantom.ct_hu, spect, seeds["kidney_left"],
                                                           cortex_only=True).array)
    return seg


def test_segmentation_node_round_trip(produced, tmp_path):
    scene = new_scene()
    node = masks_to_segmentation(scene, produced.masks, produced.reference, "Kidneys",
                                 colours=produced.colors)
    assert segment_names(node) == produced.names
    colours = segment_colours(node)
    for name in produced.names:
        assert colours[name] == pytest.approx(produced.colors[name], abs=1e-6)
    back = segmentation_to_masks(scene, node, produced.reference)
    for name in produced.names:
        np.testing.assert_array_equal(back[name], produced.mask(name))

    # Slicer's own writer -> our reader: same segments, masks and colours
    path = write_segmentation_node(node, tmp_path / "kidneys.seg.nrrd")
    header = path.read_bytes()[:4000].decode("latin-1")
    assert "Segment3_Layer:=1" in header  # the overlapping cortex went to a second layer
    loaded = load_segmentation(path, produced.reference)
    assert loaded.names == produced.names
    for name in produced.names:
        np.testing.assert_array_equal(loaded.mask(name), produced.mask(name))
        assert loaded.colors[name] == pytest.approx(produced.colors[name], abs=1e-4)
    rows = compare_segmentations(produced, loaded)
    assert all(r.dice == 1.0 and r.hd95_mm == 0.0 for r in rows)
