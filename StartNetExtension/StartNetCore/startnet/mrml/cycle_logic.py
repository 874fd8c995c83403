"""TimepointRegistration's logic on MRML: load a cycle's time points, register them, review.

Nodes created: per time point a CT and a SPECT (Bq/mL) volume with attributes (hours p.i.,
series UID), a linear transform node per time point (reference -> time point, shown by placing
the time point's CT under it), the SPECTs resampled onto the reference grid, and a quality
table. Used by the TimepointRegistration and Dosimetry modules; tested headless with slicer-core.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from startnet.errors import InputError
from startnet.mrml.tables import table_from_records
from startnet.mrml.transforms import sitk_to_transform_node
from startnet.mrml.volumes import set_volume_attributes, sitk_to_volume

QUALITY_COLUMNS = ("index", "hours_post_injection", "reference", "translation_mm", "rotation_deg",
                   "metric_before", "metric_after", "body_overlap_dice", "activity_outside_fov_fraction",
                   "warnings")


class CycleSceneLogic:
    def __init__(self, scene):
        self.scene = scene
        self.cycle = None
        self.timepoints: List[Dict[str, Any]] = []  # per time point: nodes and data
        self.registrations: List[Any] = []
        self.reference_index: Optional[int] = None

    def load_cycle(self, input_dir: str, *, calibration_cps_per_mbq: Optional[float] = None,
                   progress: Optional[Callable[[float, str], None]] = None) -> str:
        """Load every time point; returns a one-paragraph summary."""
        from startnet.dicomio import Overrides, load_cycle

        if progress:
            progress(0.05, "reading DICOM")
        self.cycle = load_cycle(input_dir, overrides=Overrides(calibration_cps_per_mbq=calibration_cps_per_mbq))
        self.timepoints, self.registrations, self.reference_index = [], [], None
        n = len(self.cycle.timepoints)
        for index, tp in enumerate(self.cycle.timepoints):
            label = f"{tp.hours_post_injection:.1f} h"
            spect = sitk_to_volume(self.scene, tp.spect_bqml, f"SPECT {label} (Bq/mL)")
            set_volume_attributes(spect, {"startnet.hours_post_injection": tp.hours_post_injection,
                                          "startnet.units": "Bq/mL", "DICOM.SeriesInstanceUID": tp.spect_series_uid})
            ct = None
            if tp.ct_hu is not None:
                ct = sitk_to_volume(self.scene, tp.ct_hu, f"CT {label}")
                set_volume_attributes(ct, {"startnet.hours_post_injection": tp.hours_post_injection,
                                           "DICOM.SeriesInstanceUID": tp.ct_series_uid or ""})
            self.timepoints.append({"index": index, "hours": tp.hours_post_injection, "spect_node": spect,
                                    "ct_node": ct, "timepoint": tp})
            if progress:
                progress(0.1 + 0.9 * (index + 1) / n, f"loaded time point {index + 1}/{n}")
        hours = ", ".join(f"{t['hours']:.1f} h" for t in self.timepoints)
        warnings = "".join(f"\nwarning: {w}" for w in self.cycle.warnings)
        return (f"{n} time points ({hours}) of patient {self.cycle.patient_id}; injected "
                f"{self.cycle.injected_activity_mbq:.0f} MBq at {self.cycle.injection_datetime:%Y-%m-%d %H:%M} UTC"
                + warnings)

    def _reference(self, reference_index: Optional[int]) -> int:
        from startnet.cycle.run import choose_reference

        if not self.timepoints:
            raise InputError("load a cycle first")
        return choose_reference([t["hours"] for t in self.timepoints], reference_index)

    def reference_ct_node(self, reference_index: Optional[int] = None):
        return self.timepoints[self._reference(reference_index)]["ct_node"]

    def register(self, reference_index: Optional[int] = None, *, deformable: bool = False,
                 progress: Optional[Callable[[float, str], None]] = None):
        """Register all time points onto the reference; returns the quality table node."""
        from startnet.cycle.run import registration_entry
        from startnet.registration import register_cycle

        reference = self._reference(reference_index)
        if any(t["timepoint"].ct_hu is None for t in self.timepoints):
            raise InputError("every time point needs its CT for registration; a CT is missing in this cycle")

        def report(done: int, total: int) -> None:
            if progress:
                progress(done / total, f"registered {done}/{total}")

        self.registrations = register_cycle([t["timepoint"].ct_hu for t in self.timepoints],
                                            [t["timepoint"].spect_bqml for t in self.timepoints], reference,
                                            deformable=deformable, check_images=True, progress=report)
        self.reference_index = reference
        rows = []
        for t, registration in zip(self.timepoints, self.registrations):
            entry = registration_entry(registration)
            if not registration.is_reference and registration.rigid is not None:
                t["transform_node"] = sitk_to_transform_node(self.scene, registration.rigid.transform,
                                                             f"Reference to {t['hours']:.1f} h")
                t["ct_node"].SetAndObserveTransformNodeID(t["transform_node"].GetID())
            t["registered_spect_node"] = sitk_to_volume(self.scene, registration.spect_on_reference,
                                                        f"SPECT {t['hours']:.1f} h on reference (Bq/mL)")
            t["registration"] = registration
            rows.append({
                "index": entry["index"], "hours_post_injection": round(t["hours"], 2), "reference": entry["reference"],
                "translation_mm": " ".join(f"{v:.2f}" for v in entry["translation_mm"]),
                "rotation_deg": " ".join(f"{v:.2f}" for v in entry["rotation_deg"]),
                "metric_before": entry.get("metric_before"), "metric_after": entry.get("metric_after"),
                "body_overlap_dice": entry.get("body_overlap_dice"),
                "activity_outside_fov_fraction": entry["activity_outside_fov_fraction"],
                "warnings": "; ".join(entry["warnings"]
                                      + (["B-spline refinement used for the SPECT; the CT is shown with its rigid "
                                          "part"] if registration.deformable is not None else [])
                                      + (["IMPLAUSIBLE"] if registration.implausible else [])),
            })
        return table_from_records(self.scene, rows, "Registration quality", columns=list(QUALITY_COLUMNS))

    def quality_summary(self) -> str:
        lines = []
        for t in self.timepoints:
            registration = t.get("registration")
            if registration is None or registration.is_reference:
                continue
            rigid = registration.rigid
            moved = float(np.linalg.norm(rigid.translation_mm)) if rigid is not None else 0.0
            flag = "  IMPLAUSIBLE: check it" if registration.implausible else ""
            lines.append(f"{t['hours']:.1f} h: moved {moved:.1f} mm, rotation {rigid.rotation_angle_deg:.2f} deg{flag}")
        return "\n".join(lines)

    def check_image_node(self, index: Optional[int] = None):
        """Checkerboard of the reference CT and one registered CT (default: the latest time point)."""
        from startnet.registration import checkerboard

        if not self.registrations:
            raise InputError("register the time points first")
        candidates = [r for r in self.registrations if not r.is_reference]
        if not candidates:
            raise InputError("only one time point: nothing to check")
        chosen = candidates[-1] if index is None else self.registrations[index]
        reference_ct = self.timepoints[self.reference_index]["timepoint"].ct_hu
        image = checkerboard(reference_ct, chosen.ct_on_reference)
        hours = self.timepoints[chosen.index]["hours"]
        return sitk_to_volume(self.scene, image, f"Check image reference vs {hours:.1f} h")
