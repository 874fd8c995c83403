"""The trial lists, per site, which camera and calibration file each recorded cycle's dose came from.

The calibration travels in the results' provenance (``provenance.parameters.calibration``: file,
sha256, camera) which the cycle record keeps (``dosimetry_json``): no schema change.
"""

from __future__ import annotations

import datetime as dt
import json

from startnet.cli import main
from startnet.trial.cameras import UNCALIBRATED, cameras_by_site
from startnet.trial.identity import User
from startnet.trial.results import parse_results
from startnet.trial.store import TrialStore


def _results(calibration):
    return {"schema_version": 1, "kidneys_mean_gy": 4.0, "kidneys_uncertainty_pct": 10.0, "cycle": 1,
            "structures": {"kidney_left": {"mean_gy": 4.1, "mass_g": 150.0},
                           "kidney_right": {"mean_gy": 3.9, "mass_g": 150.0}},
            "provenance": {"parameters": {"calibration": calibration}}}


def test_cameras_per_site(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    store = TrialStore.initialise(url, User("coordinator", None))
    calibration = {"file": "/site/CAL.json", "sha256": "ab" * 32,
                   "camera": {"manufacturer": "Acme", "model": "Gamma 9", "serial": "SN-42"}}
    for patient, site, cal in (("SN-001", "Uppsala", calibration), ("SN-002", "Uppsala", None),
                               ("SN-003", "Sahlgrenska", calibration)):
        store.enroll(patient, site, 2, dt.date(2025, 1, 2))
        entry = parse_results(_results(cal), "results.json").to_entry(1, dt.date(2025, 1, 13), 7.4)
        store.add_cycle(patient, entry)
    rows = cameras_by_site(store)
    by_key = {(r["site"], r["camera"]): r for r in rows}
    assert by_key[("Uppsala", "Acme Gamma 9 (serial SN-42)")]["cycles"] == ["SN-001/1"]
    assert by_key[("Uppsala", "Acme Gamma 9 (serial SN-42)")]["calibration_sha256"] == "ab" * 32
    assert by_key[("Uppsala", UNCALIBRATED)]["cycles"] == ["SN-002/1"]
    assert by_key[("Sahlgrenska", "Acme Gamma 9 (serial SN-42)")]["cycles"] == ["SN-003/1"]
    store.close()
    assert main(["trial", "--db", url, "cameras", "--site", "Uppsala", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["camera"] for r in listed} == {"Acme Gamma 9 (serial SN-42)", UNCALIBRATED}
