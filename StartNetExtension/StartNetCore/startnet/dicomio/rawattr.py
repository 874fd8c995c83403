"""Fast access to text attributes of datasets read by pydicom, without its per-value conversion.

pydicom converts a raw element (bytes) to a Python value on first attribute access, which costs
tens of microseconds; over ~1000 CT slices per time point that dominates loading. Text VRs
(UI, CS, DS, IS, DA, TM, LO, SH) are ASCII in the file, so their raw bytes can be decoded
directly; these helpers do that and fall back to the converted value when pydicom already has
it. Binary VRs (US, UL, ...) are only ever compared as raw bytes here, never decoded.
"""

from __future__ import annotations

from typing import List, Optional

from startnet.errors import DicomInputError

ROWS = 0x00280010
COLUMNS = 0x00280011
BITS_ALLOCATED = 0x00280100
BITS_STORED = 0x00280101
PIXEL_REPRESENTATION = 0x00280103
SAMPLES_PER_PIXEL = 0x00280002
NUMBER_OF_FRAMES = 0x00280008
PIXEL_SPACING = 0x00280030
IMAGE_ORIENTATION = 0x00200037
IMAGE_POSITION = 0x00200032
RESCALE_INTERCEPT = 0x00281052
RESCALE_SLOPE = 0x00281053
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E


def raw_value(ds, tag: int):
    """The element's raw bytes if pydicom has not converted it yet, else its value; None if absent."""
    element = ds.get_item(tag)
    return None if element is None else element.value


def raw_text(ds, tag: int) -> str:
    """A text attribute as str ('' when absent); multi-values joined by a backslash."""
    value = raw_value(ds, tag)
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1").strip("\x00 ").strip()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def raw_floats(ds, tag: int, n: int, where: str, attribute: str) -> Optional[List[float]]:
    """A decimal-string attribute (DS) as ``n`` floats, or None when absent."""
    text = raw_text(ds, tag)
    if not text:
        return None
    try:
        values = [float(v) for v in text.split("\\")]
    except ValueError as exc:
        raise DicomInputError(f"{where}: {attribute} is {text!r}, expected {n} numbers") from exc
    if len(values) != n:
        raise DicomInputError(f"{where}: {attribute} is {text!r}, expected {n} numbers")
    return values


def signature(ds, tags) -> tuple:
    """Raw values of ``tags`` (bytes or converted values) for cheap equality between files."""
    return tuple(_hashable(raw_value(ds, tag)) for tag in tags)


def _hashable(value):
    if value is None or isinstance(value, (bytes, str, int, float)):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    try:
        return tuple(str(v) for v in value)
    except TypeError:
        return str(value)
