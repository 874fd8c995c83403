"""dicomio on real DICOM that is not a cycle: pydicom's own test files and the pydicom-data package."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil

import dicom_factory as f
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.uid import RLELossless

from startnet.dicomio import discover, load_cycle
from startnet.errors import DicomInputError

PYDICOM_TEST_FILES = os.path.dirname(get_testdata_file("CT_small.dcm"))


def test_pydicom_test_files_are_ignored_or_rejected_cleanly(tmp_path):
    """The whole pydicom test corpus (CT, MR, US, RT, SR, NM whole-body, DICOMDIRs, broken files).

    A deliberately broken CT/NM file is rejected with a DicomInputError naming it and the
    attribute; it is then removed and discovery retried, until only clean ignores remain.
    """
    corpus = tmp_path / "corpus"
    shutil.copytree(PYDICOM_TEST_FILES, corpus)
    rejected = []
    for _ in range(20):
        try:
            disc = discover(str(corpus))
            break
        except DicomInputError as exc:
            message = str(exc)
            path = message.split(": ")[0]
            assert os.path.isfile(path) and path.startswith(str(corpus)), message
            assert re.search(r"\([0-9A-F]{4},[0-9A-F]{4}\)", message), message
            rejected.append(os.path.basename(path))
            os.remove(path)
    else:
        pytest.fail(f"too many rejected files: {rejected}")
    assert len(rejected) <= 3
    assert disc.spect_series == []
    log = "\n".join(disc.log)
    assert "ignored DICOMDIR" in log
    assert any(s.modality == "NM" and s.reason.startswith("secondary capture") for s in disc.ignored_series)
    assert "not a DICOM file" in log  # README.txt and friends
    assert any(s.reason.startswith("structured report") for s in disc.ignored_series)
    assert any(s.reason.startswith("RT object") for s in disc.ignored_series)
    with pytest.raises(DicomInputError, match="no SPECT reconstruction \\(NM, ImageType RECON TOMO\\) found"):
        load_cycle(str(corpus), discovery=disc)


def _cycle(folder) -> None:
    vol = np.zeros((6, 8, 8), np.uint16)
    vol[2:4, 2:6, 2:6] = 100
    inj = dt.datetime(2026, 5, 4, 10, 0, 0)
    f.spect_and_ct(str(folder), vol, acquisition=inj + dt.timedelta(hours=24), injection=inj,
                   spect_origin=(-32.0, -32.0, -24.0), ct_shape=(14, 20, 20))


def test_non_cycle_objects_next_to_a_cycle_are_ignored(tmp_path):
    """RT dose, RT plan, SR, whole-body NM (JPEG 2000) from pydicom beside a cycle: logged, not used."""
    names = ("rtdose.dcm", "rtplan.dcm", "JPEG2000.dcm", "test-SR.dcm", "reportsi.dcm")
    for name in names:
        shutil.copy(get_testdata_file(name), tmp_path / name.replace(".dcm", ""))
    _cycle(tmp_path / "cycle")
    cycle = load_cycle(str(tmp_path))
    assert len(cycle.timepoints) == 1
    assert cycle.timepoints[0].hours_post_injection == pytest.approx(24.0)
    ignored = [line for line in cycle.log if line.startswith("ignored series")]
    assert len(ignored) == len(names)


def test_pydicom_data_ct_of_another_patient_is_refused(tmp_path):
    """CT files from the pydicom-data package mixed into a cycle folder: another patient, clean error."""
    external = sorted(p for p in get_testdata_files() if "data_store" in p and p.endswith("693_UNCR.dcm"))
    assert external, "pydicom-data is a test dependency"
    shutil.copy(external[0], tmp_path / "stray")
    _cycle(tmp_path / "cycle")
    with pytest.raises(DicomInputError, match="several patients") as err:
        load_cycle(str(tmp_path))
    assert str(tmp_path / "stray") in str(err.value)


def test_raw_files_without_preamble_and_rle_compressed_ct(tmp_path):
    """PACS exports vary: CT slices RLE-compressed (decoded by pydicom), SPECT written as a raw
    implicit-VR dataset without preamble or file meta; values and geometry are unchanged."""
    _cycle(tmp_path / "cycle")
    ct_files = sorted((tmp_path / "cycle" / "CT").iterdir())
    reference = load_cycle(str(tmp_path))
    for path in ct_files:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    spect = tmp_path / "cycle" / "NM" / "spect"
    ds = pydicom.dcmread(spect)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(spect, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert spect.read_bytes()[128:132] != b"DICM"
    cycle = load_cycle(str(tmp_path))
    got, want = cycle.timepoints[0], reference.timepoints[0]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got.ct_hu), sitk.GetArrayFromImage(want.ct_hu))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got.spect_bqml), sitk.GetArrayFromImage(want.spect_bqml))
    assert got.ct_hu.GetOrigin() == want.ct_hu.GetOrigin()
