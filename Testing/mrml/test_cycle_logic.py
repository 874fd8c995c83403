"""TimepointRegistration logic on a real MRML scene (slicer-core): B-spline refinement in the scene,
review helpers, cycles of a DICOM database listed by injection."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pytest
from dicom_database import DictDicomDatabase

from startnet.errors import InputError
from startnet.mrml import cycle_state as state
from startnet.mrml.cycle_inputs import transforms_from_scene
from startnet.mrml.cycle_logic import CycleSceneLogic
from startnet.mrml.dicom_cycles import database_patients, patient_cycles
from startnet.mrml.scene import new_scene
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=5, timepoints_h=(24.0, 96.0)))
    return phantom, write_phantom_dicom(phantom, tmp_path_factory.mktemp("phantom"))


def test_bspline_refinement_is_a_grid_node_above_the_rigid_one(phantom_files):
    phantom, files = phantom_files
    scene = new_scene()
    logic = CycleSceneLogic(scene)
    with pytest.raises(InputError, match="no START-NET cycle"):
        logic.reference_ct_node()
    logic.load_cycle(str(files.dicom_dir))
    assert not logic.has_registration()
    logic.register(0, deformable=True)
    node = logic.cycle_node
    rigid, bspline = state.timepoint_node(node, "transform", 1), state.timepoint_node(node, "bspline", 1)
    assert bspline is not None and bspline.GetClassName() == "vtkMRMLGridTransformNode"
    assert rigid.GetParentTransformNode() is bspline and state.timepoint_node(node, "bspline", 0) is None
    assert state.timepoint_node(node, "spect", 1).GetParentTransformNode() is rigid
    # what the dosimetry reads back from the node hierarchy is the registration's composite transform
    from startnet.mrml.volumes import volume_to_sitk
    from startnet.registration import register_cycle

    cts = [volume_to_sitk(state.timepoint_node(node, "ct", i), harden_parent_transform=False) for i in range(2)]
    spects = [volume_to_sitk(state.timepoint_node(node, "spect", i), harden_parent_transform=False) for i in range(2)]
    expected = register_cycle(cts, spects, 0, deformable=True)[1].transform
    grid = spects[0]
    read = transforms_from_scene(node, 0, grid)[1]
    centre = np.array(grid.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in grid.GetSize()]))
    points = [centre + np.array(offset) for offset in ((0, 0, 0), (40, 10, 0), (-40, 0, 20), (0, -30, -30))]
    errors = [np.linalg.norm(np.subtract(read.TransformPoint(tuple(p)), expected.TransformPoint(tuple(p))))
              for p in points]
    print("B-spline read back from the scene, error at 4 points (mm):", [round(float(e), 3) for e in errors])
    assert max(errors) < 0.3
    table_rows = logic.quality_summary().splitlines()
    assert len(table_rows) == 1 and table_rows[0].startswith("96.0 h")
    check = logic.check_image_node()
    assert check.GetImageData().GetDimensions() == tuple(cts[0].GetSize())
    # back to rigid only: the grid node goes, nothing else is added
    grid_nodes = scene.GetNumberOfNodesByClass("vtkMRMLGridTransformNode")
    logic.register(0, deformable=False)
    assert grid_nodes == 1 and scene.GetNumberOfNodesByClass("vtkMRMLGridTransformNode") == 0
    assert rigid.GetParentTransformNode() is None and state.timepoint_node(node, "bspline", 1) is None


def test_a_patients_database_files_list_one_cycle_per_injection(tmp_path):
    import pydicom

    first = _dt.datetime(2025, 5, 12, 7, 30, tzinfo=_dt.timezone.utc)
    content = {}
    for number, seed in enumerate((31, 32)):
        injection = first + _dt.timedelta(weeks=8 * number)
        phantom = build_phantom(PhantomConfig(preset="small", seed=seed, timepoints_h=(4.0, 24.0),
                                              injection_datetime=injection))
        files = write_phantom_dicom(phantom, tmp_path / f"cycle{number}")
        for tp in files.timepoints:
            for path in list(tp.ct_files) + [tp.spect_file]:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True)
                content.setdefault("p1", {}).setdefault(ds.StudyInstanceUID, {}).setdefault(
                    ds.SeriesInstanceUID, []).append(str(path))
    database = DictDicomDatabase(content, "Phantom^Digital")
    assert [p.patient_id for p in database_patients(database)] == ["ID-p1"]
    cycles = patient_cycles(database, "p1")
    print("cycles:", [c.label for c in cycles])
    assert len(cycles) == 2
    for number, cycle in enumerate(cycles):
        assert cycle.injection_datetime == first + _dt.timedelta(weeks=8 * number)
        assert [round(tp.hours_post_injection, 3) for tp in cycle.timepoints] == [4.0, 24.0]
        assert all(tp.ct_series_uid for tp in cycle.timepoints)
    assert not set(cycles[0].files) & set(cycles[1].files)
    # each cycle's files load on their own (the files of both together are refused by load_cycle)
    scene = new_scene()
    summary = CycleSceneLogic(scene).load_cycle(cycles[1].files)
    assert "2 time points" in summary and "2025-07-07" in summary
