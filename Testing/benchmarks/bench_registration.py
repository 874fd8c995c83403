"""Rigid registration of one time point on a clinical-size CT (512 x 512 x 300) against one
full-resolution linear resample of that CT (the unit of cost: what applying the result takes).

The CTs are the phantom's reference and moved CTs (small preset) resampled onto a clinical grid
(0.977 x 0.977 x 2 mm) with CT noise, so the true motion is known and the accuracy is reported
beside the ratio.
"""

from __future__ import annotations

import time

import numpy as np
import SimpleITK as sitk

from startnet.phantom import PhantomConfig, build_phantom
from startnet.registration import register_rigid, rotation_angle_deg
from startnet.segmentation import find_kidney_seeds, segment_kidney_from_seed
from startnet.segmentation import seeded as seeded_module

SIZE = (512, 512, 300)
SPACING = (0.9765625, 0.9765625, 2.0)


def _clinical(image: sitk.Image, seed: int) -> sitk.Image:
    grid = sitk.Image(SIZE, sitk.sitkInt16)
    grid.SetSpacing(SPACING)
    grid.SetOrigin(tuple(-0.5 * (n - 1) * s for n, s in zip(SIZE, SPACING)))
    out = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    noise = np.random.default_rng(seed).normal(0.0, 15.0, SIZE[::-1]).astype(np.float32)
    noisy = sitk.GetImageFromArray(sitk.GetArrayFromImage(out) + noise)
    noisy.CopyInformation(out)
    return sitk.Cast(noisy, sitk.sitkInt16)


def run(table) -> None:
    phantom = build_phantom(PhantomConfig(preset="small", seed=5, noise=False, max_shift_mm=6.0,
                                          max_rotation_deg=3.0, timepoints_h=(24.0, 96.0)))
    fixed = _clinical(phantom.ct_hu, 1)
    moving = _clinical(phantom.timepoints[1].ct_hu, 2)
    truth = phantom.timepoints[1].true_transform

    start = time.perf_counter()
    resampled = sitk.Resample(moving, fixed, truth, sitk.sitkLinear, -1000.0)
    resample_s = time.perf_counter() - start
    del resampled

    start = time.perf_counter()
    result = register_rigid(fixed, moving)
    register_s = time.perf_counter() - start

    probes = [(0.0, 0.0, 0.0), (80.0, 45.0, -10.0), (-75.0, 45.0, -18.0), (100.0, -80.0, 120.0)]
    error_mm = max(float(np.linalg.norm(np.subtract(result.transform.TransformPoint(p), truth.TransformPoint(p))))
                   for p in probes)
    r_est = np.asarray(result.transform.GetMatrix()).reshape(3, 3)
    r_true = np.asarray(truth.GetMatrix()).reshape(3, 3)
    rotation_error = rotation_angle_deg((r_est @ r_true.T).ravel())
    table.add("full-resolution linear resample of the CT", f"{resample_s:.2f} s",
              note=f"{SIZE[0]}x{SIZE[1]}x{SIZE[2]}")
    table.add("rigid registration of one time point", f"{register_s:.2f} s", ratio=register_s / resample_s,
              target="<= 20x", note=f"max point error {error_mm:.2f} mm, rotation error {rotation_error:.3f} deg, "
                                    f"{result.iterations} iterations")

    # automatic kidney seeds + both kidneys grown, clinical CT and a 128^3 x 4.8 mm SPECT grid
    spect_grid = sitk.Image((128, 128, 128), sitk.sitkFloat32)
    spect_grid.SetSpacing((4.7952,) * 3)
    spect_grid.SetOrigin(tuple(-0.5 * 127 * 4.7952 for _ in range(3)))
    spect = sitk.Resample(phantom.timepoints[0].spect_bqml, spect_grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    seeded_module._LAST_GRID.clear()
    start = time.perf_counter()
    proposals = find_kidney_seeds(fixed, spect)
    volumes = [segment_kidney_from_seed(fixed, spect, p.seed_lps).volume_ml for p in proposals if p.seed_lps]
    segment_s = time.perf_counter() - start
    table.add("automatic kidney seeds + both kidneys (CT 512x512x300, SPECT 128^3)", f"{segment_s:.2f} s",
              ratio=segment_s / resample_s, note=f"volumes {', '.join(f'{v:.0f}' for v in volumes)} mL, "
                                                 f"confidence {', '.join(p.confidence for p in proposals)}")
