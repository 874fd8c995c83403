"""Registration on the digital phantom (small preset, motion, CT noise, table that does not move
with the patient): recovered motion against the phantom's true transforms, activity balance."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.phantom import PhantomConfig, build_phantom
from startnet.registration import checkerboard, difference_image, register_cycle, total_activity_bq

# Points spanning the abdomen (LPS mm) where the two transforms are compared.
PROBES = [(0, 0, 0), (80, 45, -10), (-75, 45, -18), (-60, -10, 40), (100, -80, 120), (-100, 80, -120)]


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=5, max_shift_mm=6.0, max_rotation_deg=3.0))


@pytest.fixture(scope="module")
def cycle(phantom):
    return register_cycle([tp.ct_hu for tp in phantom.timepoints], [tp.spect_bqml for tp in phantom.timepoints],
                          phantom.reference_index, check_images=True)


def _rotation_difference_deg(a, b):
    ra = np.asarray(a.GetMatrix()).reshape(3, 3)
    rb = np.asarray(b.GetMatrix()).reshape(3, 3)
    return float(np.degrees(np.arccos(np.clip((np.trace(ra @ rb.T) - 1) / 2, -1, 1))))


def test_recovered_motion_within_1mm_and_half_a_degree(phantom, cycle):
    moved = 0
    for tp, result in zip(phantom.timepoints, cycle):
        if result.is_reference:
            continue
        truth = tp.true_transform
        moved += int(np.linalg.norm(truth.GetTranslation()) > 1.0)
        # translation: the displacement of the same centre under both transforms
        centre = result.rigid.center_mm
        translation_error = np.linalg.norm(np.subtract(result.transform.TransformPoint(centre),
                                                       truth.TransformPoint(centre)))
        assert translation_error < 1.0
        assert _rotation_difference_deg(result.transform, truth) < 0.5
        for p in PROBES:  # and everywhere in the abdomen
            assert np.linalg.norm(np.subtract(result.transform.TransformPoint(p), truth.TransformPoint(p))) < 1.0
        assert not result.implausible and result.rigid.metric_after < result.rigid.metric_before
    assert moved >= 2  # the test exercises real motion


def test_activity_is_conserved_on_the_reference_grid(phantom, cycle):
    reference_grid = phantom.timepoints[phantom.reference_index].spect_bqml
    for tp, result in zip(phantom.timepoints, cycle):
        assert result.spect_on_reference.GetSize() == reference_grid.GetSize()
        total_after = total_activity_bq(result.spect_on_reference)
        assert total_after == pytest.approx(total_activity_bq(tp.spect_bqml), rel=0.005)
        assert result.activity.fraction_outside_fov < 0.005
        assert result.warnings == []


def test_check_images_show_the_registered_ct_aligned(phantom, cycle):
    """Inside the patient (the couch does not move with the patient, so it is left out) the
    registered CT differs from the reference about as little as the CT resampled with the true
    transform does, and clearly less than before registration."""
    reference_ct = sitk.Cast(phantom.ct_hu, sitk.sitkFloat32)
    patient = sitk.GetArrayFromImage(phantom.labels) > 0
    for tp, result in zip(phantom.timepoints, cycle):
        if result.is_reference:
            continue
        after = np.abs(sitk.GetArrayFromImage(difference_image(reference_ct, result.ct_on_reference)))[patient]
        ideal_ct = sitk.Resample(tp.ct_hu, reference_ct, tp.true_transform, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        ideal = np.abs(sitk.GetArrayFromImage(ideal_ct - reference_ct))[patient]
        before = np.abs(sitk.GetArrayFromImage(sitk.Cast(tp.ct_hu, sitk.sitkFloat32) - reference_ct))[patient]
        assert after.mean() < 1.05 * ideal.mean()
        assert after.mean() < 0.8 * before.mean()
        board = sitk.GetArrayFromImage(checkerboard(reference_ct, result.ct_on_reference))
        assert board.shape == patient.shape
