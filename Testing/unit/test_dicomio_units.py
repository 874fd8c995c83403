"""dicomio: units, calibration, decay/dead-time corrections and geometry against closed forms."""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import dicom_factory as f
import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from scipy.integrate import quad
from scipy.optimize import brentq

from startnet.dicomio import Overrides, load_cycle

INJ = dt.datetime(2026, 5, 4, 10, 0, 0)  # CEST (+02:00)
LAMBDA_S = math.log(2) / f.LU177_HALF_LIFE_S
SPACING = (8.0, 8.0, 8.0)
VOXEL_ML = 8.0 * 8.0 * 8.0 / 1000.0


def stored_volume(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = np.zeros((10, 16, 16), np.uint16)
    vol[3:7, 4:12, 4:12] = rng.integers(500, 3000, size=(4, 8, 8))
    return vol


def spect_array(tp) -> np.ndarray:
    return sitk.GetArrayFromImage(tp.spect_bqml).astype(np.float64)


def test_siemens_like_bqml_multiframe_values_and_geometry(tmp_path):
    vol = stored_volume()
    f.spect_and_ct(str(tmp_path / "tp1"), vol, acquisition=INJ + dt.timedelta(hours=24), injection=INJ,
                   rescale_slope=2.5)
    cycle = load_cycle(str(tmp_path))
    tp = cycle.timepoints[0]
    assert tp.conversion["mode"] == "bqml"
    assert tp.conversion["decay_factor"] == 1.0
    np.testing.assert_allclose(spect_array(tp), vol * 2.5, rtol=1e-7)
    img = tp.spect_bqml
    assert img.GetPixelID() == sitk.sitkFloat32
    assert img.GetOrigin() == pytest.approx((-60.0, -60.0, -40.0))
    assert img.GetSpacing() == pytest.approx(SPACING)
    assert img.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert tp.total_activity_mbq == pytest.approx(vol.sum() * 2.5 * VOXEL_ML / 1e6, rel=1e-6)
    assert cycle.injected_activity_mbq == pytest.approx(7400.0)
    assert tp.hours_post_injection == pytest.approx(24.0, abs=1e-9)
    ct = tp.ct_hu
    assert ct.GetPixelID() == sitk.sitkInt16
    ct_arr = sitk.GetArrayFromImage(ct)
    assert set(np.unique(ct_arr)) == {-1000, 40}
    assert ct.GetOrigin() == pytest.approx((-60.0, -60.0, -42.0))
    assert ct.GetSpacing() == pytest.approx((4.0, 4.0, 4.0))
    json.dumps(cycle.to_dict())


def test_oblique_orientation_and_negative_slice_spacing_geometry(tmp_path):
    vol = stored_volume()
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])  # coronal slices
    normal = np.cross(row, col)
    origin = np.array([-60.0, 30.0, 64.0])
    f.write_nm_multiframe(str(tmp_path / "spect.dcm"), vol, origin, (8.0, 6.0, -5.0), acquisition=INJ
                          + dt.timedelta(hours=4), injection=INJ, orientation=tuple(row) + tuple(col))
    cycle = load_cycle(str(tmp_path))
    img = cycle.timepoints[0].spect_bqml
    assert img.GetSpacing() == pytest.approx((8.0, 6.0, 5.0))
    for index in [(0, 0, 0), (15, 0, 0), (3, 7, 9), (15, 15, 9)]:
        i, j, k = index
        expected = origin + i * 8.0 * row + j * 6.0 * col + k * (-5.0) * normal
        assert img.TransformIndexToPhysicalPoint(index) == pytest.approx(tuple(expected))
        assert img[index] == pytest.approx(float(vol[k, j, i]))
    assert any("no CT found" in w for w in cycle.warnings)
    assert cycle.timepoints[0].ct_hu is None


def test_real_world_value_mapping_bqml(tmp_path):
    vol = stored_volume()
    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=96), injection=INJ, units="CNTS",
                   rescale_slope=None, rwvm_slope=12.75)
    tp = load_cycle(str(tmp_path)).timepoints[0]
    assert tp.conversion["mode"] == "bqml"
    assert "Real World Value Mapping" in tp.conversion["source"]
    np.testing.assert_allclose(spect_array(tp), vol * 12.75, rtol=1e-7)


def _expected_counts_bqml(counts, cf_cps_per_mbq, duration_s):
    # N = CF * integral_0^T A0 exp(-lambda t) dt  (numerical integral: independent of the closed form)
    integral_s, _ = quad(lambda t: math.exp(-LAMBDA_S * t), 0.0, duration_s)
    return counts / (cf_cps_per_mbq * integral_s) * 1e6 / VOXEL_ML


def test_ge_like_counts_with_calibration_factor(tmp_path):
    vol = stored_volume()
    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=24), injection=INJ, units="CNTS",
                   rescale_slope=None, decay_correction=None, frame_duration_ms=1_800_000)
    with pytest.raises(Exception, match="calibration"):
        load_cycle(str(tmp_path))
    tp = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0)).timepoints[0]
    conv = tp.conversion
    assert conv["mode"] == "counts"
    assert conv["calibration_cps_per_mbq"] == 9.0
    assert conv["frame_duration_s"] == pytest.approx(1800.0)
    np.testing.assert_allclose(spect_array(tp), _expected_counts_bqml(vol, 9.0, 1800.0), rtol=2e-6)


def test_counts_duration_from_rotation_information_sequence(tmp_path):
    vol = stored_volume()

    def rotation(ds):
        item = Dataset()
        item.ActualFrameDuration = 40000  # 40 s per view
        item.NumberOfFramesInRotation = 30
        ds.RotationInformationSequence = DicomSequence([item])
        ds.ActualFrameDuration = 40000

    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=4), injection=INJ, units="CNTS",
                   rescale_slope=None, mutate=rotation)
    cycle = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=5.5))
    tp = cycle.timepoints[0]
    assert tp.conversion["frame_duration_s"] == pytest.approx(1200.0)
    assert any("ActualFrameDuration (0018,1242) 40 s differs from the rotation time 1200 s" in w
               for w in cycle.warnings)
    np.testing.assert_allclose(spect_array(tp), _expected_counts_bqml(vol, 5.5, 1200.0), rtol=2e-6)


def test_paralysable_dead_time_correction(tmp_path):
    # The rate is the head's total-spectrum rate (here given with --count-rate-kcps), not the
    # reconstructed image's sum: see test_dicomio_deadtime.py for the projections and the error paths.
    vol = stored_volume() * 20
    tau = 4.6e-6
    observed = 35_000.0  # cps per head
    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=4), injection=INJ, units="CNTS",
                   rescale_slope=None, frame_duration_ms=600_000)
    plain = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0)).timepoints[0]
    corrected = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=tau,
                                                    count_rate_kcps=(observed / 1e3,))).timepoints[0]
    true_rate = brentq(lambda r: r * math.exp(-r * tau) - observed, observed, 1.0 / tau)  # below the maximum
    factor = corrected.conversion["dead_time_factor"]
    assert factor == pytest.approx(true_rate / observed, rel=1e-9)
    assert factor > 1.05  # a material correction at 35 kcps per head
    assert corrected.total_activity_mbq == pytest.approx(plain.total_activity_mbq * factor, rel=1e-6)
    assert corrected.conversion["dead_time_s"] == tau
    assert corrected.conversion["observed_count_rate_cps"] == pytest.approx(observed)


@pytest.mark.parametrize("header", ["ADMIN", "NONE"])
def test_bqml_decay_correction_converted_to_acquisition_start(tmp_path, header):
    vol = stored_volume()
    hours = 96.0
    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=hours), injection=INJ,
                   decay_correction=header, frame_duration_ms=1_200_000)
    tp = load_cycle(str(tmp_path)).timepoints[0]
    if header == "ADMIN":
        expected_factor = 0.5 ** (hours / 159.528)
    else:  # values are the mean over the acquisition: start = mean / (mean of exp(-lambda t) over T)
        mean_decay = quad(lambda t: math.exp(-LAMBDA_S * t), 0, 1200.0)[0] / 1200.0
        expected_factor = 1.0 / mean_decay
    assert tp.conversion["decay_correction_header"] == header
    assert tp.conversion["decay_factor"] == pytest.approx(expected_factor, rel=1e-6)
    np.testing.assert_allclose(spect_array(tp), vol * expected_factor, rtol=2e-6)


def test_single_frame_per_slice_spect_with_per_slice_slopes(tmp_path):
    vol = stored_volume()
    slopes = [1.0 + 0.25 * k for k in range(vol.shape[0])]
    study, for_uid = "1.2.3.4.5", "1.2.3.4.6"
    f.write_nm_single_frames(str(tmp_path / "nm"), vol, (-60.0, -60.0, -40.0), SPACING,
                             acquisition=INJ + dt.timedelta(hours=24), injection=INJ, slopes=slopes,
                             study_uid=study, for_uid=for_uid)
    f.write_ct_series(str(tmp_path / "ct"), np.zeros((24, 32, 32)), (-60.0, -60.0, -42.0), (4.0, 4.0, 4.0),
                      acquisition=INJ + dt.timedelta(hours=24), study_uid=study, for_uid=for_uid)
    tp = load_cycle(str(tmp_path)).timepoints[0]
    np.testing.assert_allclose(spect_array(tp), vol * np.array(slopes)[:, None, None], rtol=1e-7)
    assert tp.spect_bqml.GetOrigin() == pytest.approx((-60.0, -60.0, -40.0))
    assert tp.spect_bqml.GetSpacing() == pytest.approx(SPACING)
    assert tp.source_files == vol.shape[0] + 24


def test_quantitative_attenuation_corrected_reconstruction_preferred(tmp_path):
    vol = stored_volume()
    study, for_uid = "1.2.3.9", "1.2.3.10"
    acq = INJ + dt.timedelta(hours=24)
    f.write_nm_multiframe(str(tmp_path / "nac"), vol, (-60, -60, -40), SPACING, acquisition=acq, injection=INJ,
                          units="CNTS", rescale_slope=None, study_uid=study, for_uid=for_uid,
                          mutate=lambda ds: setattr(ds, "CorrectedImage", ["DECY"]))
    f.write_nm_multiframe(str(tmp_path / "gml"), vol, (-60, -60, -40), SPACING, acquisition=acq, injection=INJ,
                          units="GML", study_uid=study, for_uid=for_uid)  # unusable units: not chosen
    ac_path = f.write_nm_multiframe(str(tmp_path / "ac"), vol, (-60, -60, -40), SPACING, acquisition=acq,
                                    injection=INJ, rescale_slope=3.0, study_uid=study, for_uid=for_uid)
    cycle = load_cycle(str(tmp_path))
    assert len(cycle.timepoints) == 1
    assert cycle.timepoints[0].spect_file == ac_path
    assert sum("alternative reconstruction" in line for line in cycle.log) == 2


def test_ct_pairing_by_frame_of_reference_and_float_rescale(tmp_path):
    vol = stored_volume()
    paths = []
    for i, hours in enumerate([4, 24]):
        paths.append(f.spect_and_ct(str(tmp_path / f"tp{i}"), vol, acquisition=INJ + dt.timedelta(hours=hours),
                                    injection=INJ))
    # an extra CT with a non-integral rescale in the first study but another frame of reference
    f.write_ct_series(str(tmp_path / "other"), np.full((4, 8, 8), 10.0), (0, 0, 0), (2.0, 2.0, 2.0),
                      acquisition=INJ + dt.timedelta(hours=4), study_uid=paths[0]["study_uid"],
                      mutate=lambda k, ds: setattr(ds, "RescaleSlope", "0.5"))
    cycle = load_cycle(str(tmp_path))
    for tp, written in zip(cycle.timepoints, paths):
        assert tp.frame_of_reference_uid == written["for_uid"]
        assert tp.ct_hu.GetSize() == (32, 32, 24)
        assert tp.ct_series_uid != tp.spect_series_uid
    assert [round(tp.hours_post_injection, 9) for tp in cycle.timepoints] == [4.0, 24.0]


def test_overrides_recorded_and_used(tmp_path):
    vol = stored_volume()
    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=24), injection=None,
                   activity_bq=None)
    injection = dt.datetime(2026, 5, 4, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    cycle = load_cycle(str(tmp_path), Overrides(injection_datetime=injection, injected_activity_mbq=7300.0))
    assert cycle.timepoints[0].hours_post_injection == pytest.approx(24.5, abs=1e-9)
    assert cycle.injected_activity_mbq == 7300.0
    assert cycle.overrides_applied["injected_activity_mbq"] == 7300.0
    assert cycle.overrides_applied["injection_datetime"] == injection.isoformat()
    assert cycle.injection_source == "override"
    assert os.path.isdir(cycle.input_dir)


def test_total_dose_written_in_mbq_or_bq(tmp_path):
    vol = stored_volume()
    f.spect_and_ct(str(tmp_path / "mbq"), vol, acquisition=INJ + dt.timedelta(hours=4), injection=INJ,
                   activity_bq=7412.5)  # NM Isotope module unit (MBq)
    f.spect_and_ct(str(tmp_path / "bq"), vol, acquisition=INJ + dt.timedelta(hours=4), injection=INJ,
                   activity_bq=7.4125e9)  # PET-style unit (Bq)
    mbq = load_cycle(str(tmp_path / "mbq"))
    bq = load_cycle(str(tmp_path / "bq"))
    assert mbq.injected_activity_mbq == pytest.approx(7412.5)
    assert bq.injected_activity_mbq == pytest.approx(7412.5)
    assert "read as MBq" in mbq.activity_source and "read as Bq" in bq.activity_source


def test_each_file_parsed_once_and_pixels_read_once(tmp_path, monkeypatch):
    import collections

    import startnet.dicomio.discovery as discovery_module
    import startnet.dicomio.loader as loader_module

    vol = stored_volume()
    for i, hours in enumerate([4, 24]):
        f.spect_and_ct(str(tmp_path / f"tp{i}"), vol, acquisition=INJ + dt.timedelta(hours=hours), injection=INJ)
    parses, pixel_reads = collections.Counter(), collections.Counter()
    real_dcmread, real_read_frames = discovery_module.pydicom.dcmread, loader_module.read_frames

    def counting_dcmread(path, *args, **kwargs):
        parses[str(path)] += 1
        return real_dcmread(path, *args, **kwargs)

    def counting_read_frames(ds, path, *args):
        pixel_reads[path] += 1
        return real_read_frames(ds, path, *args)

    monkeypatch.setattr(discovery_module.pydicom, "dcmread", counting_dcmread)
    monkeypatch.setattr(loader_module, "read_frames", counting_read_frames)
    cycle = load_cycle(str(tmp_path))
    n_files = sum(len(files) for _, _, files in os.walk(tmp_path))
    assert len(cycle.timepoints) == 2
    assert len(parses) == n_files and max(parses.values()) == 1
    assert len(pixel_reads) == n_files and max(pixel_reads.values()) == 1


def test_second_bed_position_is_not_silently_dropped(tmp_path):
    vol = stored_volume()
    acq = INJ + dt.timedelta(hours=24)
    study, for_uid = "1.2.3.11", "1.2.3.12"
    upper = f.write_nm_multiframe(str(tmp_path / "bed1"), vol, (-60, -60, -40), SPACING, acquisition=acq,
                                  injection=INJ, study_uid=study, for_uid=for_uid)
    lower = f.write_nm_multiframe(str(tmp_path / "bed2"), vol, (-60, -60, -400), SPACING,
                                  acquisition=acq + dt.timedelta(minutes=22), injection=INJ, study_uid=study,
                                  for_uid=for_uid)
    cycle = load_cycle(str(tmp_path))
    assert len(cycle.timepoints) == 1
    message = next(w for w in cycle.warnings if "another bed position" in w)
    assert upper in message and lower in message and "0 % overlap" in message


def test_acquisition_duration_override_for_counts(tmp_path):
    vol = stored_volume()
    f.spect_and_ct(str(tmp_path), vol, acquisition=INJ + dt.timedelta(hours=24), injection=INJ, units="CNTS",
                   rescale_slope=None, frame_duration_ms=None)
    with pytest.raises(Exception, match="ActualFrameDuration \\(0018,1242\\) is missing"):
        load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0))
    cycle = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, acquisition_duration_s=900.0))
    tp = cycle.timepoints[0]
    assert tp.conversion["frame_duration_source"] == "override"
    assert cycle.overrides_applied["acquisition_duration_s"] == 900.0
    np.testing.assert_allclose(spect_array(tp), _expected_counts_bqml(vol, 9.0, 900.0), rtol=2e-6)


def test_enhanced_multiframe_ct_equals_slice_series(tmp_path):
    vol = stored_volume()
    hu = np.random.default_rng(4).integers(-1000, 1500, size=(24, 32, 32)).astype(np.float64)
    study, for_uid = "1.2.3.21", "1.2.3.22"
    acq = INJ + dt.timedelta(hours=24)
    for name, writer in (("slices", "series"), ("enhanced", "enhanced")):
        root = tmp_path / name
        f.write_nm_multiframe(str(root / "nm"), vol, (-60, -60, -40), SPACING, acquisition=acq, injection=INJ,
                              study_uid=study, for_uid=for_uid)
        if writer == "series":
            f.write_ct_series(str(root / "ct"), hu, (-60, -60, -42), (4, 4, 4), acquisition=acq, study_uid=study,
                              for_uid=for_uid)
        else:
            f.write_enhanced_ct(str(root / "ct.dcm"), hu, (-60, -60, -42), (4, 4, 4), acquisition=acq,
                                study_uid=study, for_uid=for_uid)
    slices = load_cycle(str(tmp_path / "slices")).timepoints[0].ct_hu
    enhanced = load_cycle(str(tmp_path / "enhanced")).timepoints[0].ct_hu
    np.testing.assert_array_equal(sitk.GetArrayFromImage(enhanced), hu.astype(np.int16))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(enhanced), sitk.GetArrayFromImage(slices))
    assert enhanced.GetOrigin() == pytest.approx(slices.GetOrigin())
    assert enhanced.GetSpacing() == pytest.approx(slices.GetSpacing())
    assert enhanced.GetDirection() == pytest.approx(slices.GetDirection())


def test_frames_reordered_by_slice_vector(tmp_path):
    vol = stored_volume()
    n = vol.shape[0]
    perm = np.random.default_rng(2).permutation(n)  # frame i holds slice perm[i] + 1

    def shuffle(ds):
        ds.SliceVector = [int(p) + 1 for p in perm]
        ds.PixelData = np.ascontiguousarray(vol[perm]).tobytes()

    f.spect_and_ct(str(tmp_path / "ok"), vol, acquisition=INJ + dt.timedelta(hours=4), injection=INJ, mutate=shuffle)
    np.testing.assert_array_equal(spect_array(load_cycle(str(tmp_path / "ok")).timepoints[0]), vol)
    f.spect_and_ct(str(tmp_path / "bad"), vol, acquisition=INJ + dt.timedelta(hours=4), injection=INJ,
                   mutate=lambda ds: setattr(ds, "SliceVector", [1] * n))
    with pytest.raises(Exception, match="SliceVector \\(0054,0080\\)"):
        load_cycle(str(tmp_path / "bad"))
