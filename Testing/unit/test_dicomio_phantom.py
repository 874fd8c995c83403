"""Round trip: phantom (small preset, no noise, no blur) -> DICOM -> load_cycle, in both units modes.

Truth: each structure's activity at each time point from the phantom's analytic curves; the
share of each SPECT voxel's activity belonging to a structure comes from the phantom in that
time point's (moved) pose (the phantom's per-structure noise-free rendering), so the comparison is exact up to
the DICOM storage quantisation (uint16).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from startnet.dicomio import Overrides, load_cycle
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom


@pytest.fixture(scope="module", params=["bqml", "counts"])
def roundtrip(request, tmp_path_factory):
    config = PhantomConfig(preset="small", seed=5, noise=False, blur=False, units=request.param)
    phantom = build_phantom(config)
    out = tmp_path_factory.mktemp(f"phantom_{request.param}")
    write_phantom_dicom(phantom, out)
    overrides = Overrides(calibration_cps_per_mbq=config.calibration_cps_per_mbq) if request.param == "counts" else None
    return phantom, load_cycle(str(out), overrides)


def test_timestamps_to_the_second(roundtrip):
    phantom, cycle = roundtrip
    assert abs((cycle.injection_datetime - phantom.injection_datetime).total_seconds()) < 1.0
    assert cycle.injected_activity_mbq == pytest.approx(phantom.config.injected_activity_mbq, rel=1e-9)
    assert len(cycle.timepoints) == len(phantom.timepoints)
    for tp, truth in zip(cycle.timepoints, phantom.timepoints):
        assert abs((tp.acquisition_datetime - truth.acquisition_datetime).total_seconds()) < 1.0
        assert tp.hours_post_injection == pytest.approx(truth.hours_post_injection, abs=1.0 / 3600)
    assert cycle.patient_id == phantom.config.patient_id


def test_units_mode_recorded(roundtrip):
    phantom, cycle = roundtrip
    for tp in cycle.timepoints:
        assert tp.conversion["mode"] == phantom.config.units
        if phantom.config.units == "counts":
            assert tp.conversion["calibration_cps_per_mbq"] == phantom.config.calibration_cps_per_mbq
            assert tp.conversion["frame_duration_s"] == pytest.approx(phantom.config.frame_duration_s, rel=1e-3)


def test_geometry_and_ct_exact(roundtrip):
    phantom, cycle = roundtrip
    for tp, truth in zip(cycle.timepoints, phantom.timepoints):
        for got, want in ((tp.spect_bqml, truth.spect_bqml), (tp.ct_hu, truth.ct_hu)):
            assert got.GetSize() == want.GetSize()
            assert got.GetOrigin() == pytest.approx(want.GetOrigin(), abs=1e-3)
            assert got.GetSpacing() == pytest.approx(want.GetSpacing(), rel=1e-6)
            assert got.GetDirection() == pytest.approx(want.GetDirection(), abs=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(tp.ct_hu), sitk.GetArrayViewFromImage(truth.ct_hu))


KEY_STRUCTURES = ("liver", "spleen", "kidney_left", "kidney_right")


def _fraction(phantom, i: int, name: str) -> np.ndarray:
    """Share of each SPECT voxel's true activity that belongs to ``name`` (time point ``i``'s pose)."""
    part = sitk.GetArrayFromImage(phantom.render_activity_bqml(i, [name])).astype(np.float64)
    total = sitk.GetArrayFromImage(phantom.timepoints[i].activity_true_bqml).astype(np.float64)
    return np.divide(part, total, out=np.zeros_like(part), where=total > 0)


def _storage_step_bqml(phantom, i, spect_file) -> float:
    """Bq/mL of one stored integer step: RescaleSlope (bqml) or one count (counts mode)."""
    if phantom.config.units == "counts":
        voxel_ml = phantom.config.spect_grid.voxel_volume_ml
        return 1.0 / (voxel_ml * 1e-6 * phantom.timepoints[i].counts_per_mbq)
    return float(pydicom.dcmread(spect_file, stop_before_pixels=True).RescaleSlope)


def test_voxel_values_match_what_was_written(roundtrip):
    """The conversion itself: every voxel within half a storage step of the phantom's image."""
    phantom, cycle = roundtrip
    for i, tp in enumerate(cycle.timepoints):
        step = _storage_step_bqml(phantom, i, tp.spect_file)
        loaded = sitk.GetArrayFromImage(tp.spect_bqml).astype(np.float64)
        if phantom.config.units == "counts":
            written = sitk.GetArrayFromImage(phantom.timepoints[i].counts).astype(np.float64) * step
            np.testing.assert_allclose(loaded, written, rtol=1e-5, atol=1e-3)
        else:
            written = sitk.GetArrayFromImage(phantom.timepoints[i].spect_bqml).astype(np.float64)
            float32_ulp = 2e-7 * np.abs(written).max()
            assert np.abs(loaded - written).max() <= 0.5 * step + float32_ulp


def test_structure_activity_within_one_percent(roundtrip):
    """Each structure's activity vs the analytic truth: < 1 %, unless the integer storage of the DICOM
    (half a step per voxel touched) allows more for a nearly empty structure, which is then checked
    against that bound."""
    phantom, cycle = roundtrip
    structures = phantom.truth["structures"]
    worst = 0.0
    checked_at_one_percent = 0
    for i, tp in enumerate(cycle.timepoints):
        loaded = sitk.GetArrayFromImage(tp.spect_bqml).astype(np.float64)
        voxel_ml = float(np.prod(tp.spect_bqml.GetSpacing())) / 1000.0
        step = _storage_step_bqml(phantom, i, tp.spect_file)
        for name in structures:  # every structure of the phantom, body remainder included
            fraction = _fraction(phantom, i, name)
            activity_mbq = float((loaded * fraction).sum()) * voxel_ml / 1e6
            truth_mbq = structures[name]["activity_mbq"][i]
            storage_mbq = 0.5 * step * float(fraction.sum()) * voxel_ml / 1e6
            where = f"{name} at {tp.hours_post_injection} h: {activity_mbq} vs {truth_mbq} MBq"
            error = abs(activity_mbq / truth_mbq - 1.0)
            if error >= 0.01:  # allowed only where the integer storage step explains it
                assert name not in KEY_STRUCTURES and not name.startswith("tumour"), where
                assert abs(activity_mbq - truth_mbq) <= storage_mbq, where
                continue
            worst = max(worst, error)
            checked_at_one_percent += 1
        total_truth = phantom.timepoints[i].total_activity_mbq
        assert tp.total_activity_mbq == pytest.approx(total_truth, rel=0.01)
    print(f"worst relative structure activity error ({phantom.config.units}): {100 * worst:.4f} %, "
          f"{checked_at_one_percent} structure-time points at 1 %")


def test_clean_pacs_export_gives_no_warnings(roundtrip):
    _, cycle = roundtrip
    assert cycle.warnings == []


def test_phantom_cycle_across_the_october_dst_change(tmp_path):
    """Injection on Saturday 25 Oct 2025 10:00 CEST; clocks go back on Sunday 26 Oct: the writer's
    local times and offsets (+0200 then +0100) must give the true elapsed hours to the second."""
    injection = dt.datetime(2025, 10, 25, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    config = PhantomConfig(preset="small", seed=2, noise=False, blur=False, motion=False,
                           injection_datetime=injection, timepoints_h=(4.0, 24.0, 96.0))
    phantom = build_phantom(config)
    write_phantom_dicom(phantom, tmp_path)
    cycle = load_cycle(str(tmp_path))
    assert cycle.injection_datetime == injection
    for tp, hours in zip(cycle.timepoints, (4.0, 24.0, 96.0)):
        assert tp.hours_post_injection == pytest.approx(hours, abs=1.0 / 3600)
        assert tp.acquisition_datetime == injection + dt.timedelta(hours=hours)
    assert cycle.warnings == []
