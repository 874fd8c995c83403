"""Image-based red-marrow dose: mass models, VOI names, L2-L4 from the CT, the phantom's vertebrae."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.dosimetry.marrow import PHOTON_ABSORBED_FRACTION
from startnet.dosimetry.marrow_image import MarrowMassModel, image_marrow_dose, marrow_voi_names
from startnet.errors import InputError
from startnet.phantom import PhantomConfig, build_phantom
from startnet.phantom.blood import marrow_truth
from startnet.phantom.vertebrae import MARROW_LEVELS, image_based_truth
from startnet.physics.lu177 import LU177
from startnet.segmentation.vertebrae import lumbar_vertebrae_from_ct

# independent: 177Lu mean electron energy 0.147923 MeV per decay (REFERENCE.md section 2)
E_E_J_PER_MBQ_H = 0.147923 * 1.602176634e-13 * 1e6 * 3600.0


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=41))


def test_voi_model_dose_is_tia_times_electron_energy_over_marrow_mass():
    voi = {"vertebra_L2": {"tia_mbq_h": 30.0, "tia_sd_mbq_h": 3.0, "volume_ml": 25.0},
           "vertebra_L3": {"tia_mbq_h": 20.0, "tia_sd_mbq_h": 2.0, "volume_ml": 20.0}}
    model = MarrowMassModel()
    assert model.red_marrow_g_per_ml == pytest.approx(1.03 * 0.85 * 0.70)
    dose = image_marrow_dose(voi, model=model, patient_mass_kg=70.0, imaged_tia_mbq_h=5000.0)
    marrow_g = model.red_marrow_g_per_ml * 45.0
    assert dose.self_gy == pytest.approx(50.0 * E_E_J_PER_MBQ_H / (marrow_g / 1000.0), rel=1e-4)
    assert dose.cross_gy == pytest.approx(5000.0 * LU177.photon_energy_j_per_mbq_h * PHOTON_ABSORBED_FRACTION / 70.0)
    block = dose.to_dict()
    assert block["mass_model"]["verified"] is False and "ICRP" in block["mass_model"]["sources"]
    assert {c["component"] for c in block["uncertainty_budget"]} >= {"VOI time-integrated activity",
                                                                     "red-marrow mass model"}
    # VOIs' TIA uncertainties add linearly (shared calibration): 5/50 = 10 %; the model's 30 % dominates
    assert 30.0 < block["uncertainty_pct"] < 33.0
    given = image_marrow_dose(voi, model=MarrowMassModel(red_marrow_g_per_ml_override=0.3))
    assert given.self_gy == pytest.approx(dose.self_gy * model.red_marrow_g_per_ml / 0.3, rel=1e-9)
    assert given.cross_gy is None and any("--patient-mass-kg" in w for w in given.warnings)


def test_reference_model_scales_the_icrp_marrow_and_needs_three_vertebrae_and_mass():
    voi = {f"vertebra_{lv}": {"tia_mbq_h": 10.0, "volume_ml": 20.0} for lv in ("L2", "L3", "L4")}
    dose = image_marrow_dose(voi, model=MarrowMassModel(model="reference"), patient_mass_kg=73.0)
    assert dose.red_marrow_g == pytest.approx(0.123 * 3 / 5 * 1170.0)
    with pytest.raises(InputError, match="needs --patient-mass-kg"):
        image_marrow_dose(voi, model=MarrowMassModel(model="reference"))
    with pytest.raises(InputError, match="needs the three VOIs"):
        image_marrow_dose({"marrow": {"tia_mbq_h": 1.0, "volume_ml": 5.0}}, model=MarrowMassModel(model="reference"),
                          patient_mass_kg=70.0)
    with pytest.raises(InputError, match="--marrow-mass-model 'x'"):
        MarrowMassModel(model="x")


def test_voi_names_from_clinic_and_totalsegmentator():
    levels, marrow = marrow_voi_names(["kidney_left", "vertebrae_L2", "Vertebra_L3", "L4", "spine", "liver"])
    assert levels == {"L2": "vertebrae_L2", "L3": "Vertebra_L3", "L4": "L4"} and marrow is None
    levels, marrow = marrow_voi_names(["Red marrow", "L5", "vertebra_L1", "lesion_l2"])
    assert levels == {} and marrow == "Red marrow"


def test_phantom_vertebrae_hold_marrow_following_the_blood(phantom):
    truth = phantom.truth["vertebrae"]
    blood = marrow_truth(phantom)
    for level in MARROW_LEVELS:
        v = truth[level]
        assert 18.0 < v["volume_ml"] < 30.0  # 36 x 32 mm elliptic body, 27 mm high
        # the marrow's self-dose is the blood-based truth (red-marrow-to-blood ratio 1)
        assert v["tia_mbq_h"] * E_E_J_PER_MBQ_H / (v["red_marrow_g"] / 1000.0) == pytest.approx(blood["self_gy"],
                                                                                            rel=1e-9)
    seen = image_based_truth(phantom, 4.0)
    assert 0.5 < seen["self_gy_seen_by_images"] / seen["self_gy"] < 0.9


def test_ct_finds_l2_l4_of_the_phantom(phantom):
    kidneys_z = np.mean([-10.0, -18.0])  # phantom kidney centres (anatomy._ORGANS)
    found = lumbar_vertebrae_from_ct(phantom.ct_hu, kidneys_z)
    truth = phantom.truth["vertebrae"]
    voxel_ml = float(np.prod(phantom.ct_hu.GetSpacing())) / 1000.0
    for level, centre in (("L2", -36.0), ("L3", -72.0), ("L4", -108.0)):
        volume = float(sitk.GetArrayViewFromImage(found.masks[level]).sum()) * voxel_ml
        assert volume == pytest.approx(truth[level]["volume_ml"], rel=0.05)
        assert abs(found.centres_z_mm[level] - centre) <= 5.0
    assert "L2 = first caudal" in found.notes[0]


def test_ct_without_enough_vertebrae_names_what_to_supply(phantom):
    with pytest.raises(InputError, match="vertebra_L2, vertebra_L3, vertebra_L4 .*TotalSegmentator") as error:
        lumbar_vertebrae_from_ct(phantom.ct_hu, -120.0)  # kidneys' level below L4: 1 body left
    assert "\n" not in str(error.value)
    soft = sitk.Image(phantom.ct_hu.GetSize(), sitk.sitkInt16)
    soft.CopyInformation(phantom.ct_hu)
    with pytest.raises(InputError, match="no spine found"):
        lumbar_vertebrae_from_ct(soft, 0.0)


def test_ct_vois_are_carved_out_of_the_spine_and_given_segments_are_used_as_they_are(phantom):
    from startnet.cycle.marrow_voi import add_marrow_vois
    from startnet.cycle.segments import structures_from_labelmap
    from startnet.phantom.vertebrae import labels_with_vertebrae

    grid = phantom.timepoints[phantom.reference_index].spect_bqml
    names = {v: n for v, n in phantom.label_names.items() if n in ("spine", "kidney_left", "kidney_right", "body")}
    structures = structures_from_labelmap(phantom.labels, names, grid, ct_hu=phantom.ct_hu)
    added = add_marrow_vois(structures, "ct", phantom.ct_hu, grid)
    assert [n for n in added.names() if n.startswith("vertebra_")] == ["vertebra_L2", "vertebra_L3", "vertebra_L4"]
    fractions = added.fraction_maps()
    total = sum(fractions[n] for n in added.names())
    assert float(total.max()) <= 1.0 + 1e-5  # disjoint shares after carving
    assert not np.any(added.masks["spine"] & added.masks["vertebra_L3"])
    assert "spine" not in added.ct_masses_g and added.ct_masses_g["vertebra_L3"] > 0
    assert any("carved out of spine" in n for n in added.log)
    assert add_marrow_vois(structures, None, phantom.ct_hu, grid) is structures
    labels, given_names = labels_with_vertebrae(phantom)
    given = structures_from_labelmap(labels, {v: n for v, n in given_names.items() if n.startswith(("vert", "kid"))},
                                     grid)
    assert add_marrow_vois(given, "segments", None, grid) is given
    with pytest.raises(InputError, match="--marrow-voi segments: the segmentation has no marrow VOI"):
        add_marrow_vois(structures, "segments", phantom.ct_hu, grid)
