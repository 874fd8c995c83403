"""Writing a DICOM dataset to disk atomically, with pydicom 3 and 2.4 (Slicer 5.8) alike."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydicom.dataset import Dataset

from startnet.errors import OutputError


def save_dataset_atomically(ds: Dataset, path: Path) -> None:
    """Write to a temporary file beside ``path`` and rename, so no half-written file remains."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".dcm", dir=str(path.parent))
        os.close(handle)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        try:
            ds.save_as(temp_name, enforce_file_format=True)
        except TypeError:  # pydicom 2.4 (Slicer 5.8, Python 3.9) has no enforce_file_format
            ds.save_as(temp_name, write_like_original=False)
        os.replace(temp_name, str(path))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(temp_name):
            os.remove(temp_name)
