"""Derive the under-estimate of the PVC fallbacks (plain GTM, recovery coefficients) for a kidney.

A cortex-hot kidney (the project phantom's geometry: ellipsoid semi-axes 28 x 22 x 52 mm, medulla
at 0.68 of the axes, cortex:medulla concentration 2-4) in a warm body, next to a liver, imaged
with a Gaussian PSF of 11-15 mm FWHM (the assumed 11 mm and the 13-15 mm seen on real 177Lu
cameras) on 4.8 and 7 mm voxels. Each fallback is run with the assumed PSF of 11 mm and compared
to the true kidney activity; the enlarged VOI (the preferred method) is shown for comparison.

Output: the largest under-estimate per method, the figure ``startnet.dosimetry.pvc_terms`` uses
(``FALLBACK_UNDERESTIMATE``). Run: ``python tools/derive_pvc_fallback_bias.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage

from startnet.cycle.quantify import gtm_activities
from startnet.segmentation.recovery import recovery_coefficient

ASSUMED_PSF_MM = 11.0


def ellipsoid(shape, spacing, centre_mm, axes_mm, scale=1.0):
    zz, yy, xx = (np.indices(shape).astype(float) + 0.5)
    pos = [zz * spacing[0], yy * spacing[1], xx * spacing[2]]
    return sum(((p - c) / (a * scale)) ** 2 for p, c, a in zip(pos, centre_mm, axes_mm)) <= 1.0


def kidney_case(voxel_mm: float, true_psf_mm: float, cortex_to_medulla: float, neighbour: bool = True):
    """(true MBq, plain GTM MBq, enlarged VOI MBq, RC MBq) of one cortex-hot kidney."""
    fov = 240.0
    n = int(round(fov / voxel_mm))
    shape, spacing = (n, n, n), (voxel_mm,) * 3
    centre = (fov / 2, fov / 2, fov / 2 - 40)
    axes = (52.0, 22.0, 28.0)
    kidney = ellipsoid(shape, spacing, centre, axes)
    medulla = ellipsoid(shape, spacing, centre, axes, 0.68)
    body = ellipsoid(shape, spacing, (fov / 2,) * 3, (110.0, 100.0, 110.0))
    liver = ellipsoid(shape, spacing, (fov / 2, fov / 2, fov / 2 + 45), (60.0, 45.0, 40.0)) if neighbour else \
        np.zeros(shape, bool)
    cortex_c, medulla_c, liver_c, body_c = 100_000.0, 100_000.0 / cortex_to_medulla, 12_000.0, 2_000.0
    image = np.where(kidney & ~medulla, cortex_c, 0.0) + np.where(medulla, medulla_c, 0.0)
    image += np.where(liver & ~kidney, liver_c, 0.0) + np.where(body & ~kidney & ~liver, body_c, 0.0)
    voxel_ml = voxel_mm ** 3 / 1000.0
    truth = float(image[kidney].sum()) * voxel_ml * 1e-6
    sigma = true_psf_mm / (2 * math.sqrt(2 * math.log(2))) / voxel_mm
    blurred = ndimage.gaussian_filter(image.astype(np.float32), sigma, mode="constant", truncate=3.0)
    fractions = {"kidney": kidney.astype(np.float32)}
    if neighbour:
        fractions["liver"] = (liver & ~kidney).astype(np.float32)
    plain = gtm_activities([blurred], fractions, spacing, ASSUMED_PSF_MM, body.astype(np.float32),
                           enlarged_voi_fwhm=0.0).activity_mbq["kidney"][0]
    enlarged = gtm_activities([blurred], fractions, spacing, ASSUMED_PSF_MM,
                              body.astype(np.float32)).activity_mbq["kidney"][0]
    volume_ml = float(kidney.sum()) * voxel_ml
    rc = float(blurred[kidney].sum()) * voxel_ml * 1e-6 / recovery_coefficient(volume_ml)
    return truth, plain, enlarged, rc


def main() -> None:
    worst = {"GTM": 0.0, "enlarged VOI": 0.0, "rc": 0.0}
    for voxel, psf, ratio in itertools.product((4.8, 7.0), (11.0, 13.0, 15.0), (2.0, 4.0)):
        truth, plain, enlarged, rc = kidney_case(voxel, psf, ratio)
        errs = {"GTM": plain / truth - 1, "enlarged VOI": enlarged / truth - 1, "rc": rc / truth - 1}
        for k, e in errs.items():
            worst[k] = min(worst[k], e)
        print(f"voxel {voxel} mm, PSF {psf:4.1f} mm, cortex:medulla {ratio:g}: "
              + ", ".join(f"{k} {100 * e:+.1f} %" for k, e in errs.items()))
    print("largest under-estimate: " + ", ".join(f"{k} {100 * -e:.1f} %" for k, e in worst.items()))


if __name__ == "__main__":
    main()
