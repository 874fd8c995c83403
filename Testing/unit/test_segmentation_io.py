"""Import of segmentations (.seg.nrrd single/multi-layer, DICOM SEG, labelmap + names) onto the
reference SPECT grid, the bad-input errors, and the compare-segmentations command."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from startnet.cli import main
from startnet.errors import GeometryError, InputError
from startnet.phantom import PhantomConfig, build_phantom
from startnet.phantom.anatomy import STRUCTURE_COLORS
from startnet.phantom.export import write_segmentation_nrrd
from startnet.segmentation import load_segmentation


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=2, noise=False, motion=False))


@pytest.fixture(scope="module")
def grid(phantom):
    return phantom.timepoints[0].spect_bqml


@pytest.fixture(scope="module")
def seg_nrrd(phantom, tmp_path_factory):
    return write_segmentation_nrrd(phantom.labels, phantom.label_names,
                                   tmp_path_factory.mktemp("seg") / "phantom.seg.nrrd")


def _majority_truth(phantom, grid, name):
    """Independent truth: in the small preset each SPECT voxel is exactly 2 x 2 x 2 CT voxels (CT
    slices 1-2, 3-4, ... along z; columns/rows 0-1, 2-3, ...); majority = covered fraction >= 1/2."""
    ids = {n: v for v, n in phantom.label_names.items()}
    assert np.allclose(np.multiply(phantom.labels.GetSpacing(), 2), grid.GetSpacing())
    inside = (sitk.GetArrayFromImage(phantom.labels) == ids[name])[1:97].astype(float)
    nz, ny, nx = inside.shape
    fraction = inside.reshape(nz // 2, 2, ny // 2, 2, nx // 2, 2).mean(axis=(1, 3, 5))
    return fraction >= 0.5


def test_slicer_seg_nrrd_onto_the_spect_grid(phantom, grid, seg_nrrd):
    seg = load_segmentation(seg_nrrd, grid)
    assert seg.names == [phantom.label_names[v] for v in sorted(phantom.label_names)]
    for name in ("kidney_left", "liver", "tumour_4"):
        np.testing.assert_array_equal(seg.mask(name), _majority_truth(phantom, grid, name))
        assert seg.colors[name] == pytest.approx(STRUCTURE_COLORS[name], abs=1e-5)
    assert seg.mask("Left Kidney") is seg.mask("kidney_left")  # Slicer/TotalSegmentator spelling


def test_fractional_resampling_conserves_volume(phantom, grid, seg_nrrd):
    seg = load_segmentation(seg_nrrd, grid, fractional=True)
    ids = {n: v for v, n in phantom.label_names.items()}
    ct_voxel_ml = float(np.prod(phantom.labels.GetSpacing())) / 1000.0
    for name in ("kidney_left", "kidney_right", "spleen", "tumour_2"):
        true_ml = float((sitk.GetArrayFromImage(phantom.labels) == ids[name]).sum()) * ct_voxel_ml
        assert float(seg.fractions[name].sum()) * seg.voxel_volume_ml == pytest.approx(true_ml, rel=0.01)
        assert seg.volume_ml(name) == pytest.approx(true_ml, rel=0.12)


def _write_two_layer_seg_nrrd(path, grid):
    """A Slicer-style multi-layer file (kind list on the first axis) with overlapping segments."""
    nx, ny, nz = grid.GetSize()
    data = np.zeros((nz, ny, nx, 2), dtype=np.uint8)
    data[20:30, 20:30, 20:30, 0] = 1  # layer 0, label 1: kidney (Slicer name)
    data[24:27, 24:27, 24:27, 1] = 1  # layer 1, label 1: tumour inside the kidney
    data[40:42, 40:42, 40:42, 0] = 2  # layer 0, label 2: spleen
    sx, sy, sz = grid.GetSpacing()
    ox, oy, oz = grid.GetOrigin()
    header = (
        "NRRD0004\ntype: unsigned char\ndimension: 4\nspace: left-posterior-superior\n"
        f"sizes: 2 {nx} {ny} {nz}\nspace directions: none ({sx},0,0) (0,{sy},0) (0,0,{sz})\n"
        f"kinds: list domain domain domain\nencoding: raw\nspace origin: ({ox},{oy},{oz})\n"
        "Segment0_Name:=Left Kidney\nSegment0_LabelValue:=1\nSegment0_Layer:=0\nSegment0_Color:=0.9 0.1 0.1\n"
        "Segment1_Name:=tumour_1\nSegment1_LabelValue:=1\nSegment1_Layer:=1\n"
        "Segment2_Name:=spleen\nSegment2_LabelValue:=2\nSegment2_Layer:=0\n\n")
    path.write_bytes(header.encode() + data.tobytes())
    return path


def test_multi_layer_seg_nrrd_keeps_overlaps(grid, tmp_path):
    seg = load_segmentation(_write_two_layer_seg_nrrd(tmp_path / "two.seg.nrrd", grid), grid)
    assert seg.names == ["kidney_left", "tumour_1", "spleen"]
    assert int(seg.mask("kidney_left").sum()) == 1000
    assert int(seg.mask("tumour_1").sum()) == 27
    assert np.all(seg.mask("kidney_left")[seg.mask("tumour_1")])  # the overlap survives
    assert int(seg.mask("spleen").sum()) == 8
    assert seg.colors["kidney_left"] == (0.9, 0.1, 0.1)
    renamed = tmp_path / "two_layers.nrrd"  # a Slicer segmentation saved under a plain .nrrd name
    renamed.write_bytes((tmp_path / "two.seg.nrrd").read_bytes())
    assert load_segmentation(renamed, grid).names == seg.names


def test_labelmap_with_names_and_bad_labels(phantom, grid, tmp_path):
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(phantom.labels, str(path))
    seg = load_segmentation(path, grid, {7: "kidney_left", 8: "kidney_right"})
    assert seg.names == ["kidney_left", "kidney_right"]
    np.testing.assert_array_equal(seg.mask("kidney_right"), _majority_truth(phantom, grid, "kidney_right"))
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps({"liver": 5}))  # {name: value} is accepted too
    assert load_segmentation(path, grid, names_file).names == ["liver"]
    assert "label_13" in load_segmentation(path, grid).names  # unnamed labels keep their value
    with pytest.raises(InputError, match="label 42"):
        load_segmentation(path, grid, {42: "kidney_left"})


def test_empty_segment_and_no_overlap_are_refused(phantom, grid, seg_nrrd, tmp_path):
    empty = sitk.Image(phantom.labels)
    names = dict(phantom.label_names)
    names[99] = "forgotten"  # a segment declared in the header with no voxel
    path = write_segmentation_nrrd(empty, names, tmp_path / "empty.seg.nrrd")
    with pytest.raises(InputError, match="'forgotten' is empty"):
        load_segmentation(path, grid)
    far = sitk.Image(grid)
    far.SetOrigin((4000.0, 4000.0, 4000.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        load_segmentation(seg_nrrd, far)
    with pytest.raises(InputError, match="does not exist"):
        load_segmentation(tmp_path / "missing.seg.nrrd", grid)


def test_dicom_seg_written_by_highdicom(phantom, grid, tmp_path):
    import highdicom as hd

    from startnet.phantom.dicom_writer import write_ct_series

    tp = phantom.timepoints[0]
    files = write_ct_series(phantom, tp, tmp_path / "ct", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
    sources = [pydicom.dcmread(str(f)) for f in files]
    sources.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    ids = {n: v for v, n in phantom.label_names.items()}
    labels = sitk.GetArrayFromImage(phantom.labels)  # (z, y, x) in the order of the sorted slices
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=name,
            segmented_property_category=hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure"),
            segmented_property_type=hd.sr.CodedConcept("64033007", "SCT", "Kidney"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i, name in enumerate(["kidney_left", "kidney_right"])]
    pixels = np.stack([labels == ids["kidney_left"], labels == ids["kidney_right"]], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=99,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="START-NET", manufacturer_model_name="test",
        software_versions="1", device_serial_number="1")
    path = tmp_path / "kidneys.dcm"
    seg.save_as(str(path))
    # on the CT grid the SEG (cropped to its frames, slices in its own order) is exact
    on_ct = load_segmentation(path, phantom.ct_hu)
    assert on_ct.names == ["kidney_left", "kidney_right"]
    for name in on_ct.names:
        np.testing.assert_array_equal(on_ct.mask(name), labels == ids[name])
    on_spect = load_segmentation(path, grid)  # coarser grid: majority, whatever the slice order
    for name in on_spect.names:
        np.testing.assert_array_equal(on_spect.mask(name), _majority_truth(phantom, grid, name))

    # the frame-by-frame reader used with highdicom < 0.23 (Python 3.9 / Slicer 5.8) gives the same masks
    from startnet.segmentation.io import _read_dicom_seg_frames

    frames = _read_dicom_seg_frames(hd.seg.segread(str(path)), path)
    assert [name for name, _, _ in frames] == ["kidney_left", "kidney_right"]
    for name, image, _ in frames:
        on_ct_grid = sitk.Resample(image, phantom.ct_hu, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(on_ct_grid) > 0, labels == ids[name])


def test_compare_segmentations_command(phantom, grid, seg_nrrd, tmp_path, capsys):
    labelmap = tmp_path / "labels.nrrd"
    shifted = sitk.Image(phantom.labels)
    shifted.SetOrigin(tuple(o + d for o, d in zip(shifted.GetOrigin(), (3.5, 0.0, 0.0))))
    sitk.WriteImage(shifted, str(labelmap))
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"7": "left kidney", "8": "right kidney"}))
    dose = sitk.Image(phantom.labels.GetSize(), sitk.sitkFloat32) + 2.5
    dose.CopyInformation(phantom.labels)
    dose_path = tmp_path / "dose.nrrd"
    sitk.WriteImage(dose, str(dose_path))
    code = main(["compare-segmentations", str(seg_nrrd), str(labelmap), "--labels-b", str(names),
                 "--dose", str(dose_path), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in report["segments"]}
    assert set(rows) == {"kidney_left", "kidney_right"}
    assert "liver" in report["only_in_a"] and report["only_in_b"] == []
    for row in rows.values():
        assert 0.8 < row["dice"] < 1.0  # B is A shifted by one CT voxel (3.5 mm)
        assert row["hd95_mm"] == pytest.approx(3.5, abs=0.5)
        assert row["mean_dose_a_gy"] == pytest.approx(2.5) and row["mean_dose_difference_gy"] == pytest.approx(0.0)
    assert main(["compare-segmentations", str(seg_nrrd), str(seg_nrrd)]) == 0
    assert "kidney_left" in capsys.readouterr().out
    assert main(["compare-segmentations", str(seg_nrrd), str(tmp_path / "nope.nrrd")]) == 2
    assert "does not exist" in capsys.readouterr().err
