"""The phantom's dead-time simulation: count losses of a paralysable camera and the projections it recorded."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from startnet.dicomio import Overrides, load_cycle
from startnet.errors import InputError
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
from startnet.phantom.deadtime import head_counting, mean_activity_mbq

TAU_S = 8e-6


def test_losses_follow_the_paralysable_model():
    config = PhantomConfig(dead_time_s=TAU_S, head_total_cps_per_mbq=(10.0, 8.0))
    counting = head_counting(config, 3000.0, "test")
    activity = mean_activity_mbq(3000.0, config.acquisition_time_s)
    assert 0.999 * 3000.0 < activity < 3000.0
    for rate, observed in zip(counting.true_cps, counting.observed_cps):
        assert observed == pytest.approx(rate * math.exp(-rate * TAU_S), rel=1e-12)
    assert counting.kept_fraction == pytest.approx(sum(counting.observed_cps) / (18.0 * activity))
    assert head_counting(PhantomConfig(), 3000.0, "test").kept_fraction == 1.0  # default: no dead time
    with pytest.raises(InputError, match="dead time"):
        head_counting(PhantomConfig(dead_time_s=1e-3), 3000.0, "time point 4 h")
    with pytest.raises(InputError, match="head_total_cps_per_mbq"):
        PhantomConfig(head_total_cps_per_mbq=(7.0, 0.0)).validate()


def test_reconstruction_loses_counts_and_projections_hold_the_observed_rates(tmp_path):
    common = dict(timepoints_h=(4.0,), units="counts", noise=False, motion=False)
    ideal = build_phantom(PhantomConfig(**common))
    lossy = build_phantom(PhantomConfig(**common, dead_time_s=TAU_S))
    tp, ideal_tp = lossy.timepoints[0], ideal.timepoints[0]
    kept = tp.head_counting.kept_fraction
    assert 0.5 < kept < 0.95
    lossy_sum = float(sitk.GetArrayViewFromImage(tp.spect_bqml).sum())
    ideal_sum = float(sitk.GetArrayViewFromImage(ideal_tp.spect_bqml).sum())
    assert lossy_sum / ideal_sum == pytest.approx(kept, rel=1e-5)
    assert lossy.truth["timepoints"][0]["dead_time_kept_fraction"] == pytest.approx(kept)

    files = write_phantom_dicom(lossy, tmp_path / "lossy")
    projections = sorted(files.dicom_dir.rglob("NM_004/*.dcm"))
    assert len(projections) == 1
    ds = pydicom.dcmread(projections[0])
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), -1).sum(axis=1).astype(float)
    seconds = lossy.config.acquisition_time_s
    per_head = [frames[np.asarray(ds.DetectorVector) == h].sum() / seconds for h in (1, 2)]
    assert per_head == pytest.approx(tp.head_counting.observed_cps, rel=1e-6)
    assert int(ds.CountsAccumulated) == int(frames.sum())

    cycle = load_cycle(str(files.dicom_dir), Overrides(calibration_cps_per_mbq=5.5, dead_time_s=TAU_S))
    assert cycle.timepoints[0].conversion["dead_time_factor"] == pytest.approx(1.0 / kept, rel=1e-6)
    assert not list((write_phantom_dicom(ideal, tmp_path / "ideal").dicom_dir).rglob("NM_004"))
