"""DICOM RTSTRUCT input: contours rasterised onto the CT they were drawn on (volumes, holes, overlaps, names)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from rtstruct_factory import ellipsoid_contours, ellipsoid_volume_ml, write_rtstruct

from startnet.cycle.structures import structures_from_file
from startnet.errors import GeometryError, InputError
from startnet.segmentation import load_segmentation
from startnet.segmentation.rtstruct import check_referenced_ct, read_rtstruct

SPACING = (0.9765625, 0.9765625, 2.5)
ORIGIN = (-125.0, -125.0, -100.0)


def _ct(size=(256, 256, 81)):
    image = sitk.Image(list(size), sitk.sitkInt16)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    return image


def _planes(ct):
    return [ORIGIN[2] + k * SPACING[2] for k in range(ct.GetSize()[2])]


def _write(tmp_path, rois, series_uid="1.2.3.4", name="rs.dcm"):
    return write_rtstruct(str(tmp_path / name), rois, series_uid=series_uid, frame_of_reference_uid="1.2.3.5")


def test_sphere_and_ellipsoid_volumes_within_2_percent(tmp_path):
    ct = _ct()
    planes = _planes(ct)
    sphere, ellipsoid = (20.0, 20.0, 20.0), (35.0, 22.0, 48.0)
    path = _write(tmp_path, [("GTV", ellipsoid_contours((40.0, -30.0, 10.0), sphere, planes)),
                             ("Liver", ellipsoid_contours((-40.0, 20.3, -5.0), ellipsoid, planes))])
    seg = load_segmentation(path, ct)
    assert seg.names == ["gtv", "liver"]
    assert seg.volume_ml("gtv") == pytest.approx(ellipsoid_volume_ml(sphere), rel=0.02)
    assert seg.volume_ml("liver") == pytest.approx(ellipsoid_volume_ml(ellipsoid), rel=0.02)


def test_holes_and_several_contours_per_slice(tmp_path):
    ct = _ct()
    planes = _planes(ct)
    outer, inner = (30.0, 30.0, 30.0), (15.0, 15.0, 15.0)
    shell = ellipsoid_contours((0.0, 0.0, 0.0), outer, planes) + ellipsoid_contours((0.0, 0.0, 0.0), inner, planes)
    pair = ellipsoid_contours((-60.0, 60.0, 0.0), (12.0,) * 3, planes) + \
        ellipsoid_contours((60.0, 60.0, 0.0), (16.0,) * 3, planes)
    seg = load_segmentation(_write(tmp_path, [("shell", shell), ("two spheres", pair)]), ct)
    assert seg.volume_ml("shell") == pytest.approx(ellipsoid_volume_ml(outer) - ellipsoid_volume_ml(inner), rel=0.02)
    assert not seg.mask("shell")[40, 128, 128]  # the centre is in the hole
    assert seg.volume_ml("two_spheres") == pytest.approx(
        ellipsoid_volume_ml((12.0,) * 3) + ellipsoid_volume_ml((16.0,) * 3), rel=0.02)


def test_names_through_the_alias_table_and_lesion_carved_out_of_the_kidney(tmp_path):
    ct = _ct()
    planes = _planes(ct)
    kidney, lesion = (30.0, 25.0, 50.0), (10.0, 10.0, 10.0)
    path = _write(tmp_path, [("Kidney_L", ellipsoid_contours((60.0, 0.0, 0.0), kidney, planes)),
                             ("Lesion 1", ellipsoid_contours((60.0, 0.0, 10.0), lesion, planes)),
                             ("Kidney_R", ellipsoid_contours((-60.0, 0.0, 0.0), kidney, planes)),
                             ("Bowel bag", ellipsoid_contours((0.0, 60.0, 0.0), (10.0,) * 3, planes))])
    seg = load_segmentation(path, ct)
    assert seg.names == ["kidney_left", "lesion_1", "kidney_right", "bowel_bag"]
    assert seg.volume_ml("lesion_1") == pytest.approx(ellipsoid_volume_ml(lesion), rel=0.02)
    assert seg.volume_ml("kidney_left") == pytest.approx(
        ellipsoid_volume_ml(kidney) - ellipsoid_volume_ml(lesion), rel=0.02)
    assert not (seg.mask("kidney_left") & seg.mask("lesion_1")).any()
    assert seg.volume_ml("kidney_right") == pytest.approx(ellipsoid_volume_ml(kidney), rel=0.02)
    carved = [n for n in seg.notes if "carved out" in n]
    assert len(carved) == 1 and "'Lesion 1'" in carved[0] and "'Kidney_L'" in carved[0]


def test_self_intersecting_contour_is_filled_even_odd_with_a_warning_naming_the_roi(tmp_path):
    ct = _ct()
    z = ORIGIN[2] + 40 * SPACING[2]
    bow_tie = np.array([[-20.0, -20.0, z], [20.0, 20.0, z], [20.0, -20.0, z], [-20.0, 20.0, z]])
    square = np.array([[-20.0, -20.0, z], [20.0, -20.0, z], [20.0, 20.0, z], [-20.0, 20.0, z]])
    seg = load_segmentation(_write(tmp_path, [("crossed", [bow_tie]), ("square", [square + [0, 60, 0]])]), ct)
    assert [n for n in seg.notes if "'crossed'" in n and "self-intersecting" in n]
    assert not [n for n in seg.notes if "'square'" in n and "self-intersecting" in n]
    # both lobes of the bow-tie: half the square's area
    assert seg.volume_ml("crossed") == pytest.approx(0.5 * seg.volume_ml("square"), rel=0.1)


def test_contours_off_the_ct_slices_and_rtstruct_without_ct_are_refused(tmp_path):
    ct = _ct()
    off = ellipsoid_contours((0.0, 0.0, 0.0), (20.0,) * 3, [p + 1.2 for p in _planes(ct)])
    path = _write(tmp_path, [("Liver", off)])
    with pytest.raises(GeometryError, match="ROI 'Liver'.*slice plane"):
        load_segmentation(path, ct)
    from startnet.segmentation.io import read_segments

    with pytest.raises(InputError, match="RTSTRUCT.*no CT was given"):
        read_segments(path)


def test_referenced_ct_must_be_the_cycles_reference_ct(tmp_path):
    structure_set = read_rtstruct(_write(tmp_path, [("Liver", ellipsoid_contours((0, 0, 0), (9,) * 3, [0.0]))],
                                         series_uid="9.9.9"))
    check_referenced_ct(structure_set, {"9.9.9": "time point 1 (24.0 h)"}, "9.9.9")
    with pytest.raises(InputError, match=r"drawn on the CT of time point 0 \(4.0 h\).*--reference-timepoint"):
        check_referenced_ct(structure_set, {"9.9.9": "time point 0 (4.0 h)", "1.1": "time point 1 (24.0 h)"}, "1.1")
    with pytest.raises(InputError, match="references CT series 9.9.9, which is not in the cycle") as error:
        check_referenced_ct(structure_set, {"1.1": "time point 1 (24.0 h)"}, "1.1")
    assert "\n" not in str(error.value)


def test_structures_from_file_says_what_was_carved(tmp_path):
    ct = _ct()
    planes = _planes(ct)
    series = generate_uid()
    path = _write(tmp_path, [("Kidney_R", ellipsoid_contours((-60.0, 0.0, 0.0), (30.0, 25.0, 50.0), planes)),
                             ("tumour 2", ellipsoid_contours((-60.0, 0.0, 0.0), (12.0,) * 3, planes))],
                  series_uid=series)
    spect = sitk.Image([64, 64, 40], sitk.sitkFloat32)
    spect.SetSpacing((4.0, 4.0, 5.0))
    spect.SetOrigin((-126.0, -126.0, -100.0))
    structures = structures_from_file(path, spect, ct_hu=ct, ct_series={series: "time point 1 (24.0 h)"},
                                      reference_ct_series_uid=series)
    assert structures.names() == ["kidney_right", "tumour_2"]
    assert any("carved out of 'Kidney_R'" in line for line in structures.log)
    assert not (structures.masks["kidney_right"] & structures.masks["tumour_2"]).any()
    with pytest.raises(InputError, match="not in the cycle"):
        structures_from_file(path, spect, ct_hu=ct, ct_series={"1.1": "time point 0 (4.0 h)"},
                             reference_ct_series_uid="1.1")
