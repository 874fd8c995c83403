"""Issue 12: no file that ``startnet run``, ``startnet batch`` or the Slicer modules' logic writes
holds the trial database password (nor their messages).

A secured trial on the session's PostgreSQL server (scram-sha-256): the owner grants an Uppsala
site user, who records the small phantom's cycle for three patients:

- ``startnet run --trial-db URL`` with a URL WITHOUT password (libpq finds it in ``PGPASSFILE``,
  a 0600 file outside the output folders),
- ``startnet run --trial-db URL`` with the password typed IN the URL (masked wherever it is shown),
  and the same URL naming a database that does not exist (the error names it, masked),
- ``startnet batch --trial-db URL`` (password in the URL, one Dask worker),
- the Dosimetry / Trial Tracker logic (slicer-core) showing a run folder, recording it and the
  patient's cycles table, with a parameter node that an older version filled with the URL
  (``forget_scene_secrets``), the scene saved as .mrb.

Then every file under the working folder (results.json, report.html, report.pdf as text through
``pdftotext``, every member of every .mrb/zip, DICOM, NRRD headers, summary.csv, cohort.html, Dask's
files), the saved scene and every command's stdout/stderr are searched for the password.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
from startnet.trial import users
from startnet.trial.store import TrialStore

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SITE = "Uppsala"


def _private_file(path: Path, text: str) -> Path:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _texts(path: Path) -> Iterator[Tuple[str, str]]:
    """(where, text) of a file: its bytes, each member of a zip (.mrb), and a PDF's text."""
    data = path.read_bytes()
    yield str(path), data.decode("utf-8", "replace")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            for member in bundle.namelist():
                yield f"{path}!{member}", bundle.read(member).decode("utf-8", "replace")
    if path.suffix.lower() == ".pdf":
        pdftotext = shutil.which("pdftotext")
        if pdftotext is None:  # FAIL, never skip: the PDF's text streams are compressed, bytes say nothing
            pytest.fail("pdftotext not found: run `bash tools/install-system-deps.sh` (poppler-utils)",
                        pytrace=False)
        text = subprocess.run([pdftotext, str(path), "-"], capture_output=True, text=True, check=True).stdout
        assert text.strip(), f"{path}: pdftotext found no text"
        yield f"{path} (pdftotext)", text


def _startnet(args, cwd: Path, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "startnet", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=41))
    return phantom, write_phantom_dicom(phantom, tmp_path_factory.mktemp("phantom"))


def test_no_password_in_anything_run_batch_or_the_slicer_logic_write(postgres_server, phantom_files, tmp_path):
    server = postgres_server
    phantom, files = phantom_files
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    owner, login, database = f"leak_owner_{tag}", f"leak_site_{tag}", f"leak_{tag}"
    owner_password = server.create_owner(owner)
    owner_url = server.create_database(database, owner=owner)
    password = secrets.token_urlsafe(18)
    store = TrialStore.initialise(owner_url)
    try:
        users.grant(store, login, "site", SITE, password)
    finally:
        store.close()
    server.remember_password(login, password)  # for this process; the commands get their own PGPASSFILE
    injected = phantom.injection_datetime.date()
    site_store = TrialStore.open(server.url(database, login))
    try:
        for patient in ("SN-P1", "SN-P2", "SN-P3", "SN-P4"):
            site_store.enroll(patient, SITE, 2, injected - dt.timedelta(days=7))
    finally:
        site_store.close()

    vault, work = tmp_path / "vault", tmp_path / "work"  # the password file lives outside the searched folder
    vault.mkdir()
    work.mkdir()
    passfile = _private_file(vault / "pgpass", f"{server.host}:{server.port}:*:{login}:{password}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STARTNET_", "PG"))}
    env.update(HOME=str(work), PGPASSFILE=str(passfile), PYTHONUNBUFFERED="1")
    plain_url = f"postgresql+psycopg://{login}@{server.host}:{server.port}/{database}"
    typed_url = plain_url.replace(f"{login}@", f"{login}:{password}@")
    run_args = [files.dicom_dir, "--segmentation", files.segmentation_nrrd,
                "--reference-timepoint", phantom.reference_index]
    messages: List[Tuple[str, str]] = []

    def command(name, *args):
        proc = _startnet(args, work, env)
        messages.append((f"{name} stdout", proc.stdout))
        messages.append((f"{name} stderr", proc.stderr))
        return proc

    run1 = command("run (passfile)", "run", *run_args, "--out", work / "run1", "--patient", "SN-P1", "--cycle", 1,
                   "--trial-db", plain_url)
    assert run1.returncode == 0, run1.stderr
    run2 = command("run (typed password)", "run", *run_args, "--out", work / "run2", "--patient", "SN-P2",
                   "--cycle", 1, "--trial-db", typed_url)
    assert run2.returncode == 0, run2.stderr
    bad = command("run (no such database)", "run", *run_args, "--out", work / "run_bad", "--patient", "SN-P2",
                  "--cycle", 2, "--trial-db", typed_url.replace(f"/{database}", "/no_such_db"))
    assert bad.returncode != 0 and "no_such_db" in bad.stderr and "***" in bad.stderr, bad.stderr
    for folder, patient in (("run1", "SN-P1"), ("run2", "SN-P2")):
        results = json.loads((work / folder / "results.json").read_text())
        assert results["trial"]["patient_id"] == patient and len(results["trial"]["cycles"]) == 1
        for name in ("scene.mrb", "report.html", "report.pdf"):
            assert (work / folder / name).is_file(), (folder, name)

    manifest = work / "manifest.csv"
    manifest.write_text("input_dir,name,segmentation,reference_timepoint,patient_id,cycle\n"
                        f"{files.dicom_dir},p3,{files.segmentation_nrrd},{phantom.reference_index},SN-P3,1\n")
    batch = command("batch", "batch", manifest, "--out", work / "batch", "--workers", 1, "--trial-db", typed_url)
    assert batch.returncode == 0, batch.stdout + batch.stderr
    assert json.loads((work / "batch" / "p3" / "results.json").read_text())["trial"]["patient_id"] == "SN-P3"

    slicer_scene = _slicer_logic_saves_a_scene(work / "run1", typed_url, work / "slicer")

    with server.connect(database, user=owner) as conn:
        audit = conn.execute("SELECT DISTINCT user_name FROM audit_log WHERE action = 'add_cycle'").fetchall()
    assert audit == [(login,)]  # every cycle was recorded by the site login (passfile or typed URL)
    written = [p for p in work.rglob("*") if p.is_file()]
    assert slicer_scene in written and len(written) > 30
    found = [(where, text) for path in written for where, text in _texts(path)] + messages
    for secret in (password, owner_password):
        leaks = [where for where, text in found if secret in text]
        assert not leaks, f"password found in {leaks}"


def _slicer_logic_saves_a_scene(run_dir: Path, url: str, out: Path) -> Path:
    """What the Dosimetry and Trial Tracker panels do with a run and the trial, the scene then saved."""
    from startnet.mrml.dosimetry_logic import DosimetrySceneLogic
    from startnet.mrml.scene import new_scene, read_mrb, save_mrb
    from startnet.mrml.trial_logic import TrialSceneLogic, forget_scene_secrets

    out.mkdir()
    scene = new_scene()
    dosimetry = DosimetrySceneLogic(scene)
    dosimetry.show_job_outputs({"out_dir": str(run_dir)})
    advice = dosimetry.record_in_trial(url, "SN-P4", 1)
    assert "Cumulative kidney dose" in advice
    trial = TrialSceneLogic(scene)
    table, _chart, status = trial.show_patient_nodes(url, "SN-P4")
    assert len(status["cycles"]) == 1 and table.GetNumberOfRows() == 1
    assert {row["patient_id"] for row in trial.list_patients(url)} == {"SN-P1", "SN-P2", "SN-P3", "SN-P4"}
    for module in ("Dosimetry", "TrialTracker"):  # as an older version left them in a scene
        node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", module)
        node.SetParameter("databaseUrl", url)
        node.SetParameter("patientId", "SN-P4")
        assert forget_scene_secrets(node) == ["databaseUrl"]
    path = save_mrb(scene, out / "scene.mrb")
    reloaded = read_mrb(path)  # the saved scene is a real scene (what was searched is what Slicer reads)
    assert reloaded.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() >= 1
    return path


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://someone:S3cret-pw@db.example/trial",  # a driver that is not installed
    "postgresql+psycopg://someone@127.0.0.1:1/trial?password=S3cret-pw",  # libpq's password= parameter
    "postgresql://someone:S3cret-pw@127.0.0.1:notaport/trial",  # not a URL SQLAlchemy can parse
    "postgresql://someone:S3cret-pw@127.0.0.1:1/trial",  # nobody listening
])
def test_unusable_urls_are_one_masked_line(url, capsys, monkeypatch):
    from startnet.cli import main

    for key in ("STARTNET_USER", "STARTNET_USER_SITE", "STARTNET_TRIAL_DB"):
        monkeypatch.delenv(key, raising=False)
    code = main(["trial", "--db", url, "status", "--patient", "SN-1"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("error: ") and "\n" not in err, err
    assert "S3cret-pw" not in err and "***" in err, err
