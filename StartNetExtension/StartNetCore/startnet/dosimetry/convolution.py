"""FFT convolution of a voxel map with a centred kernel, output on the input grid.

Real FFTs (scipy.fft.rfftn/irfftn, ``workers=2``) in float32. Only as much zero padding as
avoids wrap-around *into the output region*: an axis of n voxels with a kernel half-width h is
padded to next_fast_len(n + h) (a full linear convolution, as scipy.signal.fftconvolve does,
needs n + 2h). The kernel is placed with its centre at index 0 (circularly wrapped), so the
circular convolution equals the linear one on the first n samples of every axis.
Several kernels applied to the same map share one forward transform of the map. Point-symmetric
kernels (k(-d) = k(d), as all dose kernels) have real spectra, stored as float32.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import scipy.fft

from startnet.errors import GeometryError

FFT_WORKERS = 2


def _wrapped_kernel(kernel: np.ndarray, padded_shape: Sequence[int]) -> np.ndarray:
    out = np.zeros(padded_shape, dtype=np.float32)
    half = [s // 2 for s in kernel.shape]
    # index i of the kernel (offset i - half) goes to (i - half) mod N
    idx = [np.arange(-h, h + 1) % n for h, n in zip(half, padded_shape)]
    out[np.ix_(*idx)] = kernel
    return out


def convolve_same(volume: np.ndarray, kernels: Sequence[np.ndarray], workers: int = FFT_WORKERS) -> List[np.ndarray]:
    """``[volume (*) k for k in kernels]`` on the grid of ``volume`` (float32 arrays).

    Kernels must be odd-sized on every axis and are centred; they may be larger than the volume.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise GeometryError(f"convolution: expected a 3-D (z, y, x) volume, got shape {vol.shape}")
    for k in kernels:
        if k.ndim != 3 or any(s % 2 == 0 for s in k.shape):
            raise GeometryError(f"convolution: kernel shape {k.shape} must be 3-D with odd sizes")
    max_half = [max(k.shape[a] // 2 for k in kernels) for a in range(3)]
    # The kernel offsets that matter are at most n - 1; larger ones never reach the output.
    crop_half = [min(h, n - 1) for h, n in zip(max_half, vol.shape)]
    padded = [scipy.fft.next_fast_len(n + h, real=True) for n, h in zip(vol.shape, crop_half)]
    # Kernel spectra first: a point-symmetric kernel (all of ours) has a real spectrum, kept as
    # float32 (half the memory of complex64); then one forward transform of the map.
    k_specs = []
    for k in kernels:
        half = [s // 2 for s in k.shape]
        keep = [min(h, c) for h, c in zip(half, crop_half)]
        cropped = k[tuple(slice(h - c, h + c + 1) for h, c in zip(half, keep))]
        k_spec = scipy.fft.rfftn(_wrapped_kernel(cropped.astype(np.float32, copy=False), padded),
                                 workers=workers, overwrite_x=True)
        if np.abs(k_spec.imag).max() <= 1e-6 * np.abs(k_spec.real).max():
            k_spec = np.ascontiguousarray(k_spec.real)
        k_specs.append(k_spec)
        del k_spec
    spectrum = scipy.fft.rfftn(vol, s=padded, workers=workers)
    outputs = []
    for i in range(len(k_specs)):
        k_spec, k_specs[i] = k_specs[i], None
        if i == len(k_specs) - 1:
            product, spectrum = spectrum, None  # last kernel: multiply in place, no extra spectrum
            product *= k_spec
        else:
            product = spectrum * k_spec
        del k_spec
        result = scipy.fft.irfftn(product, s=padded, workers=workers, overwrite_x=True)
        del product
        outputs.append(np.ascontiguousarray(result[: vol.shape[0], : vol.shape[1], : vol.shape[2]]))
        del result
    return outputs


def convolve_small(volume: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Direct convolution (zero outside the volume) for small kernels such as the electron one."""
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    return ndimage.convolve(vol, np.asarray(kernel, dtype=np.float32), mode="constant", cval=0.0)
