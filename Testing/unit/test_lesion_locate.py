"""Finding an earlier cycle's run folder that is no longer where the trial database recorded it.

Synthetic results.json files only (the three-cycle phantom run is Testing/e2e/test_lesion_cycles.py).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from startnet.lesions.locate import AmbiguousRunError, locate_earlier_run, recorded_identity

SERIES = ("1.2.3.1", "1.2.3.2")


def _results(cycle=1, patient="SN-1", series=SERIES, injection="2025-05-01T09:00:00+00:00"):
    return {"patient_id": patient, "cycle": cycle, "injection_datetime": injection,
            "timepoints": [{"series_instance_uid": uid} for uid in series], "structures": {}}


def _record(results, source, sha256=None):
    """A trial database cycle as 'startnet run --trial-db' records it (provenance copy, no timepoints key)."""
    dosimetry = {"patient_id": results["patient_id"], "cycle": results["cycle"],
                 "injection_datetime": results["injection_datetime"],
                 "provenance": {"input": {"timepoints": [{"spect_series_uid": tp["series_instance_uid"]}
                                                         for tp in results["timepoints"]]}}}
    if sha256:
        dosimetry["sha256"] = sha256
    return {"cycle": results["cycle"], "dosimetry_source": str(source), "dosimetry": dosimetry}


def _write(folder, results) -> bytes:
    folder.mkdir(parents=True)
    raw = json.dumps(results).encode()
    (folder / "results.json").write_bytes(raw)
    return raw


def test_identity_from_the_stored_provenance():
    identity = recorded_identity(_record(_results(), "/x/results.json"))
    assert identity.spect_series_uids == SERIES and identity.patient_id == "SN-1" and identity.identifiable


def test_recorded_folder_first_then_previous_runs_then_siblings(tmp_path):
    results = _results()
    record = _record(results, tmp_path / "site" / "c1" / "results.json")
    _write(tmp_path / "site" / "c1", results)
    assert locate_earlier_run(record, str(tmp_path / "new" / "c3")) == (tmp_path / "site" / "c1", "recorded folder")
    (tmp_path / "site" / "c1" / "results.json").unlink()
    # decoys beside the output folder: another cycle, another patient, other series, another injection
    _write(tmp_path / "new" / "cycle1-other-patient", _results(patient="SN-2"))
    _write(tmp_path / "new" / "c2", _results(cycle=2))
    _write(tmp_path / "new" / "c1-reacquired", _results(series=("9.9",)))
    _write(tmp_path / "new" / "c1-other-day", _results(injection="2025-06-01T09:00:00+00:00"))
    folder, how = locate_earlier_run(record, str(tmp_path / "new" / "c3"))
    assert folder is None and "not found in the folders beside" in how and "no results.json" in how
    _write(tmp_path / "new" / "archived", results)
    folder, how = locate_earlier_run(record, str(tmp_path / "new" / "c3"))
    assert folder == tmp_path / "new" / "archived" and how.startswith("moved: found in the folders beside")
    _write(tmp_path / "share" / "2025" / "deep" / "x", results)  # --previous-runs decides first, recursively
    folder, how = locate_earlier_run(record, str(tmp_path / "new" / "c3"), str(tmp_path / "share"))
    assert folder == tmp_path / "share" / "2025" / "deep" / "x" and "--previous-runs" in how
    _write(tmp_path / "new" / "archived-copy", results)
    with pytest.raises(AmbiguousRunError, match="2 run folders in the folders beside .*archived, .*archived-copy"):
        locate_earlier_run(record, str(tmp_path / "new" / "c3"))


def test_a_recorded_sha256_identifies_the_file_and_a_changed_recorded_folder_is_not_used(tmp_path):
    results = _results()
    raw = json.dumps(results).encode()
    record = _record(results, tmp_path / "site" / "c1" / "results.json", hashlib.sha256(raw).hexdigest())
    _write(tmp_path / "site" / "c1", {**results, "method": "re-run"})  # the recorded folder now holds another run
    _write(tmp_path / "new" / "same-ids-other-bytes", {**results, "method": "other"})
    (tmp_path / "new" / "archived").mkdir()
    (tmp_path / "new" / "archived" / "results.json").write_bytes(raw)
    folder, how = locate_earlier_run(record, str(tmp_path / "new" / "c3"))
    assert folder == tmp_path / "new" / "archived" and "holds another run than the one recorded" in how


def test_an_unidentifiable_record_keeps_the_recorded_folder_and_is_never_guessed_elsewhere(tmp_path):
    results = _results(series=())
    record = _record(results, tmp_path / "site" / "c1" / "results.json")
    _write(tmp_path / "new" / "c1", results)
    folder, how = locate_earlier_run(record, str(tmp_path / "new" / "c3"))
    assert folder is None and "cannot be identified" in how
    _write(tmp_path / "site" / "c1", results)
    assert locate_earlier_run(record, str(tmp_path / "new" / "c3"))[0] == tmp_path / "site" / "c1"


def test_previous_runs_option_reaches_run_options_and_must_be_a_folder(tmp_path):
    from startnet.cli import build_parser
    from startnet.cycle.options import option_values, run_options
    from startnet.errors import InputError

    args = build_parser().parse_args(["run", "IN", "--out", "OUT", "--previous-runs", str(tmp_path)])
    options = run_options(option_values(args), "IN", "OUT")
    assert options.previous_runs_dir == str(tmp_path)
    options.validate()
    options.previous_runs_dir = str(tmp_path / "missing")
    with pytest.raises(InputError, match="--previous-runs .*missing: not a folder"):
        options.validate()


def test_an_unreadable_recorded_results_file_is_said_so_and_the_run_looked_for_elsewhere(tmp_path):
    results = _results()
    record = _record(results, tmp_path / "site" / "c1" / "results.json")
    (tmp_path / "site" / "c1").mkdir(parents=True)
    (tmp_path / "site" / "c1" / "results.json").write_text("{truncated")
    folder, how = locate_earlier_run(record, str(tmp_path / "new" / "c3"))
    assert folder is None and "results.json: not readable JSON" in how
    _write(tmp_path / "new" / "c1", results)
    assert locate_earlier_run(record, str(tmp_path / "new" / "c3"))[0] == tmp_path / "new" / "c1"
