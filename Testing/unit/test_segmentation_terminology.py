"""Standard names -> Slicer terminology entries (format of vtkSlicerTerminologiesModuleLogic v5.8.1/v5.10.0)."""

from __future__ import annotations

import pytest

from startnet.segmentation.terminology import CONTEXT, parse_terminology_entry, terminology_entry


@pytest.mark.parametrize("name, category, type_, modifier", [
    ("kidney_left", "123037004", "64033007", "7771000"),
    ("kidney_right", "123037004", "64033007", "24028007"),
    ("liver", "123037004", "10200004", ""),
    ("spleen", "123037004", "78961009", ""),
    ("urinary_bladder", "123037004", "89837001", ""),
    ("tumour_1", "49755003", "108369006", ""),
    ("tumour_12", "49755003", "108369006", ""),
])
def test_codes(name, category, type_, modifier):
    entry = terminology_entry(name)
    assert entry.count("~") == 6 and "|" not in entry  # Deserialize needs exactly 7 fields
    context, c, t, m = parse_terminology_entry(entry)
    assert context == CONTEXT
    assert (c[0], c[1], t[0], t[1], m[1]) == ("SCT", category, "SCT", type_, modifier)
    assert entry.endswith("~Anatomic codes - DICOM master list~^^~^^")


def test_exact_kidney_entry_and_unknown_names():
    assert terminology_entry("kidney_left") == (
        "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure~"
        "SCT^64033007^Kidney~SCT^7771000^Left~Anatomic codes - DICOM master list~^^~^^")
    assert terminology_entry("my_lesion") is None and terminology_entry("tumour_x") is None
    with pytest.raises(ValueError):
        parse_terminology_entry("a~b")
