"""Building blocks of the per-structure analysis: partial-volume correction, surface area, BED table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from startnet.cycle.analyse import bed_parameters_for, kidneys_summary, surface_area_mm2
from startnet.cycle.quantify import BACKGROUND, gtm_activities, overlapping


def _ball(shape, centre, radius):
    zz, yy, xx = np.indices(shape)
    return ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) <= radius ** 2


def test_gtm_recovers_uniform_regions_exactly_after_blur():
    shape, spacing, fwhm = (40, 40, 40), (4.0, 4.0, 4.0), 12.0
    kidney = _ball(shape, (20, 20, 12), 5).astype(np.float32)
    tumour = _ball(shape, (20, 20, 26), 3).astype(np.float32)
    body = _ball(shape, (20, 20, 20), 18).astype(np.float32)
    truth = {"kidney": 50_000.0, "tumour": 200_000.0}
    background = 2_000.0
    image = kidney * truth["kidney"] + tumour * truth["tumour"] + (body - kidney - tumour) * background
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) / 4.0
    blurred = ndimage.gaussian_filter(image, sigma, mode="constant", truncate=3.0)
    result = gtm_activities([blurred, 0.5 * blurred], {"kidney": kidney, "tumour": tumour}, spacing, fwhm, body)
    assert result.names[-1] == BACKGROUND
    voxel_ml = 0.064
    for name, mask in (("kidney", kidney), ("tumour", tumour)):
        expected_mbq = truth[name] * mask.sum() * voxel_ml * 1e-6
        assert result.activity_mbq[name][0] == pytest.approx(expected_mbq, rel=1e-4)
        assert result.activity_mbq[name][1] == pytest.approx(0.5 * expected_mbq, rel=1e-4)
        # plain VOI sums lose activity to spill-out: the correction matters
        naive = float((blurred * mask).sum()) * voxel_ml * 1e-6
        assert naive < 0.9 * expected_mbq
    assert 0.0 < result.apparent_recovery["tumour"] < result.apparent_recovery["kidney"] < 1.0


def test_enlarged_voi_recovers_a_shell_like_structure_that_plain_gtm_misses():
    # a "kidney" whose activity sits in an outer cortex shell, next to a hot "liver"
    shape, spacing, fwhm = (48, 48, 48), (4.0, 4.0, 4.0), 12.0
    kidney = _ball(shape, (24, 24, 14), 6)
    medulla = _ball(shape, (24, 24, 14), 3.5)
    liver = _ball(shape, (24, 24, 33), 8)
    body = _ball(shape, (24, 24, 24), 22).astype(np.float32)
    image = np.where(kidney & ~medulla, 100_000.0, 0.0) + np.where(medulla, 25_000.0, 0.0) + liver * 40_000.0
    image = image + (body - kidney - liver) * 1_000.0
    truth_mbq = float(image[kidney].sum()) * 0.064e-6
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) / 4.0
    blurred = ndimage.gaussian_filter(image.astype(np.float32), sigma, mode="constant", truncate=3.0)
    fractions = {"kidney": kidney.astype(np.float32), "liver": liver.astype(np.float32)}
    plain = gtm_activities([blurred], fractions, spacing, fwhm, body, enlarged_voi_fwhm=0.0)
    enlarged = gtm_activities([blurred], fractions, spacing, fwhm, body)
    plain_error = plain.activity_mbq["kidney"][0] / truth_mbq - 1.0
    enlarged_error = enlarged.activity_mbq["kidney"][0] / truth_mbq - 1.0
    assert plain_error < -0.03
    assert abs(enlarged_error) < 0.01
    assert enlarged.method["kidney"] == "enlarged VOI minus spill-in" and not enlarged.warnings

    # the liver left unsegmented: its spill-in cannot be subtracted, the enlarged VOI is refused
    unsegmented = gtm_activities([blurred], {"kidney": fractions["kidney"]}, spacing, fwhm, body)
    assert unsegmented.method["kidney"] == "GTM"
    assert any("not explained by the segmented structures" in w for w in unsegmented.warnings)


def test_overlap_detection():
    a = np.zeros((4, 4, 4), np.float32)
    b = np.zeros_like(a)
    a[:2] = 1.0
    b[2:] = 1.0
    assert not overlapping({"a": a, "b": b})
    b[1] = 0.5
    assert overlapping({"a": a, "b": b})


def test_surface_area_of_a_ball_is_close_to_4_pi_r2():
    radius_vox, spacing = 20, (1.5, 1.5, 1.5)
    mask = _ball((50, 50, 50), (25, 25, 25), radius_vox)
    expected = 4 * math.pi * (radius_vox * 1.5) ** 2
    assert surface_area_mm2(mask, spacing) == pytest.approx(expected, rel=0.05)


def test_bed_parameters_by_structure_name():
    assert bed_parameters_for("kidney_left") == (2.6, 2.8)
    assert bed_parameters_for("tumour_3") == (10.0, 1.5)
    assert bed_parameters_for("liver") == (3.0, 1.5)


def test_kidney_summary_is_mass_weighted():
    structures = {"kidney_left": {"mass_g": 100.0, "mean_gy": 4.0, "bed_gy": 5.0, "uncertainty_gy": 0.4},
                  "kidney_right": {"mass_g": 300.0, "mean_gy": 2.0, "bed_gy": 2.5, "uncertainty_gy": 0.2},
                  "liver": {"mass_g": 1500.0, "mean_gy": 1.0, "bed_gy": 1.1, "uncertainty_gy": 0.1}}
    summary = kidneys_summary(structures)
    assert summary["kidneys_mean_gy"] == pytest.approx(2.5)
    assert summary["kidneys_bed_gy"] == pytest.approx(3.125)
    assert summary["kidneys_uncertainty_pct"] == pytest.approx(100 * 0.25 / 2.5)
    assert kidneys_summary({"liver": structures["liver"]})["kidneys_mean_gy"] is None


def test_voxels_claimed_twice_go_to_one_structure():
    from collections import OrderedDict

    from startnet.cycle.structures import resolve_contested_voxels

    body = np.ones((4, 4, 4), bool)
    kidney = np.zeros_like(body)
    kidney[1:3, 1:3, 1:3] = True
    fractions = {"body": np.where(kidney, 0.5, 1.0).astype(np.float32), "kidney": np.where(kidney, 0.5, 0.0)}
    fractions["kidney"] = fractions["kidney"].astype(np.float32)
    fractions["body"][1, 1, 1], fractions["kidney"][1, 1, 1] = 0.25, 0.75
    resolved = resolve_contested_voxels(OrderedDict(body=body, kidney=kidney), fractions)
    assert not np.any(resolved["body"] & resolved["kidney"])
    assert resolved["kidney"].sum() == kidney.sum()  # ties and the larger share go to the smaller structure
    # a genuine sub-region (a cortex inside its kidney) is left overlapping
    cortex = kidney.copy()
    cortex[1, 1, 1] = False
    kept = resolve_contested_voxels(OrderedDict(kidney=kidney, cortex=cortex), {})
    assert np.array_equal(kept["cortex"], cortex) and np.array_equal(kept["kidney"], kidney)


def test_single_time_point_voxel_rates_use_the_population_t_eff():
    # issue 10 finding 12: the voxel BED rate of a Haenscheid structure was ln2 / t
    from startnet.cycle.analyse import _single_timepoint_voxel_tia
    from startnet.kinetics import fit_tac

    activity = np.ones((2, 2, 2), np.float32)
    labels = np.zeros((2, 2, 2), np.int32)
    labels[0] = 1
    fit = fit_tac([96.0], [float(activity[labels == 1].sum())], structure="kidney_left", models=("haenscheid",))
    _, k_map = _single_timepoint_voxel_tia(activity, np.ones((2, 2, 2), bool), labels, {1: fit}, 96.0)
    np.testing.assert_allclose(k_map[labels == 1], math.log(2.0) / 50.0, rtol=1e-6)
