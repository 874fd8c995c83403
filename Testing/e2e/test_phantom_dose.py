"""Kidney and tumour mean doses of the noise-free digital phantom vs its ground truth.

Phantom: ``build_phantom(PhantomConfig(preset="small", noise=False, blur=False, motion=False))``
(SPECT 7.0 mm, CT 3.5 mm, time points 4, 24, 96, 168 h). Dose engines: voxel LED (+ photon
kernel), VSV convolution, VSV with CT density correction, on the SPECT grid.

Structure mean dose estimator (explicit, because 7 mm SPECT voxels straddle every organ border
and a plain mask mean would test partial-volume handling, not the dose engines):
    * electrons: energy deposited on behalf of the structure / structure mass,
      sum_v D_e(v) m(v) a(v) / M, where a(v) is the structure's share of voxel v's true TIA
      (from the phantom's exact activity splatting), m(v) = CT density x voxel volume and M the
      CT mass of the structure (density x volume over its CT-grid label);
    * photons: volume-weighted mean of D_ph over the structure's SPECT voxels (weights = the
      fraction of each voxel inside the structure's CT-grid label).
Truth: ``phantom.truth["structures"][name]["mean_dose_gy"]`` (electron LED + point-kernel photons).
Two TIA sources: (1) the exact TIA per voxel (isolates the dose engines) and (2) the kinetics
API (``startnet.kinetics.fit_voxels`` on the true time points), the end-to-end check.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.dosimetry import density_on_grid, dose_led, dose_vsv, dose_vsv_density, get_kernel
from startnet.dosimetry.density import hu_to_density_g_per_ml
from startnet.kinetics import fit_voxels
from startnet.phantom import PhantomConfig, build_phantom, motion, render
from startnet.phantom.truth import tia_per_voxel_lut

KIDNEYS = ("kidney_left", "kidney_right")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("STARTNET_CACHE_DIR", str(tmp_path_factory.mktemp("kernel-cache")))
    ph = build_phantom(PhantomConfig(preset="small", noise=False, blur=False, motion=False))
    ref = ph.timepoints[ph.reference_index].activity_true_bqml
    spacing = ref.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    times = [tp.hours_post_injection for tp in ph.timepoints]
    act = np.stack([sitk.GetArrayFromImage(tp.activity_true_bqml) * (1e-6 * voxel_ml) for tp in ph.timepoints])
    fit = fit_voxels(times, act, act.max(axis=0) > 0)
    # exact TIA per SPECT voxel, total and per structure, from the phantom's activity splatting
    cfg = ph.config
    matrix, offset = motion.affine_parts(ph.timepoints[ph.reference_index].true_transform)
    lut = tia_per_voxel_lut(ph.compartment_truths)

    def splat(values):
        return render.splat_activity(ph.compartments, values, cfg.ct_grid, cfg.spect_grid, matrix, offset)

    tia_true = splat(lut)
    comp_index = {name: t.compartment.index for name, t in ph.compartment_truths.items()}
    rho = density_on_grid(ph.ct_hu, ref)
    kernel = get_kernel(spacing)
    ct_rho = hu_to_density_g_per_ml(sitk.GetArrayFromImage(ph.ct_hu))
    ct_voxel_ml = float(np.prod(ph.ct_hu.GetSpacing())) / 1000.0
    labels = sitk.GetArrayFromImage(ph.labels)
    structures = {}
    for name, truth in ph.truth["structures"].items():
        if name not in KIDNEYS and not name.startswith("tumour"):
            continue
        keep = np.zeros_like(lut)
        for comp in truth["compartments"]:
            keep[comp_index[comp]] = lut[comp_index[comp]]
        share = np.divide(splat(keep), tia_true, out=np.zeros_like(tia_true), where=tia_true > 0)
        label_img = sitk.Cast(ph.labels == truth["label"], sitk.sitkFloat32)
        vol_frac = sitk.GetArrayFromImage(sitk.Resample(label_img, ref, sitk.Transform(), sitk.sitkLinear, 0.0))
        mass_g = float(ct_rho[labels == truth["label"]].astype(np.float64).sum()) * ct_voxel_ml
        structures[name] = {"truth": truth, "share": share, "vol_frac": vol_frac, "mass_g": mass_g}
    mp.undo()
    return {"tia": {"exact": tia_true.astype(np.float32), "fit_voxels": fit.tia_mbq_h}, "rho": rho,
            "kernel": kernel, "voxel_ml": voxel_ml, "structures": structures, "spacing": spacing}


def _engines(setup, tia):
    k, rho, v = setup["kernel"], setup["rho"], setup["voxel_ml"]
    return {"led": dose_led(tia, v, rho, photons="kernel", kernel=k), "vsv": dose_vsv(tia, k, setup["spacing"]),
            "vsv-density": dose_vsv_density(tia, k, rho, voxel_size_mm=setup["spacing"])}


def _structure_mean_gy(setup, maps, s):
    voxel_mass_g = setup["rho"].astype(np.float64) * setup["voxel_ml"]
    electron = float(np.sum(maps.electron_gy * voxel_mass_g * s["share"])) / s["mass_g"]
    photon = float(np.sum(maps.photon_gy * s["vol_frac"]) / np.sum(s["vol_frac"]))
    return electron + photon


def _deviations(setup, tia_key, names):
    out = {}
    for engine, maps in _engines(setup, setup["tia"][tia_key]).items():
        for name in names:
            s = setup["structures"][name]
            est = _structure_mean_gy(setup, maps, s)
            out[(engine, name)] = 100.0 * (est / s["truth"]["mean_dose_gy"] - 1.0)
    return out


def _report(devs):
    return "; ".join(f"{e}/{n}: {d:+.2f} %" for (e, n), d in sorted(devs.items()))


@pytest.mark.slow
def test_engines_with_exact_tia_within_5_percent(setup):
    names = [n for n in setup["structures"]]
    devs = _deviations(setup, "exact", names)
    assert all(abs(d) < 5.0 for d in devs.values()), _report(devs)


@pytest.mark.slow
def test_end_to_end_with_voxel_kinetics_within_5_percent(setup):
    names = [n for n in setup["structures"]]
    assert set(KIDNEYS) <= set(names) and sum(n.startswith("tumour") for n in names) >= 1
    devs = _deviations(setup, "fit_voxels", names)
    assert all(abs(d) < 5.0 for d in devs.values()), _report(devs)


@pytest.mark.slow
def test_led_electron_energy_is_exact_with_exact_tia(setup):
    # electrons alone: LED energy per CT mass must equal the truth's energy / mass
    maps = _engines(setup, setup["tia"]["exact"])["led"]
    voxel_mass_g = setup["rho"].astype(np.float64) * setup["voxel_ml"]
    for name, s in setup["structures"].items():
        electron = float(np.sum(maps.electron_gy * voxel_mass_g * s["share"])) / s["mass_g"]
        truth = s["truth"]["electron_energy_per_mass_gy"]
        assert electron == pytest.approx(truth, rel=5e-3), f"{name}: {100 * (electron / truth - 1):+.3f} %"
