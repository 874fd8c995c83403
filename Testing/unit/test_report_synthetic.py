"""Synthetic patient for the report tests (a data builder, no tests of its own).

CT, masks, dose, TACs and a results dictionary.

Geometry (z, y, x) = (36, 56, 72) voxels of 4.8 mm: an elliptic body of soft tissue in air with
two kidneys, a liver, a spleen and a tumour. Each structure gets a uniform dose plus a gentle
gradient so that its DVH is not a step; TACs are mono-exponential with the structure's T_eff.
"""

from __future__ import annotations

import datetime

import numpy as np

from startnet.report.model import ReportInput, TacPlotData

SHAPE = (36, 56, 72)
SPACING_MM = (4.8, 4.8, 4.8)
DOSE_GY = {"kidney_left": 4.05, "kidney_right": 4.20, "liver": 2.10, "spleen": 3.00, "tumour_1": 18.5}
TEFF_H = {"kidney_left": 52.0, "kidney_right": 55.0, "liver": 70.0, "spleen": 60.0, "tumour_1": 95.0}
A0_MBQ = {"kidney_left": 60.0, "kidney_right": 62.0, "liver": 150.0, "spleen": 40.0, "tumour_1": 35.0}
TIMES_H = (4.0, 24.0, 96.0, 168.0)
WARNING = "Time point 3 SPECT has no scatter correction; activities may be overestimated"


def _ellipsoid(centre, radii):
    z, y, x = np.ogrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]]
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1.0


def _acquired(hours_pi: float) -> str:
    injection = datetime.datetime(2026, 3, 2, 8, 15, tzinfo=datetime.timezone.utc)
    return (injection + datetime.timedelta(hours=hours_pi)).isoformat()


def synthetic_input(with_trial: bool = True, with_ct: bool = True, warnings=(WARNING,)) -> ReportInput:
    body = _ellipsoid((18, 28, 36), (40, 22, 33))
    ct = np.where(body, 40.0, -1000.0)
    masks = {
        # LPS: +x is the patient's left, so the left kidney sits at larger x.
        "kidney_left": _ellipsoid((18, 34, 50), (6, 4, 3)),
        "kidney_right": _ellipsoid((17, 34, 22), (6, 4, 3)),
        "liver": _ellipsoid((24, 24, 22), (7, 9, 10)) & ~_ellipsoid((17, 34, 22), (7, 5, 4)),
        "spleen": _ellipsoid((24, 30, 54), (5, 4, 4)),
        "tumour_1": _ellipsoid((16, 22, 40), (3, 3, 3)),
    }
    ct[masks["kidney_left"] | masks["kidney_right"]] = 30.0
    z = np.arange(SHAPE[0])[:, None, None]
    dose = np.where(body, 0.15, 0.0) * np.ones(SHAPE)
    for name, mask in masks.items():
        gradient = 1.0 + 0.04 * (z - 18) / 6.0
        dose = np.where(mask, DOSE_GY[name] * np.broadcast_to(gradient, SHAPE), dose)
    results = {
        "schema_version": 1, "software": {"name": "startnet", "version": "0.1.0"},
        "patient_id": "SN-001", "cycle": 2, "method": "vsv-density", "injected_activity_mbq": 7400.0,
        "injection_datetime": "2026-03-02T08:15:00+00:00", "reference_timepoint": 1,
        "timepoints": [{"index": i, "hours_post_injection": t,
                        "acquisition_datetime": _acquired(t),
                        "series_instance_uid": f"1.2.3.{i}", "ct_series_instance_uid": f"1.2.4.{i}",
                        "registration": {"translation_mm": [1.0 * i, -0.5, 2.0], "rotation_deg": [0.2, -0.4 * i, 0.1],
                                         "warnings": []}}
                       for i, t in enumerate(TIMES_H)],
        "structures": {}, "warnings": list(warnings),
        "provenance": {"calibration_cps_per_mbq": 9.4, "kernel": "177Lu VSV 4.8 mm (energy balance 0.998)"},
    }
    tacs = {}
    for name, mask in masks.items():
        k = np.log(2) / TEFF_H[name]
        activities = [A0_MBQ[name] * np.exp(-k * t) for t in TIMES_H]
        fit_t = np.linspace(0.0, 200.0, 60)
        tacs[name] = TacPlotData(TIMES_H, activities, [0.05 * a for a in activities], fit_t,
                                 A0_MBQ[name] * np.exp(-k * fit_t), "mono-exponential")
        volume_ml = float(mask.sum()) * 4.8 ** 3 / 1000.0
        values = dose[mask]
        results["structures"][name] = {
            "volume_ml": volume_ml, "mass_g": volume_ml * 1.05, "tia_mbq_h": A0_MBQ[name] / k,
            "tia_sd_mbq_h": 0.06 * A0_MBQ[name] / k, "mean_gy": float(values.mean()),
            "d2_gy": float(np.percentile(values, 98)), "d98_gy": float(np.percentile(values, 2)),
            "bed_gy": float(values.mean()) * 1.12, "eqd2_gy": float(values.mean()) * 0.9, "uncertainty_pct": 9.0,
            "fit_model": "mono-exponential", "effective_half_life_h": TEFF_H[name],
            "activity_mbq": activities,
        }
    kidneys = [results["structures"][n] for n in ("kidney_left", "kidney_right")]
    mass = sum(k["mass_g"] for k in kidneys)
    results["kidneys_mean_gy"] = sum(k["mean_gy"] * k["mass_g"] for k in kidneys) / mass
    results["kidneys_bed_gy"] = results["kidneys_mean_gy"] * 1.12
    results["kidneys_uncertainty_pct"] = 9.0
    if with_trial:
        results["trial"] = {
            "cumulative_kidney_gy": 3.9 + results["kidneys_mean_gy"],
            "remaining_kidney_gy": 30.0 - 3.9 - results["kidneys_mean_gy"], "limit_gy": 30.0,
            "cycles": [{"cycle": 1, "date": "2025-12-15", "activity_gbq": 7.4, "kidney_gy": 3.9},
                       {"cycle": 2, "date": "2026-03-02", "activity_gbq": 7.4,
                        "kidney_gy": results["kidneys_mean_gy"]}],
            "next_cycle": {"allowed": True, "max_activity_gbq": 7.5, "earliest_date": "2026-05-04",
                           "latest_date": "2026-06-01", "reason": "Cumulative kidney dose below the limit."},
        }
    return ReportInput(results=results, dose_gy=dose, spacing_mm=SPACING_MM, ct_hu=ct if with_ct else None,
                       masks=masks, tacs=tacs)
