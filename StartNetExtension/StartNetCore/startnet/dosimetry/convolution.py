"""FFT convolution of a voxel map with a centred kernel, output on the input grid.

Real FFTs (scipy.fft, ``workers=2``) in single precision. Only as much zero padding as avoids
wrap-around *into the output region*: an axis of n voxels with a kernel half-width h is padded
to next_fast_len(n + h) (a full linear convolution, as scipy.signal.fftconvolve does, needs
n + 2h); the circular convolution then equals the linear one on the first n samples per axis.

Pruned transforms (memory and time): the 3-D transform is done one axis at a time, skipping the
rows that are known to be zero (forward: the padding) or not needed (inverse: outside the
output), on slabs so that no full-size temporary is made. The kernel is transformed from its
un-wrapped (centred) array and moved to the origin by the shift theorem (a phase ramp per axis).
A point-symmetric kernel (k(-d) = k(d), as all dose kernels) has a real spectrum, stored as
float32. Several kernels share one forward transform of the map. Peak memory: the map's
complex spectrum (~n+h padded, half the last axis) plus one real kernel spectrum plus outputs.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import scipy.fft

from startnet.errors import GeometryError

FFT_WORKERS = 2
SLAB = 8  # planes per slab in the axis-by-axis transforms


def _forward(arr: np.ndarray, padded: Sequence[int], workers: int) -> np.ndarray:
    """rfftn of ``arr`` zero-padded to ``padded`` (complex64, last axis halved), pruned."""
    pz, py, px = padded
    nz, ny, _ = arr.shape
    full = np.zeros((pz, py, px // 2 + 1), dtype=np.complex64)
    for z0 in range(0, nz, SLAB):
        z1 = min(nz, z0 + SLAB)
        rows = scipy.fft.rfft(arr[z0:z1], n=px, axis=2, workers=workers)
        full[z0:z1, :ny] = rows
        full[z0:z1] = scipy.fft.fft(full[z0:z1], axis=1, workers=workers, overwrite_x=True)
    for y0 in range(0, py, SLAB):
        y1 = min(py, y0 + SLAB)
        full[:, y0:y1] = scipy.fft.fft(full[:, y0:y1], axis=0, workers=workers)
    return full


def _inverse_into(spectrum: np.ndarray, padded: Sequence[int], out: np.ndarray, workers: int) -> None:
    """``out[:] = irfftn(spectrum, s=padded)[:nz, :ny, :nx]``, pruned; ``spectrum`` is overwritten."""
    pz, py, px = padded
    nz, ny, nx = out.shape
    for y0 in range(0, py, SLAB):
        y1 = min(py, y0 + SLAB)
        spectrum[:, y0:y1] = scipy.fft.ifft(spectrum[:, y0:y1], axis=0, workers=workers)
    for z0 in range(0, nz, SLAB):
        z1 = min(nz, z0 + SLAB)
        rows = scipy.fft.ifft(spectrum[z0:z1], axis=1, workers=workers)[:, :ny]
        out[z0:z1] = scipy.fft.irfft(rows, n=px, axis=2, workers=workers)[:, :, :nx]


def _kernel_spectrum(kernel: np.ndarray, padded: Sequence[int], workers: int) -> np.ndarray:
    """Spectrum of ``kernel`` with its centre moved to index 0 (circular), real when symmetric."""
    spec = _forward(kernel.astype(np.float32, copy=False), padded, workers)
    # centre at index h -> index 0: multiply by exp(+2 pi i f h / N) along each axis
    for axis, (h, n) in enumerate(zip((s // 2 for s in kernel.shape), padded)):
        m = spec.shape[axis]
        ramp = np.exp(2j * np.pi * np.arange(m) * h / n).astype(np.complex64)
        spec *= ramp.reshape([-1 if a == axis else 1 for a in range(3)])
    if np.abs(spec.imag).max() <= 1e-5 * np.abs(spec.real).max():
        return np.ascontiguousarray(spec.real)
    return spec


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
    k_specs = []
    for k in kernels:
        half = [s // 2 for s in k.shape]
        keep = [min(h, c) for h, c in zip(half, crop_half)]
        cropped = k[tuple(slice(h - c, h + c + 1) for h, c in zip(half, keep))]
        k_specs.append(_kernel_spectrum(cropped, padded, workers))
    spectrum = _forward(vol, padded, workers)
    outputs = []
    for i in range(len(k_specs)):
        k_spec, k_specs[i] = k_specs[i], None
        if i == len(k_specs) - 1:
            product, spectrum = spectrum, None  # last kernel: multiply in place
            product *= k_spec
        else:
            product = spectrum * k_spec
        del k_spec
        out = np.empty(vol.shape, dtype=np.float32)
        _inverse_into(product, padded, out, workers)
        del product
        outputs.append(out)
    return outputs


def convolve_small(volume: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Direct convolution (zero outside the volume) for small kernels such as the electron one."""
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    return ndimage.convolve(vol, np.asarray(kernel, dtype=np.float32), mode="constant", cval=0.0)
