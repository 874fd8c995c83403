"""The lesion register for a cycle being run (``startnet run --trial-db ... [--lesion-map FILE]``).

The patient's earlier cycles come from the trial database: each cycle's stored dosimetry names the
``results.json`` it was recorded from (``dosimetry_source``) and, when it was run with lesion
tracking, its lesion IDs (``dosimetry["lesions"]["segments"]``, kept as recorded). The earlier run
folders give the tumour masks and CTs (:func:`startnet.lesions.sources.cycle_from_folder`); a folder
no longer at its recorded path is looked for under ``--previous-runs DIR`` and beside this run's
output folder, identified by its results (:mod:`startnet.lesions.locate`); this
cycle's CT on its dose grid is registered rigidly to each earlier cycle's it is compared with. An
earlier cycle whose folder cannot be read is left out with a warning (its lesion IDs stay reserved,
so no new lesion takes them); the kidney dose is recorded whatever happens here.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Tuple

import SimpleITK as sitk

from startnet.errors import InputError
from startnet.lesions.locate import locate_earlier_run
from startnet.lesions.sources import PairwiseRegistration, cycle_from_folder, cycle_from_memory, read_lesion_map
from startnet.lesions.table import cycle_record
from startnet.lesions.track import track_lesions


def earlier_cycles_from_trial(db_url: str, patient_id: str, cycle: int) -> List[Dict[str, Any]]:
    """The patient's current cycle records before ``cycle`` (none when the patient is not enrolled yet)."""
    from startnet.errors import StartNetError
    from startnet.trial.store import TrialStore

    store = TrialStore.open(db_url)
    try:
        try:
            records = store.cycles(patient_id)
        except StartNetError:
            return []  # not enrolled: recording the cycle says so
    finally:
        store.close()
    return [c for c in records if c["cycle"] < cycle]


def _load_earlier(record: Mapping[str, Any], options, warnings: List[str]):
    label = f"cycle {record['cycle']}"
    stored = (record.get("dosimetry") or {}).get("lesions") or {}
    # outside the try: two copies of the run are refused, not skipped
    folder, how = locate_earlier_run(record, getattr(options, "out_dir", None),
                                     getattr(options, "previous_runs_dir", None))
    try:
        if folder is None:
            raise InputError(how)
        results = json.loads((folder / "results.json").read_text())
        dose = sitk.ReadImage(str(folder / "dose.nrrd"))
        ct = sitk.ReadImage(str(folder / "ct_on_dose_grid.nrrd"))
        assigned = stored.get("segments") if isinstance(stored.get("segments"), dict) else None
        loaded = cycle_from_folder(folder, int(record["cycle"]), results, dose, assigned=assigned)
    except (OSError, ValueError, RuntimeError, InputError) as exc:
        warnings.append(f"{label} ({folder or 'not found'}): not compared ({exc}); its lesions cannot be matched "
                        "in this cycle")
        return None, None
    if how != "recorded folder":
        warnings.append(f"{label}: run folder {how}; compared with {folder}")
    return loaded, ct


def lesions_for_run(options, result) -> Tuple[Dict[str, Any], List[str]]:
    """This cycle's lesion record for results.json (IDs, matches, per-lesion values) and warnings."""
    lesion_map = read_lesion_map(getattr(options, "lesion_map_path", None))
    number = int(options.cycle) if options.cycle is not None else 1
    overrides = lesion_map.get("*", lesion_map.get(str(number), {}))
    warnings: List[str] = []
    earlier, cts, reserved = [], [], set()
    if options.trial_db and options.patient_id:
        for record in earlier_cycles_from_trial(options.trial_db, options.patient_id, number):
            loaded, ct = _load_earlier(record, options, warnings)
            if loaded is None:
                stored = ((record.get("dosimetry") or {}).get("lesions") or {}).get("segments") or {}
                reserved.update(stored.values())
                continue
            earlier.append(loaded)
            cts.append(ct)
    registered = result.registered
    current = cycle_from_memory(number, f"cycle {number} (this run)", registered.reference_grid,
                                result.structures.masks, result.results, overrides)
    transforms = PairwiseRegistration(cts + [result.analysis.ct_hu_on_grid], [c.label for c in earlier]
                                      + [current.label])
    register = track_lesions(earlier + [current], transforms, reserved_ids=reserved)
    record = cycle_record(register, number)
    record["compared_with"] = [{"cycle": c.cycle, "folder": c.label} for c in earlier]
    record["registrations"] = transforms.records
    return record, warnings + transforms.warnings

