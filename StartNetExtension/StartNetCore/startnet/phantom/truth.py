"""Ground truth of the phantom: per-compartment kinetics, volumes, masses, activities and doses.

Everything here is computed independently of ``startnet.kinetics`` and ``startnet.dosimetry``:
- volume = voxel count x CT voxel volume (reference pose, noise-free compartment map);
- mass = sum over compartments of density x volume (densities from the compartments' nominal
  CT numbers through :func:`startnet.phantom.anatomy.density_from_hu`);
- activity A(t) and TIA = sum a_i / k_i from the analytic curves (``tacs``);
- electron local-deposition dose: voxel-wise D = TIA_voxel * Delta_e / (rho V_voxel), reported as
  the mean over the structure's voxels (``electron_led_gy``, what a dose map's mask mean gives) and
  as energy / mass (``electron_energy_per_mass_gy``); they coincide where density is uniform;
- photon dose: water point-kernel convolution (``photon``), mean over the structure's voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from startnet.phantom import anatomy, photon, vertebrae
from startnet.phantom.tacs import ACTIVE_COMPARTMENTS, KIDNEY_CORTEX_TO_MEDULLA, Tac, combine, kinetics_for
from startnet.physics.lu177 import LU177


@dataclass
class CompartmentTruth:
    compartment: anatomy.Compartment
    voxels: int
    volume_ml: float
    mass_g: float
    tac: Tac


def compartment_truths(voxel_counts: np.ndarray, voxel_volume_ml: float,
                       injected_activity_mbq: float, tumour_kinetics: str = "default") -> Dict[str, CompartmentTruth]:
    """Split each structure's curve over its compartments (uniform concentration per compartment)."""
    kinetics = kinetics_for(tumour_kinetics)
    out: Dict[str, CompartmentTruth] = {}
    for structure in anatomy.STRUCTURE_LABELS:
        comps = anatomy.compartments_of(structure)
        volumes = {c.name: float(voxel_counts[c.index]) * voxel_volume_ml for c in comps}
        total_volume = sum(volumes.values())
        structure_tac = kinetics[structure].tac(injected_activity_mbq, total_volume)
        active = ACTIVE_COMPARTMENTS.get(structure, tuple(volumes))
        weights = {}
        for c in comps:
            if c.name not in active:
                weights[c.name] = 0.0
            elif c.name.endswith("_cortex"):
                weights[c.name] = KIDNEY_CORTEX_TO_MEDULLA * volumes[c.name]
            else:
                weights[c.name] = volumes[c.name]
        weight_sum = sum(weights.values())
        for c in comps:
            share = weights[c.name] / weight_sum if weight_sum > 0 else 0.0
            out[c.name] = CompartmentTruth(c, int(voxel_counts[c.index]), volumes[c.name],
                                           volumes[c.name] * c.density_g_per_ml, structure_tac.scaled(share))
    body_ml = sum(out[c.name].volume_ml for c in anatomy.compartments_of("body"))
    body_tac = kinetics["body"].tac(injected_activity_mbq, body_ml)
    for name, tac in vertebrae.marrow_tacs(out, body_tac, body_ml, vertebrae.default_red_marrow_g_per_ml()).items():
        out[name].tac = tac  # red marrow follows the blood (not the spine's own curve)
    return out


def activity_per_voxel_lut(truths: Dict[str, CompartmentTruth], hours: float) -> np.ndarray:
    """LUT compartment index -> activity (MBq) of one CT voxel at ``hours`` after injection."""
    lut = np.zeros(256, dtype=np.float64)
    for t in truths.values():
        if t.voxels:
            lut[t.compartment.index] = t.tac.activity_mbq(hours) / t.voxels
    return lut


def tia_per_voxel_lut(truths: Dict[str, CompartmentTruth]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.float64)
    for t in truths.values():
        if t.voxels:
            lut[t.compartment.index] = t.tac.tia_mbq_h() / t.voxels
    return lut


def _electron_led(parts: List[CompartmentTruth], voxel_volume_ml: float) -> Dict[str, float]:
    delta_e = LU177.electron_energy_j_per_mbq_h
    voxels = sum(p.voxels for p in parts)
    mass_kg = sum(p.mass_g for p in parts) / 1000.0
    energy_j = sum(p.tac.tia_mbq_h() for p in parts) * delta_e
    voxel_sum = 0.0
    for p in parts:
        if p.voxels:
            voxel_mass_kg = p.compartment.density_g_per_ml * voxel_volume_ml / 1000.0
            voxel_sum += p.voxels * (p.tac.tia_mbq_h() / p.voxels) * delta_e / voxel_mass_kg
    return {"electron_led_gy": voxel_sum / voxels if voxels else 0.0,
            "electron_energy_per_mass_gy": energy_j / mass_kg if mass_kg > 0 else 0.0}


def _entry(parts: List[CompartmentTruth], hours: List[float], voxel_volume_ml: float, label: int,
           photon_gy: float) -> Dict[str, object]:
    tac = combine([p.tac for p in parts])
    volume = sum(p.volume_ml for p in parts)
    mass = sum(p.mass_g for p in parts)
    entry: Dict[str, object] = {
        "label": label,
        "compartments": [p.compartment.name for p in parts],
        "voxels": sum(p.voxels for p in parts),
        "volume_ml": volume,
        "mass_g": mass,
        "density_g_per_ml": mass / volume if volume > 0 else 0.0,
        "ct_hu_nominal": {p.compartment.name: p.compartment.hu for p in parts},
        "activity_mbq": [float(tac.activity_mbq(h)) for h in hours],
        "concentration_bqml": [float(tac.activity_mbq(h)) * 1e6 / volume if volume > 0 else 0.0 for h in hours],
        "tia_mbq_h": tac.tia_mbq_h(),
        "tac": tac.to_dict(),
    }
    entry.update(_electron_led(parts, voxel_volume_ml))
    entry["photon_gy"] = photon_gy
    entry["mean_dose_gy"] = entry["electron_led_gy"] + photon_gy
    return entry


def structure_truth(truths: Dict[str, CompartmentTruth], compartments: np.ndarray, hours: List[float],
                    voxel_volume_ml: float, spacing_mm, injected_activity_mbq: float) -> Dict[str, object]:
    """Per structure (and per kidney cortex / medulla) ground truth, plus the photon method."""
    # Photon dose per "truth region": structures 1..N, then kidney sub-compartments.
    regions = dict(anatomy.STRUCTURE_LABELS)
    sub_names = [c.name for c in anatomy.COMPARTMENTS if c.name.startswith("kidney_") and c.name not in regions]
    for offset, name in enumerate(sub_names):
        regions[name] = max(anatomy.STRUCTURE_LABELS.values()) + 1 + offset
    region_of_compartment = np.zeros(256, dtype=np.int64)
    for c in anatomy.COMPARTMENTS:
        region_of_compartment[c.index] = regions[c.name] if c.name in sub_names else regions[c.structure]
    photon_region, info = photon.photon_dose_per_structure(
        compartments, tia_per_voxel_lut(truths), region_of_compartment, max(regions.values()) + 1, spacing_mm)

    def photon_of(parts: List[CompartmentTruth]) -> float:
        # voxel-weighted mean of the regions making up the parts (kidney = cortex + medulla)
        weights = [(p.voxels, photon_region[region_of_compartment[p.compartment.index]]) for p in parts]
        n = sum(w for w, _ in weights)
        return float(sum(w * d for w, d in weights) / n) if n else 0.0

    structures = {}
    for name, label in anatomy.STRUCTURE_LABELS.items():
        parts = [truths[c.name] for c in anatomy.compartments_of(name)]
        structures[name] = _entry(parts, hours, voxel_volume_ml, label, photon_of(parts))
        if name in anatomy.TUMOUR_LOCATIONS:
            structures[name]["location"] = anatomy.TUMOUR_LOCATIONS[name]
    substructures = {name: _entry([truths[name]], hours, voxel_volume_ml, 0, photon_of([truths[name]]))
                     for name in sub_names}
    methods = {
        "activity": "analytic sum-of-exponential curves per compartment; uniform concentration in a compartment",
        "volume": "voxel count of the reference-pose compartment map x CT voxel volume",
        "mass": "sum of compartment density x volume; density from nominal HU via rho = 1 + HU/1000 "
                "(HU <= 100), rho = 1.1 + 0.00058 (HU - 100) (HU > 100)",
        "electron_led_gy": "mean over the structure's voxels of TIA_voxel * Delta_e / (rho V_voxel), "
                           f"Delta_e = {LU177.electron_energy_per_decay_mev} MeV",
        "photon_gy": "water point-kernel (energy-absorption build-up 1 + (mu-mu_en)/mu_en mu r, NIST water "
                     "coefficients) FFT convolution of the TIA summed in blocks of "
                     f"{[round(b, 3) for b in info['block_mm']]} mm; mean over the structure's voxels; "
                     "homogeneous water, no lung/bone correction, no escape at the body surface",
        "photon_lines": photon.lines_used(),
        "mean_dose_gy": "electron_led_gy + photon_gy",
    }
    total_tia = sum(t.tac.tia_mbq_h() for t in truths.values())
    methods["vertebrae"] = ("L2-L4 red marrow: blood concentration x red-marrow-to-blood ratio "
                            f"{vertebrae.RMBLR_TRUE:g} x red-marrow mass (default image-based model, g per mL of "
                            "vertebral body); tia_mbq_h of the marrow compartment")
    return {"structures": structures, "substructures": substructures, "methods": methods,
            "vertebrae": vertebrae.vertebra_truth(truths),
            "total_tia_mbq_h": total_tia, "injected_activity_mbq": injected_activity_mbq}


def lesion_truth_across_cycles(cycle_truths: List[Dict[str, object]]) -> Dict[str, Dict[str, object]]:
    """Per anatomical lesion over a patient's cycles (truth.json of cycles 1, 2, ... in order).

    For each lesion: its segment name, volume and mean dose per cycle (0 and None where it is not
    there), the cycles it is present in and the cumulative mean dose (sum over cycles).
    """
    out: Dict[str, Dict[str, object]] = {}
    for truth in cycle_truths:
        cycle = truth["cycle"]
        for name, lesion in cycle["lesions"].items():
            entry = out.setdefault(name, {"cycles": [], "present_in": [], "segment": [], "volume_ml": [],
                                          "mean_dose_gy": [], "cumulative_mean_dose_gy": 0.0})
            entry["cycles"].append(cycle["number"])
            entry["segment"].append(lesion["segment"])
            entry["volume_ml"].append(lesion["volume_ml"])
            entry["mean_dose_gy"].append(lesion["mean_dose_gy"])
            if lesion["present"]:
                entry["present_in"].append(cycle["number"])
                entry["cumulative_mean_dose_gy"] += lesion["mean_dose_gy"]
    return out
