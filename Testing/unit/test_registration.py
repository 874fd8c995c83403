"""Rigid/deformable registration, activity-conserving resampling and check images on synthetic
volumes whose true motion is known exactly (the phantom tests are in test_registration_phantom)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError
from startnet.registration import (
    checkerboard,
    difference_image,
    jacobian_determinant,
    refine_bspline,
    register_cycle,
    register_rigid,
    resample_activity,
    resample_activity_checked,
    total_activity_bq,
    transform_error,
)

SPACING = (3.0, 3.0, 4.0)
SHAPE = (56, 96, 128)  # z, y, x


def _grid():
    nz, ny, nx = SHAPE
    z, y, x = np.mgrid[:nz, :ny, :nx].astype(float)
    return (x - nx / 2) * SPACING[0], (y - ny / 2) * SPACING[1], (z - nz / 2) * SPACING[2]


def _image(array, origin_shift=(0.0, 0.0, 0.0)):
    nz, ny, nx = SHAPE
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(SPACING)
    image.SetOrigin(tuple(-n / 2 * s + o for n, s, o in zip((nx, ny, nz), SPACING, origin_shift)))
    return image


def synthetic_ct(seed=1):
    """Torso-like CT (HU): fat body, soft tissue, two organs, lung, spine, noise."""
    X, Y, Z = _grid()
    ct = np.full(SHAPE, -1000.0)
    ct[(X / 150) ** 2 + (Y / 100) ** 2 < 1] = -90
    ct[(X / 120) ** 2 + (Y / 80) ** 2 < 1] = 40
    ct[((X - 40) / 35) ** 2 + ((Y + 20) / 30) ** 2 + (Z / 60) ** 2 < 1] = 60
    ct[((X + 50) / 25) ** 2 + ((Y - 30) / 20) ** 2 + ((Z - 20) / 40) ** 2 < 1] = 30
    ct[(X / 15) ** 2 + ((Y - 60) / 15) ** 2 < 1] = 700
    ct[((X + 40) / 30) ** 2 + ((Y + 10) / 25) ** 2 + ((Z + 60) / 40) ** 2 < 1] = -800
    ct += np.random.default_rng(seed).normal(0.0, 20.0, SHAPE)
    return _image(ct)


def synthetic_spect():
    """Hot spheres (Bq/mL) on a warm background, all well inside the field of view."""
    X, Y, Z = _grid()
    spect = np.zeros(SHAPE)
    spect[(X / 120) ** 2 + (Y / 80) ** 2 < 1] = 1000.0
    spect[((X - 40) ** 2 + (Y + 20) ** 2 + Z ** 2) < 20 ** 2] = 50000.0
    spect[((X + 50) ** 2 + (Y - 30) ** 2 + (Z - 20) ** 2) < 9 ** 2] = 120000.0
    return _image(spect)


def moved(image, transform, crop_slices=6, default=-1000.0):
    """The image as the scanner would see the moved patient: ``transform`` maps reference points
    to moved points; the slices at both ends are cropped so no padding enters the field of view."""
    out = sitk.Resample(image, image, transform.GetInverse(), sitk.sitkLinear, default)
    return out[:, :, crop_slices:-crop_slices] if crop_slices else out


def true_motion(angles_deg=(3.0, -2.0, 4.0), translation_mm=(7.3, -4.2, 9.1)):
    transform = sitk.Euler3DTransform()
    transform.SetCenter((5.0, -3.0, 2.0))
    transform.SetRotation(*np.radians(angles_deg))
    transform.SetTranslation(translation_mm)
    return transform


PROBES = [(0, 0, 0), (100, 60, 80), (-100, -60, -80), (100, -60, 0), (-100, 60, 40)]


@pytest.fixture(scope="module")
def reference_ct():
    return synthetic_ct()


def test_rigid_recovers_known_motion(reference_ct):
    truth = true_motion()
    moving_ct = moved(synthetic_ct(seed=2), truth)
    result = register_rigid(reference_ct, moving_ct)
    point_error_mm, rotation_error_deg = transform_error(result.transform, truth, PROBES)
    assert point_error_mm < 0.5
    assert rotation_error_deg < 0.2
    assert result.metric_after < result.metric_before
    assert not result.implausible and result.implausible_reason == ""
    assert result.body_overlap_dice > 0.97
    assert result.rotation_angle_deg == pytest.approx(np.degrees(np.arccos((np.trace(
        np.reshape(truth.GetMatrix(), (3, 3))) - 1) / 2)), abs=0.2)
    # translation_mm is the displacement of the centre of rotation
    centre = np.array(result.center_mm)
    expected = np.array(truth.TransformPoint(tuple(centre))) - centre
    np.testing.assert_allclose(result.translation_mm, expected, atol=0.5)


def test_rigid_is_deterministic(reference_ct):
    moving_ct = moved(synthetic_ct(seed=3), true_motion((1.0, 0.5, -1.5), (-3.0, 2.0, 4.0)))
    first = register_rigid(reference_ct, moving_ct)
    second = register_rigid(reference_ct, moving_ct)
    # same samples, same path; only multi-threaded summation order may differ (~1e-12)
    np.testing.assert_allclose(first.transform.GetParameters(), second.transform.GetParameters(), atol=1e-8)


def test_large_rotation_is_flagged_implausible(reference_ct):
    moving_ct = moved(reference_ct, true_motion((0.0, 0.0, 25.0), (0.0, 0.0, 0.0)), crop_slices=0)
    result = register_rigid(reference_ct, moving_ct)
    assert result.implausible
    assert "rotation" in result.implausible_reason or "overlap" in result.implausible_reason
    assert any(w.startswith("implausible registration") for w in result.warnings)


def test_rigid_rejects_non_ct_input(reference_ct):
    empty = sitk.Image(reference_ct.GetSize(), sitk.sitkFloat32) - 1000.0
    empty.CopyInformation(reference_ct)
    with pytest.raises(GeometryError, match="no body"):
        register_rigid(reference_ct, empty)
    with pytest.raises(InputError, match="3D"):
        register_rigid(reference_ct, sitk.Image([10, 10], sitk.sitkFloat32))


def test_resampling_conserves_activity_locally_and_in_total():
    spect = synthetic_spect()
    truth = true_motion()
    moved_spect = moved(spect, truth, crop_slices=0, default=0.0)
    back = resample_activity_checked(moved_spect, truth, spect)
    total_in = total_activity_bq(moved_spect)
    assert total_activity_bq(back.image) == pytest.approx(back.total_inside_reference_fov_bq, rel=1e-6)
    assert back.fraction_outside_fov < 1e-3
    assert total_activity_bq(back.image) == pytest.approx(total_in, rel=0.005)
    # the large sphere keeps its activity (closed form: 4/3 pi r^3 * C, voxelised in the truth)
    X, Y, Z = _grid()
    region = ((X - 40) ** 2 + (Y + 20) ** 2 + Z ** 2) < 32 ** 2
    sphere_truth = float(sitk.GetArrayFromImage(spect)[region].sum())
    sphere_back = float(sitk.GetArrayFromImage(back.image)[region].sum())
    assert sphere_back == pytest.approx(sphere_truth, rel=0.005)
    assert float(sitk.GetArrayFromImage(back.image).min()) >= 0.0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(resample_activity(moved_spect, truth, spect)),
                                  sitk.GetArrayFromImage(back.image))


def test_activity_outside_reference_fov_is_reported_not_redistributed():
    spect = synthetic_spect()
    shift = sitk.TranslationTransform(3, (0.0, 0.0, 0.0))
    small_reference = spect[:, :, 14:]  # the reference FOV misses the lowest 14 slices
    out = resample_activity_checked(spect, shift, small_reference)
    arr = sitk.GetArrayFromImage(spect)
    expected_outside = float(arr[:14].sum()) / float(arr.sum())
    assert out.fraction_outside_fov == pytest.approx(expected_outside, rel=1e-6)
    assert total_activity_bq(out.image) == pytest.approx(total_activity_bq(spect) * (1 - expected_outside),
                                                         rel=1e-6)


def test_resampling_refuses_non_activity_images():
    spect = synthetic_spect()
    with pytest.raises(InputError, match="negative"):
        resample_activity(spect * -1.0, sitk.Euler3DTransform(), spect)
    with pytest.raises(InputError, match="3D"):
        resample_activity(sitk.Image([8, 8], sitk.sitkFloat32), sitk.Euler3DTransform(), spect)


def test_deformable_resampling_multiplies_by_jacobian():
    # A uniform 1.1x expansion about the origin as a displacement field (a non-linear transform
    # object): the reference sees the moving concentration diluted... concentrated by det J = 1.1^3.
    X, Y, Z = _grid()
    blob = _image(1000.0 * np.exp(-(X ** 2 + Y ** 2 + Z ** 2) / (2 * 15.0 ** 2)))
    field = sitk.PhysicalPointSource(sitk.sitkVectorFloat64, blob.GetSize(), blob.GetOrigin(), blob.GetSpacing())
    field = sitk.Compose([sitk.VectorIndexSelectionCast(field, i) * 0.1 for i in range(3)])
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    jac = sitk.GetArrayFromImage(jacobian_determinant(transform, blob))
    assert float(np.median(jac)) == pytest.approx(1.1 ** 3, rel=1e-3)
    checked = resample_activity_checked(blob, transform, blob)
    assert checked.scale_factor == pytest.approx(1.0, abs=0.005)  # Jacobian alone conserves it
    out = sitk.GetArrayFromImage(checked.image)
    nz, ny, nx = SHAPE
    # C_ref(0) = C_moving(T(0)) det J = 1000 * 1.331 (the origin is a voxel corner: interpolate)
    assert float(out[nz // 2 - 1:nz // 2 + 1, ny // 2 - 1:ny // 2 + 1, nx // 2 - 1:nx // 2 + 1].mean()) \
        == pytest.approx(float(sitk.GetArrayFromImage(blob)[nz // 2 - 1:nz // 2 + 1, ny // 2 - 1:ny // 2 + 1,
                                                            nx // 2 - 1:nx // 2 + 1].mean()) * 1.331, rel=0.02)
    assert total_activity_bq(checked.image) == pytest.approx(total_activity_bq(blob), rel=1e-6)


def _bump_field(reference, amplitude_mm=5.0, sigma_mm=40.0, centre=(30.0, 0.0, 0.0)):
    points = sitk.GetArrayFromImage(sitk.PhysicalPointSource(
        sitk.sitkVectorFloat64, reference.GetSize(), reference.GetOrigin(), reference.GetSpacing()))
    r2 = ((points - np.array(centre)) ** 2).sum(axis=-1)
    field = np.zeros_like(points)
    field[..., 0] = amplitude_mm * np.exp(-r2 / (2 * sigma_mm ** 2))
    image = sitk.GetImageFromArray(field, isVector=True)
    image.CopyInformation(reference)
    return sitk.DisplacementFieldTransform(image)


@pytest.mark.slow
def test_bspline_refinement_recovers_a_smooth_local_deformation():
    # moving(p) = reference(p + d(p)): the true fixed->moving map sends c to y with y + d(y) = c.
    # The volumes are cropped around the deformation to keep the test short (cost ~ samples x
    # control points).
    full = synthetic_ct()
    centre = np.array((-40.0, -10.0, -40.0))  # lung edge: a feature the CT can see
    warp = _bump_field(full, centre=tuple(centre))
    reference_ct = full[14:90, 10:80, 0:40]
    moving_ct = sitk.Resample(synthetic_ct(seed=4), full, warp, sitk.sitkLinear, -1000.0)[14:90, 10:80, 2:38]
    target = centre.copy()
    for _ in range(50):
        target = centre - np.array(warp.TransformPoint(tuple(target))) + target
    rigid = register_rigid(reference_ct, moving_ct)
    refined = refine_bspline(reference_ct, moving_ct, rigid.transform, iterations=30)
    rigid_error = np.linalg.norm(np.subtract(rigid.transform.TransformPoint(tuple(centre)), target))
    refined_error = np.linalg.norm(np.subtract(refined.transform.TransformPoint(tuple(centre)), target))
    assert rigid_error > 3.0
    assert refined_error < 1.0
    assert not refined.implausible
    assert 0.8 <= refined.jacobian_min < 1.0 < refined.jacobian_max <= 1.2
    assert 2.0 < refined.max_displacement_mm < 10.0
    assert refined.metric_after < refined.metric_before


def test_checkerboard_and_difference(reference_ct):
    other = reference_ct + 100.0
    diff = sitk.GetArrayFromImage(difference_image(reference_ct, other))
    np.testing.assert_allclose(diff, 100.0, atol=1e-3)
    board = sitk.GetArrayFromImage(checkerboard(reference_ct, other, squares=(2, 2, 2)))
    ref = sitk.GetArrayFromImage(reference_ct)
    assert board[0, 0, 0] == pytest.approx(ref[0, 0, 0])
    assert board[0, 0, -1] == pytest.approx(ref[0, 0, -1] + 100.0)
    with pytest.raises(GeometryError, match="not on the grid"):
        difference_image(reference_ct, reference_ct[:, :, 2:])


def test_register_cycle_puts_every_spect_on_the_reference_grid(reference_ct):
    spect = synthetic_spect()
    motions = [true_motion((0.5, 0.5, -1.0), (2.0, 3.0, -4.0)), None, true_motion()]
    cts, spects = [], []
    for motion in motions:
        if motion is None:
            cts.append(reference_ct)
            spects.append(spect)
        else:
            cts.append(moved(reference_ct, motion))
            spects.append(moved(spect, motion, crop_slices=0, default=0.0))
    calls = []
    results = register_cycle(cts, spects, 1, check_images=True, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert results[1].is_reference and results[1].rigid is None
    for result, motion, moving_spect in zip(results, motions, spects):
        assert result.spect_on_reference.GetSize() == spect.GetSize()
        assert total_activity_bq(result.spect_on_reference) == pytest.approx(
            total_activity_bq(moving_spect), rel=0.005)
        if motion is not None:
            assert transform_error(result.transform, motion, PROBES)[0] < 0.5
            assert result.ct_on_reference.GetSize() == reference_ct.GetSize()
            assert not result.implausible
    with pytest.raises(InputError, match="reference index"):
        register_cycle(cts, spects, 5)
    with pytest.raises(InputError, match="one CT per SPECT"):
        register_cycle(cts, spects[:2], 0)


def test_register_cycle_with_deformable_refinement_conserves_activity():
    full, spect = synthetic_ct(), synthetic_spect()
    warp = _bump_field(full, centre=(-40.0, -10.0, -40.0))
    crop, crop_moving = (slice(14, 90), slice(10, 80), slice(0, 40)), (slice(14, 90), slice(10, 80), slice(2, 38))
    cts = [full[crop], sitk.Resample(synthetic_ct(seed=4), full, warp, sitk.sitkLinear, -1000.0)[crop_moving]]
    spects = [spect[crop], sitk.Resample(spect, full, warp, sitk.sitkLinear, 0.0)[crop_moving]]
    results = register_cycle(cts, spects, 0, deformable=True, bspline_options={"iterations": 20})
    moved = results[1]
    assert isinstance(moved.transform, sitk.CompositeTransform) and moved.deformable is not None
    assert not moved.implausible
    assert total_activity_bq(moved.spect_on_reference) == pytest.approx(total_activity_bq(spects[1]), rel=0.005)
    # the Jacobian-weighted interpolation alone is already close to conserving (global factor ~1)
    assert moved.activity.scale_factor == pytest.approx(1.0, abs=0.01)
