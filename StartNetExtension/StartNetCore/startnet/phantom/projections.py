"""The NM TOMO projections of one phantom time point: what each camera head counted.

One NM Image Storage multi-frame file, ImageType ORIGINAL\\PRIMARY\\TOMO\\EMISSION (acquisition
data, not a reconstruction), in the visit's study. Frames are ordered by Energy Window Vector,
Detector Vector, Rotation Vector, Angular View Vector (FrameIncrementPointer), one rotation of
``projections_per_head`` views per head, ActualFrameDuration per view in the Rotation Information
Sequence. A single energy window spans the whole spectrum the heads process (all events, scatter
included), so its frames sum to each head's observed total-spectrum counts ``R_obs,h x T``
(:mod:`startnet.phantom.deadtime`); that sum is what ``startnet run --dead-time-s`` reads.
CountsAccumulated holds the counts of all frames. The frames are flat (the counts of a view spread
evenly over the matrix): only their totals carry information, no spatial projection is simulated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from startnet.errors import InputError
from startnet.phantom.dicom_writer import NM_IMAGE_STORAGE, _base, _ds_text, _write, set_energy_window, uid

MATRIX = 32  # rows = columns of each projection frame
TOTAL_WINDOW_KEV = (20.0, 250.0)  # every event a head processes


def _frames(per_view_counts: np.ndarray, where: str) -> np.ndarray:
    """uint16 frames (frame, MATRIX, MATRIX) whose sums are the (rounded) counts of each view."""
    totals = np.rint(per_view_counts).astype(np.int64)
    pixels = MATRIX * MATRIX
    base, remainder = np.divmod(totals, pixels)
    if (base + (remainder > 0)).max(initial=0) > np.iinfo(np.uint16).max:
        raise InputError(f"PhantomConfig: {where}: {totals.max()} counts in one projection view do not fit "
                         f"{MATRIX} x {MATRIX} uint16 pixels; lower head_total_cps_per_mbq or frame_duration_s")
    flat = np.repeat(base[:, None], pixels, axis=1)
    flat[np.arange(pixels)[None, :] < remainder[:, None]] += 1
    return flat.reshape(-1, MATRIX, MATRIX).astype(np.uint16)


def write_nm_projections(phantom, tp, path: Path, study_uid: str, frame_uid: str) -> Path:
    """The projections of time point ``tp`` (its heads' observed counts) as one NM file at ``path``."""
    config = phantom.config
    views = int(config.projections_per_head)
    view_s = config.view_duration_ms / 1000.0
    observed = np.asarray(tp.head_counting.observed_cps, dtype=np.float64)
    heads = len(observed)
    per_view = np.repeat(observed * view_s, views)  # head-major: head 1's views, then head 2's
    frames = _frames(per_view, f"time point {tp.hours_post_injection:g} h")
    series_uid = uid(config.patient_id, config.uid_key, tp.index, "nm-projections-series")
    sop_uid = uid(config.patient_id, config.uid_key, tp.index, "nm-projections")
    ds = _base(phantom, tp, study_uid, series_uid, frame_uid, "NM", NM_IMAGE_STORAGE, sop_uid, 4,
               "SPECT Lu177 projections", tp.acquisition_datetime)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = int(frames.shape[0])
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    ds.EnergyWindowVector = [1] * frames.shape[0]
    ds.DetectorVector = [h + 1 for h in range(heads) for _ in range(views)]
    ds.RotationVector = [1] * frames.shape[0]
    ds.AngularViewVector = [v + 1 for _ in range(heads) for v in range(views)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = MATRIX
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    fov_mm = config.spect_grid.size_xyz[0] * config.spect_grid.spacing_mm[0]
    ds.PixelSpacing = [_ds_text(fov_mm / MATRIX)] * 2
    ds.Units = "CNTS"
    ds.CountsAccumulated = int(min(2**31 - 1, int(frames.astype(np.int64).sum())))
    ds.NumberOfDetectors = heads
    ds.NumberOfRotations = 1
    rotation = Dataset()
    rotation.StartAngle = "0"
    rotation.AngularStep = _ds_text(180.0 / views)
    rotation.RotationDirection = "CW"
    rotation.ScanArc = "180"
    rotation.ActualFrameDuration = config.view_duration_ms
    rotation.NumberOfFramesInRotation = views
    ds.RotationInformationSequence = Sequence([rotation])
    set_energy_window(ds, "total spectrum", TOTAL_WINDOW_KEV)
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    _write(ds, path)
    return path
