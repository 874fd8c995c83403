"""``startnet accumulate``: cycles registered onto one grid and summed (maps and structure values)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.cycle.accumulate import accumulate_runs
from startnet.errors import InputError
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom


def _shift(path, offset_mm):
    image = sitk.ReadImage(str(path))
    image.SetOrigin(tuple(o + d for o, d in zip(image.GetOrigin(), offset_mm)))
    sitk.WriteImage(image, str(path), True)


def test_two_cycles_with_a_shifted_patient_sum_voxel_by_voxel(tmp_path):
    phantom = build_phantom(PhantomConfig(preset="small", seed=61))
    files = write_phantom_dicom(phantom, tmp_path / "phantom")
    first = tmp_path / "cycle1"
    result = subprocess.run([sys.executable, "-m", "startnet", "run", str(files.dicom_dir), "--out", str(first),
                             "--segmentation", str(files.segmentation_nrrd), "--quiet"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    # the second cycle: the same doses, the patient lying 7 mm to the left, 5 mm forward and 3 mm higher
    second = tmp_path / "cycle2"
    shutil.copytree(first, second)
    for name in ("dose.nrrd", "bed.nrrd", "ct_on_dose_grid.nrrd"):
        _shift(second / name, (7.0, -5.0, 3.0))
    cumulative = accumulate_runs([str(first), str(second)], str(tmp_path / "total"))
    translation = cumulative["registrations"][1]["translation_mm"]
    np.testing.assert_allclose(translation, [7.0, -5.0, 3.0], atol=1.0)
    results = json.loads((first / "results.json").read_text())
    assert cumulative["cumulative_kidneys_mean_gy"] == pytest.approx(2 * results["kidneys_mean_gy"], rel=1e-3)
    assert cumulative["structures"]["kidney_left"]["cumulative_bed_gy"] == pytest.approx(
        2 * results["structures"]["kidney_left"]["bed_gy"], rel=1e-3)
    dose = sitk.GetArrayFromImage(sitk.ReadImage(str(first / "dose.nrrd")))
    total = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "total" / "cumulative_dose.nrrd")))
    hot = dose > 0.5 * dose.max()
    assert total[hot].sum() == pytest.approx(2 * dose[hot].sum(), rel=0.05)


def test_incomplete_run_folder_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(InputError, match="missing results.json"):
        accumulate_runs([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "out"))
    with pytest.raises(InputError, match="at least two"):
        accumulate_runs([str(tmp_path / "a")], str(tmp_path / "out"))
