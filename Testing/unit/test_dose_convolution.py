"""FFT convolution (n + h padding, shared forward transform, real spectra) vs direct references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from scipy import ndimage

from startnet.dosimetry.convolution import convolve_same, convolve_small
from startnet.errors import GeometryError


@pytest.mark.parametrize("kernel_shape", [(7, 41, 5), (3, 3, 3), (61, 61, 61)])
def test_matches_fftconvolve_same(kernel_shape):
    rng = np.random.default_rng(1)
    vol = rng.random((20, 30, 25)).astype(np.float32)
    general = rng.random(kernel_shape).astype(np.float32)
    symmetric = 0.5 * (general + general[::-1, ::-1, ::-1])  # real spectrum path
    outs = convolve_same(vol, [general, symmetric])
    for kernel, out in zip((general, symmetric), outs):
        ref = scipy.signal.fftconvolve(vol.astype(np.float64), kernel.astype(np.float64), mode="same")
        assert out.shape == vol.shape and out.dtype == np.float32
        assert np.abs(out - ref).max() <= 2e-6 * np.abs(ref).max()


def test_small_direct_convolution_matches():
    rng = np.random.default_rng(2)
    vol = rng.random((9, 8, 7)).astype(np.float32)
    kernel = rng.random((3, 3, 3)).astype(np.float32)
    expected = ndimage.convolve(vol.astype(np.float64), kernel.astype(np.float64), mode="constant")
    np.testing.assert_allclose(convolve_small(vol, kernel), expected, rtol=1e-5)
    np.testing.assert_allclose(convolve_same(vol, [kernel])[0], expected, rtol=1e-4, atol=1e-6)


def test_rejects_even_kernels_and_2d_maps():
    with pytest.raises(GeometryError, match="odd"):
        convolve_same(np.zeros((4, 4, 4)), [np.zeros((2, 3, 3))])
    with pytest.raises(GeometryError, match="3-D"):
        convolve_same(np.zeros((4, 4)), [np.zeros((3, 3, 3))])
