"""``startnet calibrate recovery`` on a 128^3 sphere phantom vs one SPECT-grid FFT convolution.

Measured: reading the NM DICOM with the patient rules plus the PSF fit and recovery coefficients of
six NEMA spheres (``load_acquisition`` + ``measure_recovery``, what the command does besides writing
CAL.json), against ``scipy.signal.fftconvolve`` of the same 128^3 float32 grid with a 31^3 Gaussian
kernel (mode "same"). The fit works on the spheres' bounding box only, one Gaussian filter per
evaluation of the FWHM, so it should cost a few convolutions, not one per voxel.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal

from startnet.calibration.acquisition import load_acquisition
from startnet.calibration.recovery import measure_recovery
from startnet.calibration.spheres import read_spheres
from startnet.dicomio.timing import get_zone
from startnet.phantom.calibration_dicom import write_calibration_scan
from startnet.phantom.calibration_scans import CalibrationScanConfig, CameraSpec, build_calibration_scan


def run(table) -> None:
    table.area = "calibration"
    config = CalibrationScanConfig(kind="spheres", camera=CameraSpec(psf_fwhm_mm=15.0, sensitivity_cps_per_mbq=8.0),
                                   units="bqml", seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_calibration_scan(build_calibration_scan(config), Path(tmp) / "spheres")
        phantom = read_spheres(files.spheres_json, get_zone("Europe/Stockholm"))
        start = time.perf_counter()
        acquisition = load_acquisition(str(files.dicom_dir), reference_utc=phantom.reference_datetime)
        t_load = time.perf_counter() - start
        start = time.perf_counter()
        result = measure_recovery(acquisition, phantom)
        t_fit = time.perf_counter() - start
    grid = np.random.default_rng(0).random((128, 128, 128)).astype(np.float32)
    axis = np.arange(-15, 16) * 4.7952
    g = np.exp(-0.5 * (axis / (15.0 / 2.3548)) ** 2)
    kernel = (g[:, None, None] * g[None, :, None] * g[None, None, :]).astype(np.float32)
    scipy.signal.fftconvolve(grid, kernel, mode="same")  # warm-up (FFT plans)
    start = time.perf_counter()
    scipy.signal.fftconvolve(grid, kernel, mode="same")
    t_ref = time.perf_counter() - start
    total = t_load + t_fit
    table.add("calibrate recovery (128^3, 6 spheres) vs 1 fftconvolve 128^3 * 31^3",
              f"{total:.2f} s vs {t_ref:.3f} s", total / t_ref, "a few convolutions",
              f"read {t_load:.2f} s, fit+RC {t_fit:.2f} s, {result['values']['psf_fit']['fit_evaluations']} "
              f"FWHM evaluations, PSF {result['values']['psf_fwhm_mm']:.2f} mm (true 15)")
