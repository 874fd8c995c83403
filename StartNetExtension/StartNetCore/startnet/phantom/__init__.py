"""Digital phantom patient with known kinetics that writes realistic DICOM and its ground truth.

Public API::

    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
    phantom = build_phantom(PhantomConfig(preset="small", seed=1, noise=False, blur=False))
    files = write_phantom_dicom(phantom, out_dir)   # DICOM/, segmentation.seg.nrrd, labels.*, truth.json

Conventions (details in the modules named):
- Images are SimpleITK, LPS. ``phantom.ct_hu`` (Int16) and ``phantom.labels`` (UInt8, names in
  ``phantom.label_names``) are in the reference pose (``phantom.reference_index``; default: the
  time point closest to 24 h).
- ``phantom.timepoints[i]``: ``hours_post_injection``, ``acquisition_datetime`` (UTC, SPECT start),
  ``ct_hu`` and ``spect_bqml`` (Float32 Bq/mL at the acquisition start) in that visit's pose,
  ``activity_true_bqml`` (noise-free, unblurred), ``counts`` (UInt16, units="counts"),
  ``true_transform`` (:mod:`.motion`: maps a REFERENCE point to the same anatomy in visit i, so
  ``sitk.Resample(tp_image, reference_image, true_transform)`` brings visit i onto the reference).
- Activity is exactly conserved on the SPECT grid (:mod:`.render`); ``phantom.render_activity_bqml``,
  ``phantom.structure_fraction`` and ``phantom.render_tia_mbq_h`` give per-structure truths on it.
- ``phantom.truth`` (= truth.json, :mod:`.truth`): per structure volume_ml, mass_g, activity_mbq
  per time point, tia_mbq_h, tac (a_i, k_i), electron_led_gy, photon_gy (water point kernel,
  :mod:`.photon`), mean_dose_gy; kidney cortex/medulla in ``substructures``; transforms; injection.
- DICOM (:mod:`.dicom_writer`): CT one file per slice + NM multi-frame SPECT per visit sharing a
  Frame of Reference; RadionuclideTotalDose in MBq (NM Isotope Module; "Bq" optional); top-level
  ActualFrameDuration = whole acquisition T (= rotation time per view x views); counts
  N = CF A(t_start) (1 - exp(-lambda T)) / lambda; Swedish local times with TimezoneOffsetFromUTC.
- Presets and timing (:mod:`.config`): "small" (CT 128x128x98 @ 3.5 mm, SPECT 64x64x48 @ 7 mm),
  "clinical" (CT 512x512x312 @ 0.98x0.98x2 mm, SPECT 128^3 @ 4.7952 mm).
"""

from __future__ import annotations

import importlib
from typing import Any

# Exports resolve on first use (PEP 562) so that importing the command-line registration or the
# configuration does not load the numerical stack (numba kernels) until a phantom is built.
_EXPORTS = {
    "GridSpec": "startnet.phantom.config",
    "PhantomConfig": "startnet.phantom.config",
    "PhantomFiles": "startnet.phantom.export",
    "TimepointFiles": "startnet.phantom.export",
    "write_phantom_dicom": "startnet.phantom.export",
    "Phantom": "startnet.phantom.model",
    "PhantomTimepoint": "startnet.phantom.model",
    "build_phantom": "startnet.phantom.model",
    "SampleCycle": "startnet.phantom.sample",
    "ensure_sample_cycle": "startnet.phantom.sample",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'startnet.phantom' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
