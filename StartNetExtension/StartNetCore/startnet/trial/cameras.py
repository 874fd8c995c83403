"""Which cameras (and calibrations) each site's recorded kidney doses came from.

No schema change: a cycle's dosimetry provenance (``dosimetry_json``, the results.json keys kept by
``startnet.trial.results``) holds ``provenance.parameters.calibration`` when ``startnet run
--calibration`` was used: file, sha256, camera (manufacturer, model, serial). Cycles without it are
listed as "uncalibrated" (calibration factor from the command line or a Bq/mL SPECT), with the SPECT
camera unknown to the trial database.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional

UNCALIBRATED = "uncalibrated (no startnet calibrate file used)"


def cycle_calibration(cycle: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The calibration record of one cycle (``TrialStore.cycles`` row), or None."""
    dosimetry = cycle.get("dosimetry") or {}
    parameters = (dosimetry.get("provenance") or {}).get("parameters") or {}
    calibration = parameters.get("calibration")
    return calibration if isinstance(calibration, dict) else None


def cameras_by_site(store, site: Optional[str] = None) -> List[Dict[str, Any]]:
    """One row per (site, camera, calibration file hash) with the cycles recorded with it."""
    rows: OrderedDict[tuple, Dict[str, Any]] = OrderedDict()
    for patient in store.patients(site):
        for cycle in store.cycles(patient["patient"]):
            calibration = cycle_calibration(cycle)
            if calibration is None:
                camera, sha, path = UNCALIBRATED, "", ""
            else:
                ident = calibration.get("camera") or {}
                camera = (f"{ident.get('manufacturer') or '?'} {ident.get('model') or '?'} "
                          f"(serial {ident.get('serial') or '?'})")
                sha, path = str(calibration.get("sha256") or ""), str(calibration.get("file") or "")
            key = (patient["site"], camera, sha)
            row = rows.setdefault(key, {"site": patient["site"], "camera": camera, "calibration_sha256": sha,
                                        "calibration_file": path, "cycles": []})
            row["cycles"].append(f"{patient['patient']}/{cycle['cycle']}")
    return list(rows.values())
