"""The digital phantom in memory: determinism, activity conservation, kinetics truth, doses, motion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import integrate

from startnet.errors import InputError
from startnet.phantom import PhantomConfig, build_phantom, photon
from startnet.phantom.config import swedish_utc_offset
from startnet.phantom.tacs import KINETICS, Tac

# Independent constants (REFERENCE.md section 2): 177Lu
HALF_LIFE_H = 159.528
DELTA_E_J_PER_MBQ_H = 0.147923 * 1.602176634e-13 * 1e6 * 3600.0  # 0.08532 mJ per MBq.h
PHOTON_LINES_J_PER_MBQ_H = (208.366 * 0.110 + 112.950 * 0.0640 + 321.3 * 0.0022 + 249.7 * 0.0021 + 3.540) \
    * 1.602176634e-16 * 3.6e9

REQUIRED = {"body", "lung_left", "lung_right", "spine", "liver", "spleen", "kidney_left", "kidney_right",
            "bladder"}


@pytest.fixture(scope="module")
def clean():
    """Noise-free, blur-free phantom with motion (small preset)."""
    return build_phantom(PhantomConfig(preset="small", seed=11, noise=False, blur=False, motion=True))


def _arr(image):
    return sitk.GetArrayFromImage(image)


def test_structure_names_labels_and_tumours(clean):
    names = set(clean.label_names.values())
    tumours = sorted(n for n in names if n.startswith("tumour_"))
    assert REQUIRED | set(tumours) == names and len(tumours) >= 3
    labels = _arr(clean.labels)
    assert set(np.unique(labels)) == {0, *clean.label_names}
    assert clean.labels.GetPixelID() == sitk.sitkUInt8 and clean.ct_hu.GetPixelID() == sitk.sitkInt16
    diameters_cm = [2 * (3 * clean.truth["structures"][t]["volume_ml"] / (4 * math.pi)) ** (1 / 3) for t in tumours]
    assert min(diameters_cm) >= 1.4 and max(diameters_cm) <= 5.1, diameters_cm
    # tumour_1 lies inside the liver: every neighbour of its voxels is liver or tumour_1
    t1 = labels == 10
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(t1.astype(np.uint8)), [1, 1, 1]))
    shell = grown.astype(bool) & ~t1
    assert set(np.unique(labels[shell])) == {5}


def test_ct_numbers_are_realistic():
    phantom = build_phantom(PhantomConfig(preset="small", seed=2, noise=True, blur=True, motion=False))
    ct, labels = _arr(phantom.ct_hu).astype(float), _arr(phantom.labels)
    median = {name: np.median(ct[labels == value]) for value, name in phantom.label_names.items()}
    assert np.median(ct[labels == 0][:1000]) == pytest.approx(-1000, abs=60)
    assert -900 < median["lung_left"] < -700
    assert 40 < median["liver"] < 70 and 20 < median["kidney_left"] < 45
    assert 300 < median["spine"] < 1000
    noise = np.std(ct[labels == 5])
    assert 10 <= noise <= 20


def test_same_seed_same_phantom_other_seed_other_noise():
    config = dict(preset="small", noise=True, blur=True, motion=True, timepoints_h=(4.0, 96.0))
    a = build_phantom(PhantomConfig(seed=5, **config))
    b = build_phantom(PhantomConfig(seed=5, **config))
    c = build_phantom(PhantomConfig(seed=6, **config))
    for tp_a, tp_b in zip(a.timepoints, b.timepoints):
        assert np.array_equal(_arr(tp_a.spect_bqml), _arr(tp_b.spect_bqml))
        assert np.array_equal(_arr(tp_a.ct_hu), _arr(tp_b.ct_hu))
        assert tp_a.true_transform.GetParameters() == tp_b.true_transform.GetParameters()
    assert not np.array_equal(_arr(a.timepoints[1].spect_bqml), _arr(c.timepoints[1].spect_bqml))
    assert a.timepoints[1].true_transform.GetParameters() != c.timepoints[1].true_transform.GetParameters()
    assert a.truth["structures"]["kidney_left"] == b.truth["structures"]["kidney_left"]


def test_activity_conserved_per_structure_and_time_point(clean):
    voxel_ml = clean.config.spect_grid.voxel_volume_ml
    worst = 0.0
    for index, tp in enumerate(clean.timepoints):
        image = _arr(tp.spect_bqml).astype(np.float64)
        assert image.sum() * voxel_ml / 1e6 == pytest.approx(tp.total_activity_mbq, rel=1e-5)
        for name, entry in clean.truth["structures"].items():
            truth = entry["activity_mbq"][index]
            if truth < 1e-3:
                continue
            alone = _arr(clean.render_activity_bqml(index, [name])).astype(np.float64).sum() * voxel_ml / 1e6
            mixed = (image * _arr(clean.structure_fraction(index, name))).sum() * voxel_ml / 1e6
            worst = max(worst, abs(alone / truth - 1), abs(mixed / truth - 1))
    assert worst < 1e-4, f"worst per-structure activity error {worst:.2e}"


def test_blur_conserves_total_activity():
    phantom = build_phantom(PhantomConfig(preset="small", noise=False, blur=True, motion=True, timepoints_h=(24.0,)))
    tp = phantom.timepoints[0]
    total = _arr(tp.spect_bqml).astype(np.float64).sum() * phantom.config.spect_grid.voxel_volume_ml / 1e6
    assert total == pytest.approx(tp.total_activity_mbq, rel=1e-3)
    kidney = _arr(phantom.labels)  # blurred peak is lower than the true kidney cortex concentration
    assert kidney.max() > 0 and _arr(tp.spect_bqml).max() < _arr(tp.activity_true_bqml).max()


def test_counts_follow_calibration_and_decay_during_acquisition():
    config = PhantomConfig(preset="small", noise=False, blur=False, motion=False, units="counts",
                           calibration_cps_per_mbq=6.0, frame_duration_s=1800.0, timepoints_h=(24.0,))
    phantom = build_phantom(config)
    tp = phantom.timepoints[0]
    lam_s = math.log(2) / (HALF_LIFE_H * 3600)
    expected_total = 6.0 * tp.total_activity_mbq * (1 - math.exp(-lam_s * 1800.0)) / lam_s
    counts = _arr(tp.counts).astype(np.float64)
    assert tp.counts.GetPixelID() == sitk.sitkUInt16
    assert counts.sum() == pytest.approx(expected_total, rel=2e-3)  # integer rounding of faint edge voxels
    per_voxel = _arr(tp.spect_bqml).astype(np.float64) * phantom.config.spect_grid.voxel_volume_ml * 1e-6 \
        * 6.0 * (1 - math.exp(-lam_s * 1800.0)) / lam_s
    assert np.abs(counts - per_voxel).max() <= 0.5 + 1e-6


def test_poisson_noise_level_matches_counts():
    config = PhantomConfig(preset="small", noise=True, blur=True, motion=False, units="counts", timepoints_h=(24.0,))
    noisy = build_phantom(config)
    clean = build_phantom(PhantomConfig(preset="small", noise=False, blur=True, motion=False, units="counts",
                                        timepoints_h=(24.0,)))
    n, mean = _arr(noisy.timepoints[0].counts).astype(float), _arr(clean.timepoints[0].counts).astype(float)
    sel = mean > 50
    z = (n[sel] - mean[sel]) / np.sqrt(mean[sel])
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1


def test_tia_is_integral_of_tac_and_kinetics_are_physical(clean):
    lam = math.log(2) / HALF_LIFE_H
    for name, entry in {**clean.truth["structures"], **clean.truth["substructures"]}.items():
        tac = Tac(tuple(entry["tac"]["amplitudes_mbq"]), tuple(entry["tac"]["rates_per_h"]))
        assert min(tac.rates_per_h) >= lam * (1 - 1e-12)
        numeric, _ = integrate.quad(tac.activity_mbq, 0, np.inf, limit=200)
        assert entry["tia_mbq_h"] == pytest.approx(numeric, rel=1e-6), name
        for h, a in zip(clean.config.timepoints_h, entry["activity_mbq"]):
            assert tac.activity_mbq(h) == pytest.approx(a, rel=1e-12)
    hours = np.linspace(0, 400, 801)
    total = sum(Tac(tuple(e["tac"]["amplitudes_mbq"]), tuple(e["tac"]["rates_per_h"])).activity_mbq(hours)
                for e in clean.truth["structures"].values())
    assert np.all(total <= clean.config.injected_activity_mbq * np.exp(-lam * hours) + 1e-9)
    for organ in ("kidney_left", "liver", "spleen", "tumour_1"):
        assert KINETICS[organ].tac(7400.0, 100.0).activity_mbq(0.0) == pytest.approx(0.0, abs=1e-9)


def test_effective_half_lives_and_kidney_dose_are_realistic(clean):
    s = clean.truth["structures"]
    gbq = clean.config.injected_activity_mbq / 1000.0
    for kidney in ("kidney_left", "kidney_right"):
        assert 0.4 <= s[kidney]["mean_dose_gy"] / gbq <= 0.8
        a = s[kidney]["activity_mbq"]
        t_eff = (96 - 24) * math.log(2) / math.log(a[1] / a[2])
        assert 45 <= t_eff <= 65
    a = s["tumour_1"]["activity_mbq"]
    assert 80 <= (168 - 96) * math.log(2) / math.log(a[2] / a[3]) <= 120
    sub = clean.truth["substructures"]
    cortex, medulla = sub["kidney_left_cortex"], sub["kidney_left_medulla"]
    assert cortex["concentration_bqml"][1] == pytest.approx(2.0 * medulla["concentration_bqml"][1], rel=1e-9)


def test_electron_dose_is_closed_form(clean):
    assert abs(DELTA_E_J_PER_MBQ_H / 0.08532e-3 - 1) < 1e-4
    labels = _arr(clean.labels)
    voxel_ml = clean.config.ct_grid.voxel_volume_ml
    for name, entry in clean.truth["structures"].items():
        expected = entry["tia_mbq_h"] * DELTA_E_J_PER_MBQ_H / (entry["mass_g"] / 1000.0)
        assert entry["electron_energy_per_mass_gy"] == pytest.approx(expected, rel=1e-9)
        assert entry["volume_ml"] == pytest.approx((labels == entry["label"]).sum() * voxel_ml, rel=1e-12)
        if name not in ("body", "spine"):  # uniform density: voxel mean = energy / mass
            assert entry["electron_led_gy"] == pytest.approx(expected, rel=1e-9)
        assert entry["mean_dose_gy"] == pytest.approx(entry["electron_led_gy"] + entry["photon_gy"], rel=1e-12)
    liver = clean.truth["structures"]["liver"]
    assert liver["mass_g"] == pytest.approx(liver["volume_ml"] * 1.055, rel=1e-9)  # 55 HU -> 1.055 g/mL


def test_true_tia_image_sums_to_truth(clean):
    for name in ("kidney_left", "tumour_2", "liver"):
        tia = _arr(clean.render_tia_mbq_h([name])).astype(np.float64).sum()
        assert tia == pytest.approx(clean.truth["structures"][name]["tia_mbq_h"], rel=1e-5)
    assert _arr(clean.render_tia_mbq_h()).astype(np.float64).sum() == pytest.approx(
        clean.truth["total_tia_mbq_h"], rel=1e-5)


def test_photon_convolution_reproduces_the_point_kernel():
    # one source block (compartment 1) in a 24^3 block grid of 1-voxel blocks (6 mm voxels)
    comp = np.zeros((24, 24, 24), dtype=np.uint8)
    comp[12, 12, 12] = 1
    tia = np.zeros(256)
    tia[1] = 2.0  # MBq.h
    shells = {}
    for label, offset in enumerate([(0, 0, 4), (0, 5, 0), (7, 0, 0), (3, 4, 0)], start=2):
        z, y, x = 12 + offset[0], 12 + offset[1], 12 + offset[2]
        comp[z, y, x] = label
        shells[label] = 6.0 * float(np.linalg.norm(offset))
    structure_of = np.arange(256)  # each compartment its own region
    dose, _ = photon.photon_dose_per_structure(comp, tia, structure_of, 8, (6.0, 6.0, 6.0))
    for label, r_mm in shells.items():
        expected = 2.0 * photon.point_kernel_gy_per_mbq_h(np.array(r_mm))
        assert dose[label] == pytest.approx(float(expected), rel=0.03), (label, r_mm)


def test_photon_kernel_conserves_energy_and_photon_share_is_small(clean):
    r = np.logspace(-3, 4.5, 20000)  # mm
    integrand = photon.point_kernel_gy_per_mbq_h(r) * 1000.0 * 4 * np.pi * (r / 1000.0) ** 2  # J/(MBq.h) per m
    absorbed = integrate.trapezoid(integrand, r / 1000.0)
    assert absorbed == pytest.approx(PHOTON_LINES_J_PER_MBQ_H, rel=5e-3)
    for name in ("kidney_left", "liver", "tumour_1"):
        entry = clean.truth["structures"][name]
        assert 0.005 < entry["photon_gy"] / entry["mean_dose_gy"] < 0.15, name


def _ct_error(phantom, ct, transform):
    """Mean |HU| difference inside the eroded body after resampling ``ct`` onto the reference."""
    interior = _arr(sitk.BinaryErode(sitk.Cast(phantom.labels > 0, sitk.sitkUInt8), [3, 3, 3])) > 0
    moved = sitk.Resample(ct, phantom.ct_hu, transform, sitk.sitkLinear, -1000.0)
    return np.abs(_arr(moved)[interior] - _arr(phantom.ct_hu).astype(float)[interior]).mean()


def test_true_transform_maps_reference_points_to_time_point(clean):
    ref = clean.reference_index
    voxel = np.array(clean.config.spect_grid.spacing_mm)
    origin = np.array(clean.config.spect_grid.origin_lps_mm)

    def centroid(image):
        a = _arr(image).astype(np.float64)
        idx = np.indices(a.shape).reshape(3, -1)[::-1]  # x, y, z
        return origin + voxel * (idx * a.ravel()).sum(axis=1) / a.sum()

    for index, tp in enumerate(clean.timepoints):
        if index == ref:
            assert tp.true_transform.GetParameters() == (0.0,) * 6
            continue
        assert np.abs(tp.true_transform.GetParameters()[3:]).max() <= clean.config.max_shift_mm
        assert np.rad2deg(np.abs(tp.true_transform.GetParameters()[:3])).max() <= clean.config.max_rotation_deg
        for name in ("kidney_left", "tumour_1", "bladder"):
            c_ref = centroid(clean.render_activity_bqml(ref, [name]))
            c_tp = centroid(clean.render_activity_bqml(index, [name]))
            moved = np.array(tp.true_transform.TransformPoint([float(v) for v in c_ref]))
            assert np.linalg.norm(moved - c_tp) < 1e-3 * voxel[0], (name, moved, c_tp)
        # resampling the time point's CT with the transform puts it back on the reference CT (better
        # than leaving it or using the inverse; the residual is the double linear interpolation)
        right = _ct_error(clean, tp.ct_hu, tp.true_transform)
        assert right < 0.9 * _ct_error(clean, tp.ct_hu, sitk.Transform(3, sitk.sitkIdentity))
        assert right < 0.8 * _ct_error(clean, tp.ct_hu, tp.true_transform.GetInverse())


def test_swedish_time_offsets():
    from datetime import datetime, timezone

    assert swedish_utc_offset(datetime(2025, 3, 30, 0, 59, tzinfo=timezone.utc)).total_seconds() == 3600
    assert swedish_utc_offset(datetime(2025, 3, 30, 1, 0, tzinfo=timezone.utc)).total_seconds() == 7200
    assert swedish_utc_offset(datetime(2025, 10, 26, 0, 59, tzinfo=timezone.utc)).total_seconds() == 7200
    assert swedish_utc_offset(datetime(2025, 10, 26, 1, 0, tzinfo=timezone.utc)).total_seconds() == 3600


@pytest.mark.parametrize("field,value", [("preset", "huge"), ("units", "kbq"), ("timepoints_h", (24.0, 4.0)),
                                         ("injected_activity_mbq", -1.0), ("reference_index", 9)])
def test_bad_configuration_names_the_field(field, value):
    with pytest.raises(InputError, match=field):
        build_phantom(PhantomConfig(**{field: value}))
