"""Work ``startnet run`` no longer repeats (issue 13, per-cycle cost), each with results unchanged.

- HU -> density of an integer CT: a table of every HU value instead of a float64 interpolation per
  voxel; the densities are bit for bit those of the interpolation.
- Registration: the reference CT's working image, body mask and centroid are prepared once for all
  time points, with the same transforms as preparing them per time point.
- Analysis: the body's share of each SPECT voxel (from the whole CT) is computed once per cycle,
  not for the PSF check, the GTM and the GTM at the wider PSF each.
- PSF blur of a region's share map on its own box equals the full-grid Gaussian filter exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from phantom_cycle import phantom_job_inputs
from scipy import ndimage
from test_registration import moved, synthetic_ct, synthetic_spect, true_motion

import startnet.segmentation
from startnet.cycle import analyse_cycle, registered_from_transforms, structures_from_masks
from startnet.dosimetry import density as density_module
from startnet.dosimetry.density import hu_to_density_g_per_ml
from startnet.dosimetry.psf_blur import gaussian_blur
from startnet.phantom import PhantomConfig, build_phantom
from startnet.registration import register_cycle, register_rigid, rigid


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int8, np.uint8])
def test_integer_ct_density_is_a_table_lookup_identical_to_interpolation(dtype, monkeypatch):
    info = np.iinfo(dtype)
    hu = np.random.default_rng(3).integers(info.min, info.max, size=(64, 64, 64), endpoint=True).astype(dtype)
    hu.flat[:2] = (info.min, info.max)
    expected = hu_to_density_g_per_ml(hu.astype(np.float32))  # float input: interpolated per voxel
    sizes = []
    interp = np.interp
    monkeypatch.setattr(density_module.np, "interp", lambda x, *a, **k: sizes.append(np.size(x)) or interp(x, *a, **k))
    got = hu_to_density_g_per_ml(hu)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    # one table of the dtype's values (<= 65536 entries), not the 262144 voxels interpolated
    assert sizes and max(sizes) <= 1 << (8 * np.dtype(dtype).itemsize) < hu.size


def test_register_cycle_prepares_the_reference_ct_once():
    reference, spect = synthetic_ct(), synthetic_spect()
    motions = [true_motion((0.5, 0.5, -1.0), (2.0, 3.0, -4.0)), None, true_motion()]
    cts = [reference if m is None else moved(reference, m) for m in motions]
    spects = [spect if m is None else moved(spect, m, crop_slices=0, default=0.0) for m in motions]
    prepared = []
    working_image = rigid.working_image

    def counting(image, spacing):
        prepared.append(image is reference)
        return working_image(image, spacing)

    mp = pytest.MonkeyPatch()
    mp.setattr(rigid, "working_image", counting)
    try:
        results = register_cycle(cts, spects, 1)
    finally:
        mp.undo()
    assert prepared.count(True) == 1 and prepared.count(False) == 2  # was 2 + 2: the reference per time point
    for result, ct in zip(results, cts):
        if result.rigid is None:
            continue
        alone = register_rigid(reference, ct)  # the reference prepared inside, as before
        # as test_registration's determinism check: only multi-threaded summation order differs
        np.testing.assert_allclose(result.rigid.transform.GetParameters(), alone.transform.GetParameters(), atol=1e-8)
        assert result.rigid.body_overlap_dice == pytest.approx(alone.body_overlap_dice, abs=1e-6)


def test_body_fraction_is_computed_once_per_cycle(tmp_path, monkeypatch):
    phantom = build_phantom(PhantomConfig(preset="small", seed=5))
    inputs = phantom_job_inputs(phantom, tmp_path)
    registered = registered_from_transforms(inputs.cycle, inputs.reference_index, inputs.transforms)
    structures = structures_from_masks(inputs.masks, registered.reference_grid, ct_hu=registered.ct_hu)
    body = sitk.GetArrayFromImage(registered.ct_hu > -500)
    body_calls = []
    resample_mask = startnet.segmentation.resample_mask

    def counting(mask, reference, fractional=False):
        body_calls.append(mask.GetSize() == registered.ct_hu.GetSize()
                          and np.array_equal(sitk.GetArrayViewFromImage(mask), body))
        return resample_mask(mask, reference, fractional)

    monkeypatch.setattr(startnet.segmentation, "resample_mask", counting)
    inputs.options.pvc = "gtm"
    result = analyse_cycle(inputs.options, registered, structures)
    assert body_calls.count(True) == 1  # was 3: the PSF check, the GTM and the GTM at the wider PSF
    assert "GTM" in result.results["structures"]["kidney_left"]["pvc_method"] or \
        "enlarged VOI" in result.results["structures"]["kidney_left"]["pvc_method"]


def test_psf_blur_on_the_region_box_equals_the_full_gaussian_filter():
    rng = np.random.default_rng(8)
    for case in range(25):
        shape = tuple(int(n) for n in rng.integers(6, 40, size=3))
        share = np.zeros(shape, np.float32)
        low = [int(rng.integers(0, n)) for n in shape]
        high = [min(n, lo + int(rng.integers(1, 9))) for lo, n in zip(low, shape)]
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
        share[box] = rng.random(tuple(hi - lo for lo, hi in zip(low, high)))
        sigma = [0.0, 1.3, 2.1] if case % 5 == 0 else list(rng.uniform(0.3, 3.0, size=3))
        assert np.array_equal(gaussian_blur(share, sigma),
                              ndimage.gaussian_filter(share, sigma, mode="constant", truncate=3.0)), case
    assert not gaussian_blur(np.zeros((4, 5, 6), np.float32), 1.0).any()
