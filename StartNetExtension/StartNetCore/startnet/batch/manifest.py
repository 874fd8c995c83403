"""The rows of a batch: a MANIFEST.csv, or every sub-folder of INPUT_ROOT that holds DICOM files.

Every row is checked before any work starts, each problem reported on its own line naming the
manifest line and column (a missing folder or file, an unknown column, a duplicate ``name``, a
value the ``startnet run`` option would refuse, a duplicate patient/cycle when recording in the
trial database). A row's cells override the command line's options; empty cells keep them.
Relative paths in the manifest are relative to the manifest's folder.
"""

from __future__ import annotations

import argparse
import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from startnet.cycle.options import PATH_OPTIONS, RUN_OPTION_FIELDS, option_action, option_value, run_options
from startnet.errors import InputError

REQUIRED_COLUMN = "input_dir"
# the documented columns (option columns take the ``startnet run`` option of the same dest)
MANIFEST_COLUMNS = ("input_dir", "name", "segmentation", "labels", "patient_id", "cycle", "reference_timepoint",
                    "calibration_cps_per_mbq", "calibration", "method", "pvc")
# every other per-cycle option of ``startnet run`` may be a column too (not --trial-db: one database per batch)
OPTION_COLUMNS = tuple(dest for dest in RUN_OPTION_FIELDS if dest != "trial_db")
FILE_COLUMNS = tuple(PATH_OPTIONS) + ("calibration",)


class ManifestError(InputError):
    """Problems with the batch's rows, one line each."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class BatchRow:
    """One cycle to run: its output folder name, input folder and the option values (dest -> value)."""

    name: str
    input_dir: str
    values: Dict[str, Any]
    where: str  # "MANIFEST.csv line 3" or the folder, for messages


def read_rows(source: str, defaults: Dict[str, Any], parser: argparse.ArgumentParser) -> List[BatchRow]:
    """Rows of a manifest file or of a folder of cycles; ManifestError lists every problem found."""
    path = Path(source)
    if path.is_dir():
        rows, problems = _folder_rows(path, defaults)
    elif path.is_file():
        rows, problems = _manifest_rows(path, defaults, parser)
    else:
        raise InputError(f"{source}: no such manifest file or folder")
    problems += _check_rows(rows)
    if problems:
        raise ManifestError(problems)
    if not rows:
        raise InputError(f"{source}: no cycles to run (no rows)" if path.is_file()
                         else f"{source}: no sub-folder holds DICOM files")
    return rows


def _manifest_rows(path: Path, defaults: Dict[str, Any], parser) -> Tuple[List[BatchRow], List[str]]:
    label = path.name
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not table:
        raise InputError(f"{path}: empty manifest (expected a header line with {REQUIRED_COLUMN})")
    header = [cell.strip() for cell in table[0]]
    known = set(MANIFEST_COLUMNS) | set(OPTION_COLUMNS)
    problems = [f"{label} line 1: unknown column {c!r} (known: {', '.join(MANIFEST_COLUMNS)} and the other "
                f"startnet run options as columns: {', '.join(sorted(set(OPTION_COLUMNS) - set(MANIFEST_COLUMNS)))})"
                for c in header if c not in known]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    problems += [f"{label} line 1: column {c!r} appears more than once" for c in duplicated]
    if REQUIRED_COLUMN not in header:
        return [], problems + [f"{label} line 1: no {REQUIRED_COLUMN!r} column (it is required)"]
    rows: List[BatchRow] = []
    for number, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{label} line {number}"
        if len(cells) > len(header):
            problems.append(f"{where}: {len(cells)} cells but the header has {len(header)} columns")
            continue
        record = {column: (cells[i].strip() if i < len(cells) else "") for i, column in enumerate(header)
                  if column in known}  # unknown columns are reported once, on line 1
        row, row_problems = _row(record, where, path.parent, defaults, parser)
        problems += row_problems
        if row is not None:
            rows.append(row)
    return rows, problems


def _row(record: Dict[str, str], where: str, base: Path, defaults: Dict[str, Any],
         parser) -> Tuple[Optional[BatchRow], List[str]]:
    problems: List[str] = []
    input_text = record.get(REQUIRED_COLUMN, "")
    if not input_text:
        return None, [f"{where}: input_dir is empty"]
    input_dir = _resolve(input_text, base)
    if not input_dir.is_dir():
        problems.append(f"{where}: input_dir {input_text!r}: no such folder ({input_dir})")
    values = dict(defaults)
    for column, text in record.items():
        if column in (REQUIRED_COLUMN, "name") or not text:
            continue
        try:
            option_action(parser, column)
        except KeyError:
            problems.append(f"{where}: column {column}: this version of startnet run has no such option; "
                            f"leave the column empty")
            continue
        if column in FILE_COLUMNS:
            resolved = _resolve(text, base)
            if not resolved.exists():
                problems.append(f"{where}: {column} {text!r}: no such file ({resolved})")
            text = str(resolved)
        try:
            values[column] = option_value(parser, column, text)
        except InputError as exc:
            problems.append(f"{where}: column {column}: {exc}")
    name = record.get("name") or input_dir.name
    problems += [f"{where}: {p}" for p in _name_problems(name)]
    if problems:
        return None, problems
    return BatchRow(name=name, input_dir=str(input_dir), values=values, where=where), []


def _resolve(text: str, base: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return (path if path.is_absolute() else base / path).resolve()


def _name_problems(name: str) -> List[str]:
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        return [f"name {name!r} cannot be a folder name inside OUT_DIR (no '/', not starting with '.')"]
    return []


def _folder_rows(root: Path, defaults: Dict[str, Any]) -> Tuple[List[BatchRow], List[str]]:
    rows = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if holds_dicom(child):
            rows.append(BatchRow(name=child.name, input_dir=str(child.resolve()), values=dict(defaults),
                                 where=f"folder {child}"))
    return rows, []


def holds_dicom(folder: Path) -> bool:
    """True when some file under ``folder`` has the DICOM preamble ('DICM' at byte 128)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            try:
                with open(os.path.join(dirpath, filename), "rb") as handle:
                    handle.seek(128)
                    if handle.read(4) == b"DICM":
                        return True
            except OSError:
                continue
    return False


def _check_rows(rows: List[BatchRow]) -> List[str]:
    """Checks across rows and each row's options as ``startnet run`` validates them."""
    problems: List[str] = []
    seen: Dict[str, str] = {}
    recorded: Dict[Tuple[str, int], str] = {}
    for row in rows:
        if row.name in seen:
            problems.append(f"{row.where}: duplicate name {row.name!r} (also {seen[row.name]}); "
                            f"set a distinct 'name' column")
        seen.setdefault(row.name, row.where)
        try:
            run_options(row.values, row.input_dir, "unused").validate()
        except InputError as exc:
            problems.append(f"{row.where}: {exc}")
        if row.values.get("trial_db") and row.values.get("patient_id") and row.values.get("cycle") is not None:
            key = (str(row.values["patient_id"]), int(row.values["cycle"]))
            if key in recorded:
                problems.append(f"{row.where}: patient {key[0]} cycle {key[1]} is also {recorded[key]}; "
                                f"the trial database holds one result per cycle")
            recorded.setdefault(key, row.where)
    return problems
