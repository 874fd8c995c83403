"""Voxel maps consistent with the structure values (issue 10, findings 6 and 11).

Map mean of a structure (the definition the report uses for its mass):
    map_mean_i = sum_v f_i(v) m(v) D(v) / sum_v f_i(v) m(v),
f_i(v) the structure's share of voxel v, m(v) the voxel mass. With local energy deposition it equals
the reported mean exactly; with kernel convolution it may differ by the electron energy the kernel
carries out of a voxel: 4.8 mm voxels (this test) 7.2 %, 7 mm voxels (the phantom runs) 5.0 %
(``kernel_electron_spill``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.cycle.analyse import analyse_structures, bed_parameters_for
from startnet.cycle.structure_maps import (
    bed_map_by_structure,
    kernel_electron_spill,
    scale_voxel_tia,
    share_weighted_mean,
)
from startnet.cycle.structures import Structures
from startnet.dosimetry import get_kernel
from startnet.physics.lu177 import LU177

SPACING_MM = 4.8
SHAPE = (26, 26, 26)


def _ball_share(centre_mm, radius_mm, supersample=4):
    """Share of each voxel inside a ball (mm, voxel centres at (i + 0.5) * spacing)."""
    offsets = (np.arange(supersample) + 0.5) / supersample
    share = np.zeros(SHAPE, np.float64)
    zz, yy, xx = np.indices(SHAPE)
    for dz in offsets:
        for dy in offsets:
            for dx in offsets:
                r2 = (((zz + dz) * SPACING_MM - centre_mm[0]) ** 2 + ((yy + dy) * SPACING_MM - centre_mm[1]) ** 2
                      + ((xx + dx) * SPACING_MM - centre_mm[2]) ** 2)
                share += r2 <= radius_mm ** 2
    return (share / supersample ** 3).astype(np.float32)


def _two_structures():
    kidney = _ball_share((62.0, 62.0, 45.0), 26.0)
    lesion = _ball_share((62.0, 62.0, 80.0), 8.0)  # 2.1 mL touching the kidney
    lesion = np.minimum(lesion, 1.0 - kidney)
    fractions = OrderedDict(kidney_left=kidney, lesion_1=lesion)
    masks = OrderedDict((name, share >= 0.5) for name, share in fractions.items())
    return fractions, masks


def test_voxel_tia_is_scaled_with_the_shares_the_structure_mass_uses():
    fractions, masks = _two_structures()
    rng = np.random.default_rng(3)
    tia = (rng.uniform(0.5, 1.5, SHAPE) * (1.0 + 5 * fractions["kidney_left"] + 20 * fractions["lesion_1"]))
    tia = tia.astype(np.float32)
    targets = {"kidney_left": 5000.0, "lesion_1": 400.0}
    binary = tia.copy()
    for name, mask in masks.items():  # the former rule: the binary mask sums to the structure TIA
        binary[mask] *= np.float32(targets[name] / binary[mask].sum(dtype=np.float64))
    scales, rule, warnings = scale_voxel_tia(tia, masks, fractions, targets)
    assert rule == "fractional shares" and not warnings and all(s > 0 for s in scales.values())
    mass = np.full(SHAPE, SPACING_MM ** 3 / 1000.0)  # water
    for name, share in fractions.items():
        assert float(np.sum(share * tia, dtype=np.float64)) == pytest.approx(targets[name], rel=1e-5)
        # local deposition: the map's share-weighted mean is exactly TIA x E / mass
        reported = targets[name] * LU177.electron_energy_j_per_mbq_h / (float((share * mass).sum()) * 1e-3)
        for scaled, tolerance in ((tia, 1e-5), (binary, None)):
            led = scaled * LU177.electron_energy_j_per_mbq_h / (mass * 1e-3)
            ratio = share_weighted_mean(led, share, mass) / reported
            if tolerance:
                assert ratio == pytest.approx(1.0, abs=tolerance), name
            elif name == "lesion_1":
                assert ratio < 0.98  # the former scaling read the small lesion's map 3 % low, even here


def _synthetic_cycle(fractions, k_per_h, concentration_mbq_ml):
    """Noise-free, unblurred mono-exponential cycle on a 4.8 mm grid; body background everywhere."""
    times_h = np.array([4.0, 24.0, 96.0, 168.0])
    voxel_ml = SPACING_MM ** 3 / 1000.0
    background = np.clip(1.0 - sum(fractions.values()), 0.0, 1.0)
    parts = [(share, k_per_h[name], concentration_mbq_ml[name]) for name, share in fractions.items()]
    parts.append((background, k_per_h["background"], concentration_mbq_ml["background"]))
    images = []
    for t in times_h:
        bqml = sum(share * c * 1e6 * math.exp(-k * t) for share, k, c in parts)
        image = sitk.GetImageFromArray(bqml.astype(np.float32))
        image.SetSpacing((SPACING_MM,) * 3)
        images.append(image)
    registered = SimpleNamespace(reference_grid=images[0], times_h=times_h, activity_bqml=images, ct_hu=None,
                                 reference_index=0)
    return registered, voxel_ml


def test_dose_and_bed_maps_agree_with_the_reported_structure_values():
    fractions, masks = _two_structures()
    k = {"kidney_left": math.log(2) / 50.0, "lesion_1": math.log(2) / 90.0, "background": math.log(2) / 30.0}
    concentration = {"kidney_left": 0.5, "lesion_1": 1.5, "background": 0.01}
    registered, voxel_ml = _synthetic_cycle(fractions, k, concentration)
    structures = Structures(masks, "synthetic", fractions=dict(fractions))
    analysis = analyse_structures(registered, structures, method="vsv-density", pvc="none")
    results = analysis.structure_results
    dose = sitk.GetArrayFromImage(analysis.dose_gy)
    bed = sitk.GetArrayFromImage(analysis.bed_gy)
    mass = np.full(SHAPE, voxel_ml)  # no CT: water
    spill = kernel_electron_spill(get_kernel((SPACING_MM,) * 3))
    assert spill == pytest.approx(0.072, abs=0.002)  # the figure stated in the module doc
    for name, share in fractions.items():
        map_mean = share_weighted_mean(dose, share, mass)
        assert abs(map_mean / results[name]["mean_gy"] - 1.0) <= spill, name
        assert results[name]["voxel_map_mean_gy"] == pytest.approx(map_mean, rel=1e-3)

    # finding 11: the lesion is a tumour, and the voxel BED map uses each structure's radiobiology
    assert (results["lesion_1"]["bed_alpha_beta_gy"], results["lesion_1"]["bed_t_rep_h"]) == (10.0, 1.5)
    assert (results["kidney_left"]["bed_alpha_beta_gy"], results["kidney_left"]["bed_t_rep_h"]) == (2.6, 2.8)
    for name, (alpha_beta, t_rep) in (("lesion_1", (10.0, 1.5)), ("kidney_left", (2.6, 2.8))):
        pure = fractions[name] == 1.0  # voxels whose TAC is the structure's own mono-exponential
        g = k[name] / (k[name] + math.log(2) / t_rep)
        expected = dose[pure] * (1.0 + g * dose[pure] / alpha_beta)
        assert bed[pure] == pytest.approx(expected, rel=2e-3), name
    lesion_excess = (bed - dose)[fractions["lesion_1"] == 1.0].mean()
    # with the kidney's alpha/beta and T_rep the lesion's BED excess would be about 7x larger
    g_kidney = k["lesion_1"] / (k["lesion_1"] + math.log(2) / 2.8)
    kidney_like = (g_kidney * dose ** 2 / 2.6)[fractions["lesion_1"] == 1.0].mean()
    assert lesion_excess < 0.3 * kidney_like


def test_bed_map_by_structure_closed_form_and_default_outside():
    dose = np.full((3, 3, 3), 4.0, np.float32)
    k = np.full_like(dose, 0.01)
    k[0, 0, 0] = 0.0  # no clearance rate: G = 0, BED = D
    masks = OrderedDict(kidney_left=np.zeros(dose.shape, bool), lesion_1=np.zeros(dose.shape, bool))
    masks["kidney_left"][1] = True
    masks["lesion_1"][2] = True
    bed = bed_map_by_structure(dose, k, masks, bed_parameters_for, (3.0, 1.5))

    def closed(alpha_beta, t_rep):
        g = 0.01 / (0.01 + math.log(2) / t_rep)
        return 4.0 * (1 + g * 4.0 / alpha_beta)

    assert bed[1, 1, 1] == pytest.approx(closed(2.6, 2.8), rel=1e-6)
    assert bed[2, 1, 1] == pytest.approx(closed(10.0, 1.5), rel=1e-6)
    assert bed[0, 1, 1] == pytest.approx(closed(3.0, 1.5), rel=1e-6)
    assert bed[0, 0, 0] == pytest.approx(4.0)


@pytest.mark.parametrize("name, kind_parameters", [
    ("lesion_1", (10.0, 1.5)), ("Liver lesion 2", (10.0, 1.5)), ("met_3", (10.0, 1.5)), ("Tumor 3", (10.0, 1.5)),
    ("liver_metastasis", (10.0, 1.5)), ("Kidney_Left", (2.6, 2.8)), ("renal cortex", (2.6, 2.8)),
    ("adrenal_left", (3.0, 1.5)), ("metal_artefact", (3.0, 1.5)), ("liver", (3.0, 1.5)), ("bladder", (3.0, 1.5)),
])
def test_bed_parameters_use_the_shared_alias_table(name, kind_parameters):
    assert bed_parameters_for(name) == kind_parameters


def test_population_half_lives_use_the_same_alias_table():
    from startnet.kinetics import default_population_table
    from startnet.structure_kinds import structure_kind

    table = default_population_table()
    for name in ("lesion_1", "met_2", "Tumor 3", "liver lesion 2", "kidney_right", "renal cortex", "Spleen"):
        kind = structure_kind(name)
        assert table.lookup(name).structure == kind, name
        assert bed_parameters_for(name) == bed_parameters_for(kind)
    assert table.lookup("adrenal_left") is None and structure_kind("metal_artefact") is None
