"""The phantom patient's cycles 2 and 3: lesions shrink, one vanishes, one is new, the patient lies differently."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.errors import InputError
from startnet.phantom import PhantomConfig, build_phantom
from startnet.phantom.model import cycle_pose
from startnet.phantom.truth import lesion_truth_across_cycles


@pytest.fixture(scope="module")
def cycles():
    return [build_phantom(PhantomConfig(preset="small", seed=5, noise=False, blur=False, cycle_number=n))
            for n in (1, 2, 3)]


def _centroid_mm(phantom, label: int):
    mask = sitk.GetArrayFromImage(phantom.labels) == label
    index = np.argwhere(mask).mean(axis=0)[::-1]
    return np.array(phantom.labels.TransformContinuousIndexToPhysicalPoint([float(v) for v in index]))


def test_lesions_evolve_and_segments_are_numbered_per_cycle(cycles):
    one, two, three = cycles
    assert [one.label_names[v] for v in (10, 11, 12, 13)] == ["tumour_1", "tumour_2", "tumour_3", "tumour_4"]
    assert 14 not in one.label_names and "tumour_5" not in one.truth["structures"]
    # cycle 2: the lymph node (label 13) is gone; the new liver lesion (label 14) is called tumour_4
    assert 13 not in two.label_names and two.label_names[14] == "tumour_4"
    assert two.truth["cycle"]["lesion_of_segment"]["tumour_4"] == "tumour_5"
    assert two.truth["structures"]["tumour_4"]["lesion"] == "tumour_5"
    lesions = [c.truth["cycle"]["lesions"] for c in cycles]
    assert [le["tumour_4"]["present"] for le in lesions] == [True, False, False]
    assert [le["tumour_5"]["present"] for le in lesions] == [False, True, True]
    volumes = [le["tumour_1"]["volume_ml"] for le in lesions]
    assert volumes[1] == pytest.approx(0.88 ** 3 * volumes[0], rel=0.05)
    assert volumes[2] == pytest.approx(0.76 ** 3 * volumes[0], rel=0.05)
    assert lesions[1]["tumour_5"]["volume_ml"] > 15.0 and lesions[2]["tumour_5"]["volume_ml"] > 15.0
    assert one.injection_datetime < two.injection_datetime < three.injection_datetime
    assert len({c.config.uid_key for c in cycles}) == 3 and one.config.uid_key == "5"


def test_the_patient_lies_differently_each_cycle_and_the_pose_says_how(cycles):
    one = cycles[0]
    for later in cycles[1:]:
        pose = cycle_pose(later.config.cycle_number)
        for label in (7, 10):  # kidney_left, tumour_1 (shrunk, same centre)
            here, there = _centroid_mm(later, label), _centroid_mm(one, label)
            assert np.linalg.norm(here - there) > 5.0  # moved on the table
            assert np.linalg.norm(np.array(pose.TransformPoint(tuple(here))) - there) < 2.0


def test_lesion_truth_across_cycles(cycles):
    truth = lesion_truth_across_cycles([c.truth for c in cycles])
    t1 = truth["tumour_1"]
    assert t1["present_in"] == [1, 2, 3] and t1["segment"] == ["tumour_1"] * 3
    assert t1["cumulative_mean_dose_gy"] == pytest.approx(sum(t1["mean_dose_gy"]))
    assert truth["tumour_4"]["present_in"] == [1] and truth["tumour_4"]["mean_dose_gy"][1:] == [0.0, 0.0]
    assert truth["tumour_5"]["present_in"] == [2, 3] and truth["tumour_5"]["segment"] == [None, "tumour_4", "tumour_4"]


def test_cycle_number_out_of_range_is_refused():
    from startnet.phantom import anatomy
    from startnet.phantom.config import CYCLE_POSES

    assert sorted(CYCLE_POSES) == list(range(1, anatomy.CYCLES + 1))  # a pose for every cycle's lesions
    assert all(len(scales) == anatomy.CYCLES for scales in anatomy.LESION_EVOLUTION.values())
    for bad in (0, 4, True, 2.0):
        with pytest.raises(InputError, match=f"cycle_number: {bad!r}; expected an integer 1..3"):
            PhantomConfig(cycle_number=bad).validate()
