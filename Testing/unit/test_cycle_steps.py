"""The cycle's steps with in-memory inputs (what the Slicer modules hold in the scene), and
``run_cycle`` chaining the same functions.

- load: a list of DICOM files (Slicer's DICOM database) gives the same time points as the folder.
- register: supplied transforms (no registration) reproduce the run's registered SPECTs exactly.
- structures: masks / a labelmap in memory give the same structures as the same labelmap file.
- analyse + outputs: an in-memory chain gives the same doses as ``run_cycle`` and writes RT Dose
  and DICOM SEG with the reference CT's file list instead of an input folder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.cycle import (
    RunOptions,
    analyse_cycle,
    choose_reference,
    load_timepoints,
    prepare_output_dir,
    registered_from_transforms,
    run_cycle,
    structures_from_file,
    structures_from_labelmap,
    structures_from_masks,
    write_outputs,
)
from startnet.dicomio import Overrides
from startnet.errors import DicomInputError, InputError
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
from startnet.registration import register_cycle


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=11))
    return phantom, write_phantom_dicom(phantom, tmp_path_factory.mktemp("phantom"))


@pytest.fixture(scope="module")
def loaded(phantom_files):
    _, files = phantom_files
    return load_timepoints(str(files.dicom_dir))


def _all_files(folder):
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def test_load_from_a_list_of_files_equals_the_folder(phantom_files):
    _, files = phantom_files
    listed = _all_files(files.dicom_dir)
    random.Random(3).shuffle(listed)  # a database returns them in its own order
    cycle_l, discovery_l = load_timepoints(listed)
    folder = Path(discovery_l.input_dir)  # the files' common folder (here the patient's)
    assert folder.parent == files.dicom_dir
    cycle, discovery = load_timepoints(str(folder))
    assert [s.files for s in discovery_l.series] == [s.files for s in discovery.series]
    assert [tp.hours_post_injection for tp in cycle_l.timepoints] == [tp.hours_post_injection
                                                                      for tp in cycle.timepoints]
    for a, b in zip(cycle.timepoints, cycle_l.timepoints):
        assert np.array_equal(sitk.GetArrayViewFromImage(a.spect_bqml), sitk.GetArrayViewFromImage(b.spect_bqml))
        assert np.array_equal(sitk.GetArrayViewFromImage(a.ct_hu), sitk.GetArrayViewFromImage(b.ct_hu))
    assert cycle_l.to_dict() == cycle.to_dict()


def test_load_from_the_files_of_some_series(loaded):
    cycle, discovery = loaded
    # the files of two time points' SPECT and CT series, as filesForSeries gives them per series
    wanted = {tp.spect_series_uid for tp in cycle.timepoints[1:3]} | {tp.ct_series_uid for tp in cycle.timepoints[1:3]}
    listed = [f for s in discovery.series if s.series_uid in wanted for f in s.files]
    part, _ = load_timepoints(listed, Overrides(injection_datetime=cycle.injection_datetime))
    assert [round(tp.hours_post_injection, 3) for tp in part.timepoints] == [
        round(tp.hours_post_injection, 3) for tp in cycle.timepoints[1:3]]


def test_load_from_a_bad_list_says_what_is_wrong(tmp_path):
    with pytest.raises(DicomInputError, match="list of DICOM files is empty"):
        load_timepoints([])
    with pytest.raises(DicomInputError, match="listed DICOM file does not exist"):
        load_timepoints([str(tmp_path / "missing.dcm")])


@pytest.fixture(scope="module")
def registrations(phantom_files, loaded):
    phantom, _ = phantom_files
    cycle, _ = loaded
    tps = cycle.timepoints
    return register_cycle([tp.ct_hu for tp in tps], [tp.spect_bqml for tp in tps], phantom.reference_index)


def test_supplied_transforms_reproduce_the_registered_spects(phantom_files, loaded, registrations):
    phantom, _ = phantom_files
    cycle, _ = loaded
    registered = registered_from_transforms(cycle, phantom.reference_index, [r.transform for r in registrations])
    for r, image in zip(registrations, registered.activity_bqml):
        assert np.array_equal(sitk.GetArrayViewFromImage(r.spect_on_reference), sitk.GetArrayViewFromImage(image))
    assert registered.reference_grid is registered.activity_bqml[phantom.reference_index]
    for r, entry in zip(registrations, registered.registrations):
        assert entry["transform"] == "supplied" and "transform supplied (not registered again)" in entry["warnings"]
        if r.rigid is not None:  # same rigid motion, reported about the grid centre
            assert np.allclose(entry["rotation_deg"], r.rigid.rotation_deg, atol=1e-3)


def test_a_corrected_transform_is_used_as_given(loaded, tmp_path):
    cycle, _ = loaded
    reference = 1
    shift = sitk.Euler3DTransform()
    shift.SetTranslation((6.0, -4.0, 2.0))
    path = str(tmp_path / "corrected.tfm")
    sitk.WriteTransform(shift, path)  # read back as a generic sitk.Transform, as from a file or a scene node
    transforms = [None] * len(cycle.timepoints)
    transforms[0] = sitk.ReadTransform(path)
    registered = registered_from_transforms(cycle, reference, transforms)
    entry = registered.registrations[0]
    assert entry["translation_mm"] == pytest.approx([6.0, -4.0, 2.0], abs=1e-3)
    assert entry["rotation_deg"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    expected = sitk.Resample(cycle.timepoints[0].spect_bqml, cycle.timepoints[reference].spect_bqml, shift,
                             sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    moved = sitk.GetArrayViewFromImage(registered.activity_bqml[0])
    correlation = np.corrcoef(moved.ravel(), sitk.GetArrayViewFromImage(expected).ravel())[0, 1]
    assert correlation > 0.999
    with pytest.raises(InputError, match="3 transforms given for 4 time points"):
        registered_from_transforms(cycle, reference, [None] * 3)


def _same_structures(a, b):
    assert list(a.masks) == list(b.masks)
    for name in a.masks:
        assert np.array_equal(a.masks[name], b.masks[name]), name
        assert np.array_equal(a.fractions[name], b.fractions[name]), name
    assert a.ct_masses_g == pytest.approx(b.ct_masses_g, rel=1e-12)


def test_structures_in_memory_equal_the_same_labelmap_from_a_file(phantom_files, loaded, tmp_path):
    phantom, _ = phantom_files
    cycle, _ = loaded
    tp = cycle.timepoints[phantom.reference_index]
    labelmap = sitk.Cast(phantom.labels, sitk.sitkUInt16)
    names = dict(phantom.label_names)
    sitk.WriteImage(labelmap, str(tmp_path / "labels.nrrd"), True)
    (tmp_path / "labels.json").write_text(json.dumps({str(k): v for k, v in names.items()}))
    from_file = structures_from_file(str(tmp_path / "labels.nrrd"), tp.spect_bqml,
                                     labels_path=str(tmp_path / "labels.json"), ct_hu=tp.ct_hu)
    from_labelmap = structures_from_labelmap(labelmap, names, tp.spect_bqml, ct_hu=tp.ct_hu)
    masks = {name: sitk.Cast(labelmap == value, sitk.sitkUInt8) for value, name in names.items()}
    from_masks = structures_from_masks(masks, tp.spect_bqml, ct_hu=tp.ct_hu, source="scene segmentation")
    _same_structures(from_labelmap, from_file)
    _same_structures(from_masks, from_file)
    assert "kidney_left" in from_masks.masks and from_masks.ct_masses_g["kidney_left"] > 0
    assert from_masks.source == "scene segmentation"
    with pytest.raises(InputError, match="label 99"):
        structures_from_labelmap(labelmap, {99: "kidney_left"}, tp.spect_bqml)


def test_in_memory_chain_equals_run_cycle_and_writes_outputs(phantom_files, registrations, tmp_path):
    phantom, files = phantom_files
    options = RunOptions(input_dir=str(files.dicom_dir), out_dir=str(tmp_path / "run"),
                         segmentation_path=str(files.segmentation_nrrd), reference_timepoint=phantom.reference_index,
                         write_scene=False, write_report=False)
    run = run_cycle(options)

    # the same cycle from the scene: database file list, supplied transforms, segmentation in memory
    cycle, discovery = load_timepoints(_all_files(files.dicom_dir))
    reference = choose_reference([tp.hours_post_injection for tp in cycle.timepoints], phantom.reference_index)
    registered = registered_from_transforms(cycle, reference, [r.transform for r in registrations])
    structures = structures_from_file(str(files.segmentation_nrrd), registered.reference_grid,
                                      ct_hu=registered.ct_hu)
    memory = RunOptions(input_dir="", out_dir=str(tmp_path / "memory"), reference_timepoint=reference,
                        write_scene=False, write_report=False)
    ct_uid = cycle.timepoints[reference].ct_series_uid
    ct_files = next(s.files for s in discovery.series if s.series_uid == ct_uid)
    result = analyse_cycle(memory, registered, structures, reference_ct_files=ct_files)
    # registered separately from run_cycle's own registration: equal to the rounding of results.json (the
    # registration's multi-threaded metric sums can move a rounded value by one unit in its last place)
    for name, values in run.results["structures"].items():
        assert result.results["structures"][name]["mean_gy"] == pytest.approx(values["mean_gy"], rel=1e-4,
                                                                              abs=1e-3), name
    assert result.results["kidneys_mean_gy"] == pytest.approx(run.results["kidneys_mean_gy"], rel=1e-4, abs=1e-3)

    written = write_outputs(result, memory, prepare_output_dir(memory.out_dir))
    assert {"results.json", "dose.nrrd", "rtdose.dcm", "seg.dcm"} <= set(written)
    import pydicom

    rtdose = pydicom.dcmread(written["rtdose.dcm"], stop_before_pixels=True)
    ct = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    assert rtdose.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert rtdose.TissueHeterogeneityCorrection == "IMAGE"
    saved = json.loads((tmp_path / "memory" / "results.json").read_text())
    assert saved["kidneys_mean_gy"] == run.results["kidneys_mean_gy"]
