"""Blood-based red-marrow dose (EANM SOP): blood TIAC fit, self- and cross-dose, GUM budget, bad CSV rows."""

from __future__ import annotations

import datetime as _dt

import pytest

from startnet.dosimetry.marrow import blood_marrow_dose, read_blood_samples
from startnet.errors import InputError
from startnet.phantom import PhantomConfig, build_phantom
from startnet.phantom.blood import marrow_truth, write_blood_samples

INJECTION = _dt.datetime(2024, 3, 1, 9, 0, tzinfo=_dt.timezone(_dt.timedelta(hours=1)))


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=41))


def test_phantom_blood_samples_give_its_marrow_dose_within_10_percent(phantom, tmp_path):
    samples = read_blood_samples(write_blood_samples(phantom, tmp_path / "blood.csv"), phantom.injection_datetime)
    truth = marrow_truth(phantom)
    dose = blood_marrow_dose(samples, patient_mass_kg=truth["patient_mass_kg"],
                             remainder_tia_mbq_h=phantom.truth["total_tia_mbq_h"])
    assert dose.self_gy == pytest.approx(truth["self_gy"], rel=0.03)
    assert dose.total_gy == pytest.approx(truth["dose_gy"], rel=0.10)
    block = dose.to_dict()
    assert block["red_marrow_to_blood_ratio"] == 1.0 and "assumptions" in block
    assert 0 < block["uncertainty_pct"] < 50
    assert {c["component"] for c in block["uncertainty_budget"]} >= {"blood TIAC fit", "red-marrow-to-blood ratio"}


def test_ratio_scales_the_self_dose_and_sgouros_uses_the_haematocrit(phantom, tmp_path):
    samples = read_blood_samples(write_blood_samples(phantom, tmp_path / "blood.csv", haematocrit=0.4),
                                 phantom.injection_datetime)
    one = blood_marrow_dose(samples)
    assert blood_marrow_dose(samples, ratio="0.3").self_gy == pytest.approx(0.3 * one.self_gy, rel=1e-9)
    sgouros = blood_marrow_dose(samples, ratio="sgouros")
    assert sgouros.rmblr == pytest.approx(0.19 / 0.6) and "haematocrit 0.400" in sgouros.rmblr_source
    assert one.cross_gy is None and any("--patient-mass-kg" in w for w in one.warnings)


@pytest.mark.parametrize("row, message", [
    ("yesterday,10", "row 2: datetime 'yesterday' is not an ISO date-time"),
    ("2024-03-01T12:00:00+01:00,-3", "row 2: activity_concentration_kbq_ml -3 must be > 0"),
    ("2024-03-01T12:00:00+01:00,abc", "row 2: activity_concentration_kbq_ml 'abc' is not a number"),
    ("2024-03-01T08:00:00+01:00,5", "row 2: sample at .* is not after the injection"),
])
def test_bad_blood_csv_is_one_line_naming_the_row(tmp_path, row, message):
    path = tmp_path / "blood.csv"
    path.write_text("datetime,activity_concentration_kbq_ml\n2024-03-01T10:00:00+01:00,20\n" + row + "\n")
    with pytest.raises(InputError, match=message) as error:
        read_blood_samples(path, INJECTION)
    assert "blood.csv" in str(error.value) and "\n" not in str(error.value)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "blood.csv"
    path.write_text("time,kbq\n2024-03-01T10:00:00+01:00,20\n")
    with pytest.raises(InputError, match="missing column.*activity_concentration_kbq_ml"):
        read_blood_samples(path, INJECTION)
