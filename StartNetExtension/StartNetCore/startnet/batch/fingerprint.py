"""What a row's outputs were made from, so that a finished row is skipped when nothing changed.

The fingerprint is the SHA-256 of: every file under the row's input folder (relative path, size
in bytes, SOP Instance UID for DICOM files), the SHA-256 of each other input file (segmentation,
labels, calibration: small files whose content matters, not only their size), the option values
that change the results (not the trial database URL), and the startnet version. It is stored in
OUT_DIR/<name>/batch_fingerprint.json, written atomically after the outputs were committed and
removed before a row is recomputed: a fingerprint on disk therefore always describes complete
outputs of the same inputs and parameters.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from startnet import __version__
from startnet.filelock import write_text_atomic

FINGERPRINT_FILE = "batch_fingerprint.json"
NOT_PARAMETERS = ("trial_db",)  # where results are recorded, not how they are computed
FILE_VALUES = ("segmentation", "labels", "calibration")


def _sop_uid(path: str) -> str:
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return str(ds.get("SOPInstanceUID", "") or "")
    except Exception:  # noqa: BLE001 - not DICOM (or unreadable): its size still counts
        return ""


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _text(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_text(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def row_fingerprint(input_dir: str, values: Dict[str, Any]) -> Dict[str, Any]:
    """{"fingerprint": sha256 hex, "files": n, "parameters": {...}} of a row's inputs and parameters."""
    digest = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(input_dir):
        dirnames.sort()
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            relative = os.path.relpath(path, input_dir)
            digest.update(f"{relative}\0{os.path.getsize(path)}\0{_sop_uid(path)}\n".encode())
            count += 1
    parameters = {k: _text(v) for k, v in sorted(values.items()) if k not in NOT_PARAMETERS and v is not None}
    for key in FILE_VALUES:
        if parameters.get(key):
            parameters[f"{key}_sha256"] = _file_sha256(str(parameters[key]))
    digest.update(json.dumps({"parameters": parameters, "startnet": __version__}, sort_keys=True).encode())
    return {"fingerprint": digest.hexdigest(), "input_files": count, "parameters": parameters,
            "software_version": __version__}


def stored_fingerprint(row_out: Path) -> Optional[str]:
    try:
        return json.loads((row_out / FINGERPRINT_FILE).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_fingerprint(row_out: Path, fingerprint: Dict[str, Any]) -> None:
    """Atomically (temporary file + rename): never a half-written fingerprint."""
    record = dict(fingerprint, created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat())
    write_text_atomic(row_out / FINGERPRINT_FILE, json.dumps(record, indent=2))


def remove_fingerprint(row_out: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (row_out / FINGERPRINT_FILE).unlink()
