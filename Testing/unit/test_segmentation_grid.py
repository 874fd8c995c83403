"""SPECT-grid masks brought onto the CT grid (startnet.segmentation.mask_on_grid)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from startnet.segmentation import mask_on_grid, resample_mask


def _grid(size, spacing, origin):
    image = sitk.Image([size] * 3, sitk.sitkUInt8)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin([origin] * 3)
    return image


def _sphere(image, centre_mm, radius_mm):
    z, y, x = np.indices(tuple(reversed(image.GetSize())))
    points = [np.asarray(image.GetOrigin())[i] + np.array([x, y, z][i]) * image.GetSpacing()[i] for i in range(3)]
    return sum((p - c) ** 2 for p, c in zip(points, centre_mm)) <= radius_mm ** 2


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_smoother_than_nearest_and_round_trips():
    coarse = _grid(32, 7.0, 0.0)  # SPECT-like
    fine = _grid(64, 3.5, -1.75)  # CT-like, voxel centres between the SPECT ones
    centre, radius = (110.3, 105.7, 112.1), 30.0
    spect_mask = sitk.GetImageFromArray(_sphere(coarse, centre, radius).astype(np.uint8))
    spect_mask.CopyInformation(coarse)
    truth = _sphere(fine, centre, radius)
    upsampled = mask_on_grid(spect_mask, fine)
    nearest = sitk.GetArrayFromImage(sitk.Resample(spect_mask, fine, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0
    assert upsampled.shape == truth.shape
    assert _dice(upsampled, truth) > _dice(nearest, truth)
    back, _ = resample_mask(_as_image(upsampled, fine), coarse)
    original = sitk.GetArrayFromImage(spect_mask) > 0
    assert (back != original).sum() <= 0.01 * original.sum()


def _as_image(mask, reference):
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def test_empty_mask_and_region_equals_full_resample():
    coarse = _grid(16, 8.0, 0.0)
    fine = _grid(40, 3.0, 2.0)
    empty = sitk.Image(coarse)
    assert not mask_on_grid(empty, fine).any()
    array = np.zeros((16, 16, 16), np.uint8)
    array[3:7, 5:9, 2:6] = 1
    mask = _as_image(array, coarse)
    full = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), fine, sitk.Transform(),
                                                sitk.sitkLinear, 0.0)) >= 0.5
    np.testing.assert_array_equal(mask_on_grid(mask, fine), full)
