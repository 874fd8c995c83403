"""A patient's cycles in Slicer's DICOM database: the database's file lists -> cycles and time points.

``database`` is ``slicer.dicomDatabase`` (a ctkDICOMDatabase; ``patients()``, ``studiesForPatient``,
``seriesForStudy``, ``filesForSeries``, ``fieldForPatient``, ``nameForPatient`` are Q_INVOKABLE at
the CTK commits of Slicer v5.8.1 and v5.10.0) or any object with those methods; nothing here
imports ``slicer``. The files go through the same discovery and calibration rules as
``startnet inspect`` (:func:`startnet.dicomio.cycles.list_cycles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from startnet.dicomio.cycles import CycleListing, list_cycles
from startnet.dicomio.model import Overrides
from startnet.errors import InputError


@dataclass
class DatabasePatient:
    """One patient of the database: its database UID (not the DICOM PatientID), ID and name."""

    uid: str
    patient_id: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.patient_id} ({self.name})" if self.name and self.name != self.patient_id else self.patient_id


def database_patients(database) -> List[DatabasePatient]:
    """Every patient of the database, with its DICOM PatientID (0010,0020) and name."""
    if not getattr(database, "isOpen", True):
        raise InputError("the DICOM database is not open: open it in the DICOM module first")
    out = []
    for uid in database.patients():
        out.append(DatabasePatient(str(uid), str(database.fieldForPatient("PatientID", uid) or uid),
                                   str(database.nameForPatient(uid) or "")))
    return out


def patient_files(database, patient_uid: str) -> List[str]:
    """Every file of every series of every study of one patient (database UID from ``patients()``)."""
    files: List[str] = []
    for study in database.studiesForPatient(patient_uid):
        for series in database.seriesForStudy(study):
            files.extend(str(path) for path in database.filesForSeries(series))
    if not files:
        raise InputError(f"patient {patient_uid} has no files in the DICOM database")
    return files


def patient_cycles(database, patient_uid: str, overrides: Optional[Overrides] = None) -> List[CycleListing]:
    """The patient's cycles (one per injection) with their time points and files, no pixels read."""
    return list_cycles(patient_files(database, patient_uid), overrides)


@dataclass
class DatabaseSeries:
    """One SPECT reconstruction of the database (a calibration acquisition): its files and a label."""

    series_uid: str
    files: List[str]
    label: str
    camera: str


def patient_spect_series(database, patient_uid: str) -> List[DatabaseSeries]:
    """The SPECT reconstructions (NM, RECON TOMO) of a patient of the database, e.g. a phantom's scans,
    labelled with description, acquisition date-time and camera; headers only, no pixels read."""
    from startnet.calibration.camera import camera_identity, describe
    from startnet.dicomio import discover

    disc = discover(patient_files(database, patient_uid))
    out = []
    for series in disc.spect_series:
        ds = series.headers[0] if series.headers else None
        when = " ".join(str(getattr(ds, k, "") or "") for k in ("AcquisitionDate", "AcquisitionTime")).strip()
        camera = describe(camera_identity(ds)) if ds is not None else "?"
        label = f"{series.description or series.series_uid} ({when[:13] or 'no date'}, {camera})"
        out.append(DatabaseSeries(series.series_uid, list(series.files), label, camera))
    if not out:
        raise InputError(f"patient {patient_uid} has no SPECT reconstruction (NM, ImageType RECON TOMO) in the "
                         "DICOM database")
    return out
