"""Walk a folder of DICOM files, group them by study/series and give each series a role.

Every file is parsed once with large values (the pixel data) deferred, so discovery reads
headers only and :mod:`startnet.dicomio.pixels` later reads each file's pixel data exactly once.
Roles: ``spect`` (NM reconstruction, ImageType containing RECON TOMO), ``ct`` (CT Image Storage,
not a localizer), or ``ignored`` with a reason (projections, scouts, dose reports / SR,
secondary captures, other modalities), one log line each. SPECT projections keep their headers
(``Discovery.projection_series``): they give the count rate per head for the dead-time
correction. Non-DICOM files are skipped with a log line; a DICOMDIR is not needed (the folder
is walked) and is ignored with a log line. Nothing is written to the input folder.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import pydicom
from pydicom.errors import InvalidDicomError

from startnet.dicomio.enhanced import ENHANCED_CT_SOPS
from startnet.dicomio.model import Discovery, SeriesInfo
from startnet.dicomio.rawattr import SERIES_UID, STUDY_UID, raw_text
from startnet.errors import DicomInputError

DEFER_BYTES = 2048  # values larger than this (pixel data) are read on demand, once

NM_IMAGE = "1.2.840.10008.5.1.4.1.1.20"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
MEDIA_SOP_CLASS = 0x00020002
PROJECTIONS_REASON = "SPECT projections (ImageType TOMO, not RECON TOMO)"
_IGNORED_SOP_PREFIXES = (
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report (e.g. a dose report)"),
    ("1.2.840.10008.5.1.4.1.1.7", "secondary capture"),
    ("1.2.840.10008.5.1.4.1.1.481.", "RT object"),
    ("1.2.840.10008.5.1.4.1.1.66", "segmentation/registration/spatial object"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
)


def _read_header(path: str):
    """Dataset with deferred pixel data, or (None, reason) for a file that is not DICOM."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, defer_size=DEFER_BYTES), ""
    except InvalidDicomError:
        pass
    except (OSError, EOFError, ValueError, KeyError, TypeError, OverflowError) as exc:
        return None, _corrupt(path, exc)
    # No 'DICM' preamble: accept raw datasets starting with a group 0002/0008 tag only.
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return None, f"unreadable ({exc})"
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00") or head[3:4] != b"\x00":
        return None, "not a DICOM file (no DICM preamble)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, defer_size=DEFER_BYTES, force=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure means 'not usable DICOM'
        return None, f"not a DICOM file ({type(exc).__name__})"
    if "SOPClassUID" not in ds and "Modality" not in ds:
        return None, "not a DICOM file (no SOPClassUID/Modality)"
    return ds, ""


def _corrupt(path: str, exc: Exception) -> str:
    raise DicomInputError(f"{path}: DICOM file is truncated or corrupt ({type(exc).__name__}: {exc})")


_TAGS = {"SOPClassUID": 0x00080016, "Modality": 0x00080060, "ImageType": 0x00080008,
         "SeriesDescription": 0x0008103E, "FrameOfReferenceUID": 0x00200052, "PatientID": 0x00100020}


def _text(ds, keyword: str) -> str:
    tag = _TAGS.get(keyword)
    if tag is not None:
        return raw_text(ds, tag)
    value = getattr(ds, keyword, None)
    return "" if value is None else str(value).strip()


def _image_type(ds) -> List[str]:
    text = _text(ds, "ImageType")
    return [v.strip().upper() for v in text.split("\\")] if text else []


def classify(ds) -> Tuple[str, str]:
    """(role, reason) of a dataset: 'spect', 'ct' or 'ignored'."""
    sop = _text(ds, "SOPClassUID")
    modality = _text(ds, "Modality").upper()
    image_type = _image_type(ds)
    for prefix, what in _IGNORED_SOP_PREFIXES:
        if sop.startswith(prefix):
            return "ignored", f"{what} (SOP class {sop})"
    if modality in ("SR", "KO", "PR", "REG", "SEG", "RTSTRUCT", "RTDOSE", "RTPLAN", "DOC"):
        return "ignored", f"modality {modality} is not an image used for dosimetry"
    if modality == "NM" or sop == NM_IMAGE:
        if "RECON GATED TOMO" in image_type or "GATED TOMO" in image_type:
            return "ignored", "gated SPECT (ImageType GATED TOMO) is not used for dosimetry"
        if "RECON TOMO" in image_type:
            if "TRANSMISSION" in image_type:
                return "ignored", "NM transmission reconstruction (not emission)"
            return "spect", "NM emission reconstruction (ImageType RECON TOMO)"
        kind = next((t for t in image_type if t in ("TOMO", "GATED TOMO", "STATIC", "WHOLE BODY",
                                                     "DYNAMIC", "GATED")), "")
        if kind in ("TOMO", "GATED TOMO"):
            return "ignored", PROJECTIONS_REASON
        if kind:
            return "ignored", f"planar NM image (ImageType {kind})"
        return "ignored", f"NM image without RECON TOMO in ImageType ({'/'.join(image_type) or 'missing'})"
    if modality == "CT":
        if "LOCALIZER" in image_type or "SCOUT" in image_type:
            return "ignored", "CT localizer / scout (ImageType LOCALIZER)"
        if sop in ENHANCED_CT_SOPS:
            return "ct", "Enhanced CT image (multi-frame)"
        if sop and sop != CT_IMAGE:
            return "ignored", f"CT SOP class {sop} is not CT Image Storage or Enhanced CT Image Storage"
        if "PixelData" not in ds and "NumberOfFrames" not in ds and "Rows" not in ds:
            return "ignored", "CT object without image attributes"
        return "ct", "CT image series"
    return "ignored", f"modality {modality or '(missing)'} is not SPECT (NM) or CT"


def _walk(input_dir: str) -> List[str]:
    paths = []
    for root, dirs, files in os.walk(input_dir):
        dirs.sort()
        for name in sorted(files):
            paths.append(os.path.join(root, name))
    return paths


def _listed(files) -> Tuple[str, List[str]]:
    """A list of DICOM file paths (e.g. Slicer's ``dicomDatabase.filesForSeries``): (their common folder, paths)."""
    paths = [os.fspath(f) for f in files]
    if not paths:
        raise DicomInputError("the list of DICOM files is empty; expected the files of a cycle's SPECT/CT series")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DicomInputError(f"{missing[0]}: listed DICOM file does not exist"
                              + (f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""))
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])

    def walk_order(path: str):  # the order _walk visits them: a folder's files, then its sub-folders
        parts = os.path.relpath(os.path.abspath(path), folder).split(os.sep)
        return [(1, part) for part in parts[:-1]] + [(0, parts[-1])]

    return folder, sorted(dict.fromkeys(paths), key=walk_order)


def discover(input_dir) -> Discovery:
    """Find and classify every DICOM series under ``input_dir`` (any nesting and file naming).

    ``input_dir`` may also be a list of DICOM file paths (a DICOM database's files of a patient):
    the same rules apply to exactly those files, and ``Discovery.input_dir`` is their common folder.
    """
    if isinstance(input_dir, (list, tuple)):
        input_dir, paths = _listed(input_dir)
    else:
        input_dir = os.fspath(input_dir)
        if not os.path.isdir(input_dir):
            raise DicomInputError(f"{input_dir}: input folder does not exist or is not a folder")
        paths = _walk(input_dir)
    log: List[str] = []
    skipped: List[str] = []
    groups: OrderedDict[Tuple[str, str, str], SeriesInfo] = OrderedDict()
    for path in paths:
        name = os.path.basename(path)
        if name.startswith("."):
            skipped.append(path)
            log.append(f"skipped hidden file {path}")
            continue
        ds, reason = _read_header(path)
        if ds is None:
            skipped.append(path)
            log.append(f"skipped {path}: {reason}")
            continue
        meta = getattr(ds, "file_meta", None)
        media_sop = raw_text(meta, MEDIA_SOP_CLASS) if meta is not None else ""
        if name.upper() == "DICOMDIR" or media_sop == MEDIA_STORAGE_DIRECTORY:
            log.append(f"ignored DICOMDIR {path}: the folder tree is walked instead")
            continue
        study = raw_text(ds, STUDY_UID)
        series = raw_text(ds, SERIES_UID)
        if not series:
            sop = _text(ds, "SOPClassUID") or media_sop
            if sop in (NM_IMAGE, CT_IMAGE):
                raise DicomInputError(f"{path}: SeriesInstanceUID (0020,000E) is missing in this "
                                      f"{'NM' if sop == NM_IMAGE else 'CT'} image (file truncated or incomplete)")
            skipped.append(path)
            log.append(f"skipped {path}: SeriesInstanceUID (0020,000E) missing")
            continue
        role, why = classify(ds)
        key = (study, series, role)
        info = groups.get(key)
        if info is None:
            if any(k[:2] == (study, series) for k in groups):
                log.append(f"series {series} mixes roles: its {role} files ({why}) are grouped apart")
            info = SeriesInfo(
                study_uid=study, series_uid=series, modality=_text(ds, "Modality"),
                sop_class_uid=_text(ds, "SOPClassUID"), role=role, reason=why, files=[],
                description=_text(ds, "SeriesDescription"),
                frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
                patient_id=_text(ds, "PatientID"),
            )
            groups[key] = info
        info.files.append(path)
        if info.role != "ignored" or why == PROJECTIONS_REASON:
            info.headers.append(ds)
    for info in groups.values():
        label = f"series {info.series_uid} ({info.modality}, {len(info.files)} file(s)"
        label += f", '{info.description}')" if info.description else ")"
        if info.role == "ignored":
            log.append(f"ignored {label}: {info.reason}")
        else:
            log.append(f"found {info.role.upper()} {label}: {info.reason}")
    if not groups:
        raise DicomInputError(
            f"{input_dir}: no DICOM files found ({len(paths)} file(s) looked at, {len(skipped)} skipped"
            + (f", e.g. {skipped[0]}" if skipped else "") + ")"
        )
    return Discovery(input_dir=input_dir, series=list(groups.values()), skipped_files=skipped, log=log)


def series_by_uid(discovery: Discovery) -> Dict[str, SeriesInfo]:
    return {s.series_uid: s for s in discovery.series}


def first_header(info: SeriesInfo) -> Optional[object]:
    return info.headers[0] if info.headers else None
