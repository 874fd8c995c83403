"""Read a file's pixel data exactly once, from the deferred element recorded at discovery.

Uncompressed little-endian data is read with one ``numpy.fromfile`` at the recorded offset
(no copy through pydicom); other transfer syntaxes go through pydicom's decoders. A missing or
short PixelData element raises DicomInputError naming the file and attribute.
"""

from __future__ import annotations

import os
import warnings
from typing import Dict, Optional, Tuple

import numpy as np

from startnet.dicomio.rawattr import (
    BITS_ALLOCATED,
    BITS_STORED,
    COLUMNS,
    NUMBER_OF_FRAMES,
    PIXEL_REPRESENTATION,
    ROWS,
    SAMPLES_PER_PIXEL,
    raw_text,
    signature,
)
from startnet.errors import DicomInputError

PIXEL_DATA_TAG = 0x7FE00010
_LITTLE_ENDIAN_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
UNDEFINED_LENGTH = 0xFFFFFFFF


def _required_int(ds, keyword: str, tag: str, path: str) -> int:
    value = getattr(ds, keyword, None)
    if value in (None, ""):
        raise DicomInputError(f"{path}: {keyword} {tag} is missing")
    return int(value)


def _dtype(bits: int, signed: int, path: str) -> np.dtype:
    if bits not in (8, 16, 32):
        raise DicomInputError(f"{path}: BitsAllocated (0028,0100) is {bits}, expected 8, 16 or 32")
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


LAYOUT_TAGS = (ROWS, COLUMNS, BITS_ALLOCATED, BITS_STORED, PIXEL_REPRESENTATION, SAMPLES_PER_PIXEL,
               NUMBER_OF_FRAMES)


def _layout(ds, path: str, syntax: str) -> Tuple[int, int, int, int, int, int, np.dtype]:
    rows = _required_int(ds, "Rows", "(0028,0010)", path)
    cols = _required_int(ds, "Columns", "(0028,0011)", path)
    bits = _required_int(ds, "BitsAllocated", "(0028,0100)", path)
    signed = _required_int(ds, "PixelRepresentation", "(0028,0103)", path)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise DicomInputError(f"{path}: SamplesPerPixel (0028,0002) is {samples}, expected 1 (greyscale)")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    stored = int(getattr(ds, "BitsStored", bits) or bits)
    return rows, cols, bits, signed, frames, stored, _dtype(bits, signed, path)


def read_frames(ds, path: str, layouts: Optional[Dict] = None) -> np.ndarray:
    """Stored pixel values of ``ds`` as an array (frames, rows, columns); not rescaled.

    ``layouts`` (a dict kept by the caller across the files of a series) caches the pixel layout
    by the raw bytes of its attributes, so identical headers are decoded once.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = raw_text(meta, 0x00020010) if meta is not None else ""
    syntax = syntax or "1.2.840.10008.1.2"
    key = (signature(ds, LAYOUT_TAGS), syntax)
    layout = layouts.get(key) if layouts is not None else None
    if layout is None:
        layout = _layout(ds, path, syntax)
        if layouts is not None:
            layouts[key] = layout
    rows, cols, bits, signed, frames, stored_bits, dtype = layout
    expected = rows * cols * frames
    try:
        element = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    except TypeError:  # pydicom < 3 (Slicer's bundled one) reads the deferred value here, once
        element = ds.get_item(PIXEL_DATA_TAG)
    if element is None:
        raise DicomInputError(f"{path}: PixelData (7FE0,0010) is missing (no image, or the file is truncated)")
    if syntax in _LITTLE_ENDIAN_UNCOMPRESSED or syntax == _BIG_ENDIAN:
        byte_order = ">" if syntax == _BIG_ENDIAN else "<"
        dtype = dtype.newbyteorder(byte_order)
        value = getattr(element, "value", None)
        tell = getattr(element, "value_tell", None)
        length = getattr(element, "length", None)
        if value is None and tell is not None and length != UNDEFINED_LENGTH:
            available = (os.path.getsize(path) - tell) // dtype.itemsize
            if available < expected:
                _short(path, available * dtype.itemsize, expected * dtype.itemsize)
            arr = np.fromfile(path, dtype=dtype, count=expected, offset=tell)
        else:
            raw = ds.PixelData
            if len(raw) < expected * dtype.itemsize:
                _short(path, len(raw), expected * dtype.itemsize)
            arr = np.frombuffer(raw, dtype=dtype, count=expected)
        arr = arr.astype(dtype.newbyteorder("="), copy=False)
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = np.asarray(ds.pixel_array)
        except Exception as exc:  # noqa: BLE001 - decoder missing or data corrupt
            raise DicomInputError(
                f"{path}: PixelData (7FE0,0010) with TransferSyntaxUID (0002,0010) {syntax} cannot be "
                f"decoded ({type(exc).__name__}: {exc})"
            ) from exc
        if arr.size != expected:
            _short(path, arr.size * dtype.itemsize, expected * dtype.itemsize)
    arr = arr.reshape(frames, rows, cols)
    if stored_bits < bits:
        shift = bits - stored_bits
        if signed:
            arr = (arr << shift) >> shift
        else:
            arr = arr & np.array((1 << stored_bits) - 1, dtype=arr.dtype)
    return arr


def _short(path: str, got: int, expected: int) -> None:
    raise DicomInputError(
        f"{path}: PixelData (7FE0,0010) is truncated: {got} of {expected} bytes expected from "
        "Rows x Columns x NumberOfFrames x BitsAllocated"
    )
