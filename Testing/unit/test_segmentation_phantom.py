"""Seeded and automatic segmentation on the digital phantom (small preset, noise, blur and motion
on) against its ground-truth labels at SPECT resolution."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from startnet.errors import GeometryError, InputError
from startnet.phantom import PhantomConfig, build_phantom
from startnet.registration import register_rigid, resample_activity
from startnet.segmentation import (
    find_kidney_seeds,
    segment_kidney_from_seed,
    segment_organ_from_seed,
    segment_tumour_from_seed,
)


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=3))


@pytest.fixture(scope="module")
def truth(phantom):
    """Structure labels and internal compartments on the reference SPECT grid (nearest)."""
    grid = phantom.timepoints[phantom.reference_index].spect_bqml
    labels = sitk.GetArrayFromImage(sitk.Resample(phantom.labels, grid, sitk.Transform(),
                                                  sitk.sitkNearestNeighbor, 0))
    compartments = sitk.GetImageFromArray(phantom.compartments)
    compartments.CopyInformation(phantom.labels)
    comp = sitk.GetArrayFromImage(sitk.Resample(compartments, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    ids = {name: value for value, name in phantom.label_names.items()}
    return labels, comp, ids


def dice(a, b):
    return 2.0 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


def centroid_lps(phantom, name):
    ids = {n: v for v, n in phantom.label_names.items()}
    z, y, x = ndi.center_of_mass(sitk.GetArrayFromImage(phantom.labels) == ids[name])
    return phantom.labels.TransformContinuousIndexToPhysicalPoint((x, y, z))


@pytest.mark.parametrize("side", ["kidney_left", "kidney_right"])
def test_seeded_kidney_reaches_dice_085(phantom, truth, side):
    labels, _, ids = truth
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    result = segment_kidney_from_seed(phantom.ct_hu, spect, centroid_lps(phantom, side), name=side)
    true_mask = labels == ids[side]
    assert dice(result.array, true_mask) >= 0.85
    true_ml = float(true_mask.sum()) * np.prod(spect.GetSpacing()) / 1000
    assert result.volume_ml == pytest.approx(true_ml, rel=0.25)
    assert result.name == side and "region growing" in result.method
    assert not np.any(result.array & (labels == ids["spine"]))


def test_kidney_on_a_registered_later_time_point(phantom, truth):
    """Propagation: the 96 h SPECT registered onto the reference grid, same seed, Dice >= 0.85."""
    labels, _, ids = truth
    reference = phantom.timepoints[phantom.reference_index]
    later = phantom.timepoints[2]
    rigid = register_rigid(reference.ct_hu, later.ct_hu)
    spect_on_ref = resample_activity(later.spect_bqml, rigid.transform, reference.spect_bqml)
    for side in ("kidney_left", "kidney_right"):
        result = segment_kidney_from_seed(reference.ct_hu, spect_on_ref, centroid_lps(phantom, side))
        assert dice(result.array, labels == ids[side]) >= 0.85


def test_cortex_only_removes_most_of_the_medulla(phantom, truth):
    _, comp, _ = truth
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    seed = centroid_lps(phantom, "kidney_right")
    whole = segment_kidney_from_seed(phantom.ct_hu, spect, seed)
    cortex = segment_kidney_from_seed(phantom.ct_hu, spect, seed, cortex_only=True)
    cortex_true, medulla_true = comp == 11, comp == 12  # kidney_right_cortex / _medulla compartments
    assert cortex.volume_ml < whole.volume_ml
    assert float((cortex.array & medulla_true).sum()) <= 0.5 * float(medulla_true.sum())
    assert float((cortex.array & cortex_true).sum()) >= 0.75 * float(cortex_true.sum())
    assert "cortex only" in cortex.method


def test_automatic_kidney_seeds_find_both_kidneys(phantom, truth):
    labels, _, ids = truth
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    proposals = find_kidney_seeds(phantom.ct_hu, spect)
    assert [p.side for p in proposals] == ["kidney_left", "kidney_right"]
    for proposal in proposals:
        assert proposal.confidence in ("high", "medium")
        x, y, z = spect.TransformPhysicalPointToIndex(proposal.seed_lps)
        assert labels[z, y, x] == ids[proposal.side]
        grown = segment_kidney_from_seed(phantom.ct_hu, spect, proposal.seed_lps)
        assert dice(grown.array, labels == ids[proposal.side]) >= 0.85
        assert "spine" in proposal.reason


@pytest.mark.parametrize("organ, minimum", [("liver", 0.85), ("spleen", 0.8)])
def test_organ_from_seed(phantom, truth, organ, minimum):
    labels, _, ids = truth
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    result = segment_organ_from_seed(phantom.ct_hu, spect, centroid_lps(phantom, organ), organ)
    assert dice(result.array, labels == ids[organ]) >= minimum


@pytest.mark.parametrize("tumour, minimum", [("tumour_1", 0.85), ("tumour_3", 0.75)])
def test_tumour_adaptive_threshold(phantom, truth, tumour, minimum):
    labels, _, ids = truth
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    result = segment_tumour_from_seed(phantom.ct_hu, spect, centroid_lps(phantom, tumour), name=tumour)
    assert dice(result.array, labels == ids[tumour]) >= minimum
    assert "adaptive" in result.method


def test_low_contrast_small_tumour_is_warned(phantom):
    """A warm background as high as the lesion's own peak (added inside the body) must be flagged."""
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    seed = centroid_lps(phantom, "tumour_4")
    clean = segment_tumour_from_seed(phantom.ct_hu, spect, seed)
    body = sitk.Resample(phantom.labels, spect, sitk.Transform(), sitk.sitkNearestNeighbor, 0) > 0
    warm = spect + sitk.Cast(body, sitk.sitkFloat32) * float(clean.local_max_bqml)
    result = segment_tumour_from_seed(phantom.ct_hu, warm, seed)
    assert any("contrast is too low" in w for w in result.warnings)


def test_bad_seeds_and_geometry(phantom):
    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    with pytest.raises(InputError, match="outside the body"):
        segment_kidney_from_seed(phantom.ct_hu, spect, (0.0, -180.0, 0.0))  # anterior to the abdomen
    with pytest.raises(GeometryError, match="outside the SPECT field of view"):
        segment_kidney_from_seed(phantom.ct_hu, spect, (0.0, 0.0, 5000.0))
    far_ct = sitk.Image(phantom.ct_hu)
    far_ct.SetOrigin((5000.0, 5000.0, 5000.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        segment_tumour_from_seed(far_ct, spect, centroid_lps(phantom, "tumour_1"))
    with pytest.raises(InputError, match="unknown organ"):
        segment_organ_from_seed(phantom.ct_hu, spect, centroid_lps(phantom, "liver"), "pancreas")
    with pytest.raises(InputError, match="seed"):
        segment_kidney_from_seed(phantom.ct_hu, spect, (1.0, 2.0))


def test_prepared_grid_is_reused_only_for_unchanged_images(phantom):
    from startnet.segmentation.seeded import prepare_grid

    spect = phantom.timepoints[phantom.reference_index].spect_bqml
    first = prepare_grid(phantom.ct_hu, spect)
    assert prepare_grid(phantom.ct_hu, spect) is first
    changed = sitk.Image(spect)
    changed[10, 10, 10] = 123.0  # same geometry, one voxel differs
    second = prepare_grid(phantom.ct_hu, changed)
    assert second is not first and second.spect_arr[10, 10, 10] == pytest.approx(123.0)
    assert not first.spect_arr.flags.writeable
