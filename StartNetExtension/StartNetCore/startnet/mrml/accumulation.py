"""Several cycles summed (``startnet accumulate``) shown in the scene: cumulative dose and BED maps, table.

:func:`accumulate_and_show` runs :func:`startnet.cycle.accumulate.accumulate_runs` on the chosen
run folders (each a ``startnet run`` / Dosimetry module output folder) and shows
``cumulative_dose.nrrd`` as a dose (:func:`startnet.mrml.dose_display.show_dose`),
``cumulative_bed.nrrd``, the per-structure totals and the lesions (dose, volume and cumulative dose
per lesion and cycle, :func:`startnet.lesions.table.lesion_rows`); showing again refills the same nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence

import SimpleITK as sitk

from startnet.mrml.dose_display import show_dose
from startnet.mrml.run_nodes import RunNodes
from startnet.mrml.tables import table_from_records
from startnet.mrml.volumes import set_volume_attributes, sitk_to_volume

VOLUME = "vtkMRMLScalarVolumeNode"


def accumulate_and_show(scene, run_dirs: Sequence[str], out_dir: str, reference: int = 0) -> Dict[str, Any]:
    """Sum the cycles of ``run_dirs`` into ``out_dir`` and show the result; returns nodes and cumulative.json."""
    from startnet.cycle.accumulate import accumulate_runs

    cumulative = accumulate_runs([str(d) for d in run_dirs], str(out_dir), reference)
    nodes = RunNodes(scene)
    out: Dict[str, Any] = {"cumulative": cumulative}
    for role, file_name, name in (("cumulative_dose", "cumulative_dose.nrrd", "Cumulative dose (Gy)"),
                                  ("cumulative_bed", "cumulative_bed.nrrd", "Cumulative BED (Gy)")):
        image = sitk.ReadImage(str(Path(out_dir) / file_name))
        out[role] = sitk_to_volume(scene, image, name, node=nodes.get(VOLUME, role, name))
        set_volume_attributes(out[role], {"startnet.units": "Gy"})
    show_dose(scene, out["cumulative_dose"])
    rows = [{"structure": name, **values} for name, values in cumulative["structures"].items()]
    out["cumulative_table"] = table_from_records(
        scene, rows, "Cumulative dose", node=nodes.get("vtkMRMLTableNode", "cumulative_table", "Cumulative dose"))
    if cumulative.get("lesions"):
        from startnet.lesions.table import CSV_COLUMNS, lesion_rows

        out["lesion_table"] = table_from_records(
            scene, lesion_rows(cumulative["lesions"]), "Lesions across cycles", columns=list(CSV_COLUMNS),
            node=nodes.get("vtkMRMLTableNode", "lesion_table", "Lesions across cycles"))
    return out
