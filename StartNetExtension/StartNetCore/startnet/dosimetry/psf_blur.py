"""Gaussian PSF blur of a region's share map, computed only around the region's voxels.

``gaussian_blur(a, sigma)`` returns exactly ``scipy.ndimage.gaussian_filter(a, sigma,
mode="constant", truncate=truncate)``: the filter runs on the bounding box of the non-zero voxels
grown by the kernel radius (``int(truncate * sigma + 0.5)`` voxels per axis, as scipy sizes it),
and everything outside that box is zero in the full result too (every kernel tap there meets a
zero). Inside the box each voxel's sum has the same terms in the same order, so the values are
bit for bit those of the full filter; a kidney's share map on a whole-body SPECT grid costs its
own size instead of the grid's (partial-volume transfer matrix, patient PSF check).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from scipy import ndimage


def gaussian_blur(array: np.ndarray, sigma_voxels: Union[float, Sequence[float]], truncate: float = 3.0) -> np.ndarray:
    """``ndimage.gaussian_filter(array, sigma_voxels, mode="constant", truncate=truncate)`` (module doc)."""
    array = np.asarray(array)
    sigmas = np.broadcast_to(np.asarray(sigma_voxels, dtype=float), (array.ndim,))
    occupied = [np.flatnonzero(array.any(axis=tuple(a for a in range(array.ndim) if a != axis)))
                for axis in range(array.ndim)]
    if any(o.size == 0 for o in occupied):
        return np.zeros_like(array)
    box = []
    for o, sigma, n in zip(occupied, sigmas, array.shape):
        radius = int(truncate * float(sigma) + 0.5) if sigma > 1e-15 else 0
        box.append(slice(max(int(o[0]) - radius, 0), min(int(o[-1]) + 1 + radius, n)))
    box = tuple(box)
    if all(b.stop - b.start == n for b, n in zip(box, array.shape)):
        return ndimage.gaussian_filter(array, list(sigmas), mode="constant", truncate=truncate)
    out = np.zeros_like(array)
    out[box] = ndimage.gaussian_filter(array[box], list(sigmas), mode="constant", truncate=truncate)
    return out
