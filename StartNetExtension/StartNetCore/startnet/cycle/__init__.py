"""One 177Lu cycle's steps, each callable with in-memory inputs; ``run_cycle`` chains them.

    load       load_timepoints(folder or [DICOM files], overrides) -> (Cycle, Discovery)     (load)
    register   choose_reference(times_h, requested) -> index;
               register_cycle_to_reference(cycle, reference_index, progress) -> RegisteredCycle  (run)
               registered_from_transforms(cycle, reference_index, transforms) -> RegisteredCycle
                                                      (given transforms, no registration)  (register)
    structures structures_from_file(path, reference, labels_path, ct_hu);
               automatic_structures(ct_hu, reference)                                      (structures)
               structures_from_masks(masks, reference, ct_hu=...);
               structures_from_labelmap(labelmap, names, reference, ct_hu=...)             (segments)
    analyse    analyse_structures(registered, structures, method=..., pvc=...)             (analyse)
               analyse_cycle(options, registered, structures, progress) -> CycleResult;
               build_results(...) -> results.json dict                                     (run)
    outputs    prepare_output_dir(out_dir) -> staging; write_outputs(result, options, staging)  (outputs)
    run        RunOptions, run_cycle(options, progress_callback) -> CycleResult           (run)
    also       record_cycle_results (trial_record), summary_text (summary),
               accumulate_runs (accumulate), PVC_METHODS (pvc)

Names are imported on first use, so that ``import startnet.cycle`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_timepoints": "load",
    "RegisteredCycle": "run", "choose_reference": "run", "registration_entry": "run",
    "register_cycle_to_reference": "run", "registered_from_transforms": "register",
    "Structures": "structures", "structures_from_file": "structures", "automatic_structures": "structures",
    "structures_from_segments": "structures",
    "structures_from_masks": "segments", "structures_from_labelmap": "segments",
    "StructureAnalysis": "analyse", "analyse_structures": "analyse", "kidneys_summary": "analyse",
    "CycleResult": "run", "analyse_cycle": "run", "build_results": "run",
    "prepare_output_dir": "outputs", "write_outputs": "outputs",
    "RunOptions": "run", "run_cycle": "run",
    "record_cycle_results": "trial_record", "summary_text": "summary", "accumulate_runs": "accumulate",
    "PVC_METHODS": "pvc", "DEFAULT_PVC": "pvc",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"startnet.cycle.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'startnet.cycle' has no attribute '{name}'")
