"""The Dosimetry panel's red-marrow inputs reach the background job's RunOptions (startnet.mrml.dosimetry_options).

- the panel defaults give the same RunOptions marrow fields as ``startnet run`` without options;
- panel values go through job.json (write_job / read_job, as the background process reads them);
- bad values are refused before the job starts with an InputError naming the panel field;
- the blood samples are read for the loaded cycle before the job starts.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import fields, replace
from pathlib import Path

import pytest
from phantom_cycle import phantom_job_inputs

from startnet.cycle.job import read_job, write_job
from startnet.cycle.options import add_run_options, option_values, run_options
from startnet.errors import InputError
from startnet.mrml.dosimetry_options import (
    MARROW_MASS_MODELS,
    MARROW_VOI_CHOICES,
    MarrowPanel,
    check_job_marrow,
    panel_run_options,
)
from startnet.phantom import PhantomConfig, build_phantom
from startnet.phantom.blood import write_blood_samples

DOSIMETRY_PY = Path(__file__).resolve().parents[2] / "StartNetExtension" / "Dosimetry" / "Dosimetry.py"
MARROW_FIELDS = ("marrow_voi", "marrow_mass_model", "patient_mass_kg", "blood_samples_path", "marrow_blood_ratio")


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=5))


def _fields(options):
    return {name: getattr(options, name) for name in MARROW_FIELDS}


def test_panel_defaults_are_the_command_line_defaults(tmp_path):
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    cli = run_options(option_values(parser.parse_args([])), "", str(tmp_path))
    panel = panel_run_options(tmp_path, method=cli.method, pvc=cli.pvc, marrow=MarrowPanel())
    assert _fields(panel) == _fields(cli) == dict.fromkeys(MARROW_FIELDS)


def test_panel_values_reach_the_job_options(phantom, tmp_path):
    blood = write_blood_samples(phantom, tmp_path / "blood.csv", haematocrit=0.4)
    marrow = MarrowPanel(voi_source="ct", mass_model="reference", patient_mass_kg=72.5,
                         blood_samples_path=str(blood), marrow_blood_ratio=" Sgouros ")
    options = panel_run_options(tmp_path / "out", method="led", pvc="gtm", patient_id=" SN-001 ", cycle=2,
                                marrow=marrow)
    inputs = phantom_job_inputs(phantom, tmp_path / "out")
    inputs = replace(inputs, options=options)
    check_job_marrow(inputs)
    write_job(tmp_path / "job", inputs)
    back = read_job(tmp_path / "job").options
    assert _fields(back) == {"marrow_voi": "ct", "marrow_mass_model": "reference", "patient_mass_kg": 72.5,
                             "blood_samples_path": str(blood), "marrow_blood_ratio": "sgouros"}
    assert (back.patient_id, back.cycle, back.method) == ("SN-001", 2, "led")
    numeric = panel_run_options(tmp_path / "out", method="led", pvc="gtm",
                                marrow=MarrowPanel(blood_samples_path=str(blood), marrow_blood_ratio="0.8"))
    assert numeric.marrow_blood_ratio == "0.8" and numeric.marrow_voi is None


@pytest.mark.parametrize("marrow, message", [
    (MarrowPanel(voi_source="spine"), r"Marrow VOI 'spine': expected one of auto, segments, ct"),
    (MarrowPanel(mass_model="icrp"), r"Marrow mass model 'icrp'"),
    (MarrowPanel(patient_mass_kg=-3.0), r"Patient mass -3 kg: expected > 0 kg"),
    (MarrowPanel(mass_model="reference"), r"'reference' needs the patient mass"),
    (MarrowPanel(blood_samples_path="/no/such/blood.csv"), r"Blood samples: /no/such/blood.csv is not a file"),
    (MarrowPanel(marrow_blood_ratio="0.5"), r"Marrow-to-blood ratio needs the blood samples CSV"),
])
def test_bad_panel_values_are_refused(tmp_path, marrow, message):
    with pytest.raises(InputError, match=message):
        panel_run_options(tmp_path, method="led", pvc="gtm", marrow=marrow)


@pytest.mark.parametrize("ratio", ["abc", "-1", "0", "nan", "inf"])
def test_bad_ratio_is_refused(phantom, tmp_path, ratio):
    blood = write_blood_samples(phantom, tmp_path / "blood.csv")
    with pytest.raises(InputError, match=r"Marrow-to-blood ratio .*expected a number > 0, 'sgouros' or empty"):
        panel_run_options(tmp_path, method="led", pvc="gtm",
                          marrow=MarrowPanel(blood_samples_path=str(blood), marrow_blood_ratio=ratio))


def test_blood_samples_are_read_before_the_job(phantom, tmp_path):
    inputs = phantom_job_inputs(phantom, tmp_path / "out")
    no_hct = tmp_path / "no_hct.csv"
    rows = write_blood_samples(phantom, tmp_path / "blood.csv").read_text().splitlines()
    no_hct.write_text("\n".join(",".join(r.split(",")[:2]) for r in rows) + "\n")
    options = panel_run_options(tmp_path / "out", method="led", pvc="gtm",
                                marrow=MarrowPanel(blood_samples_path=str(no_hct), marrow_blood_ratio="sgouros"))
    with pytest.raises(InputError, match="sgouros needs a haematocrit column"):
        check_job_marrow(replace(inputs, options=options))
    broken = tmp_path / "broken.csv"
    broken.write_text("when,kbq\n1,2\n")
    options = panel_run_options(tmp_path / "out", method="led", pvc="gtm",
                                marrow=MarrowPanel(blood_samples_path=str(broken)))
    with pytest.raises(InputError, match="missing column"):
        check_job_marrow(replace(inputs, options=options))
    check_job_marrow(inputs)  # no blood samples: nothing to read


def _parameter_fields():
    """DosimetryParameterNode's fields in Dosimetry.py (Slicer-only module): name -> (Choice list or None, default)."""
    tree = ast.parse(DOSIMETRY_PY.read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "DosimetryParameterNode")
    out = {}
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign):
            choice = next((c for c in ast.walk(statement.annotation) if isinstance(c, ast.Call)
                           and getattr(c.func, "id", "") == "Choice"), None)
            out[statement.target.id] = (ast.literal_eval(choice.args[0]) if choice else None,
                                        ast.literal_eval(statement.value) if statement.value is not None else None)
    return out


def test_parameter_node_choices_and_defaults_are_the_panel_logic_s():
    """The widget binds these fields; DosimetryLogic.marrowPanel hands them to MarrowPanel unchanged."""
    node = _parameter_fields()
    defaults = {f.name: f.default for f in fields(MarrowPanel)}
    assert node["marrowVoiSource"] == (list(MARROW_VOI_CHOICES), defaults["voi_source"])
    assert node["marrowMassModel"] == (list(MARROW_MASS_MODELS), defaults["mass_model"])
    assert node["patientMassKg"][1] == defaults["patient_mass_kg"]
    assert node["marrowBloodRatio"][1] == defaults["marrow_blood_ratio"]
    assert "bloodSamplesPath" in node  # pathlib.Path, unset = "." = none
