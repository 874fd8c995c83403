"""TimepointRegistration logic on a real MRML scene (slicer-core) with the phantom's DICOM."""

from __future__ import annotations

import numpy as np
import pytest

from startnet.errors import InputError
from startnet.mrml.cycle_logic import CycleSceneLogic
from startnet.mrml.scene import new_scene
from startnet.mrml.tables import records_from_table
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
from startnet.registration import transform_error


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=5))
    return phantom, write_phantom_dicom(phantom, tmp_path_factory.mktemp("phantom"))


def test_load_register_and_review(phantom_files):
    phantom, files = phantom_files
    logic = CycleSceneLogic(new_scene())
    with pytest.raises(InputError, match="load a cycle first"):
        logic.reference_ct_node()
    messages = []
    summary = logic.load_cycle(str(files.dicom_dir), progress=lambda f, m: messages.append((f, m)))
    assert "4 time points" in summary and messages[-1][0] == pytest.approx(1.0)
    assert len(logic.timepoints) == 4
    spect = logic.timepoints[1]["spect_node"]
    assert float(spect.GetAttribute("startnet.hours_post_injection")) == pytest.approx(24.0, abs=1e-3)
    table = logic.register(phantom.reference_index)
    rows = records_from_table(table)
    assert len(rows) == 4 and sum(1 for r in rows if r["reference"] == "True") == 1
    # recovered motion against the phantom's truth, through the scene's transform nodes
    for t in logic.timepoints:
        registration = t["registration"]
        if registration.is_reference:
            continue
        truth = phantom.timepoints[t["index"]].true_transform
        centre = np.array(phantom.ct_hu.TransformContinuousIndexToPhysicalPoint(
            [(n - 1) / 2.0 for n in phantom.ct_hu.GetSize()]))
        points = [centre + np.array(offset) for offset in ((0, 0, 0), (60, 0, 0), (0, 60, 0), (0, 0, 60))]
        translation_error_mm, rotation_error_deg = transform_error(registration.transform, truth, points)
        assert translation_error_mm < 1.0 and rotation_error_deg < 0.5
        assert t["ct_node"].GetParentTransformNode() is t["transform_node"]
    check = logic.check_image_node()
    assert check.GetImageData().GetDimensions() == tuple(phantom.ct_hu.GetSize())
    assert "moved" in logic.quality_summary()
    assert np.isfinite(rows[0]["activity_outside_fov_fraction"])
