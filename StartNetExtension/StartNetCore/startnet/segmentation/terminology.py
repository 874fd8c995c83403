"""Standard terminology (SNOMED CT codes) of the structures dosimetry uses, as Slicer stores it.

Slicer keeps a segment's terminology in the segment tag ``TerminologyEntry`` as
``context~category~type~typeModifier~anatomicContext~region~regionModifier``, each code written
``scheme^value^meaning`` (``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry``, same
format in Slicer v5.8.1 and v5.10.0; Deserialize requires exactly 7 ``~`` fields). The codes are
those of Slicer's "Segmentation category and type - DICOM master list"
(Modules/Loadable/Terminologies/Resources/SegmentationCategoryTypeModifier-DICOM-Master.json,
identical at both tags), so Slicer's terminology selector recognises the segments.

The lumbar vertebrae (``vertebra_L2..L4``, the image-based marrow VOIs) have no type in that list
(checked in v5.8.1 and v5.10.0: it has "Vertebra" and "Lumbar spine" only). They carry the codes
and context SlicerTotalSegmentator writes for its ``vertebrae_L2..L4`` (context "Segmentation
category and type - Total Segmentator", registered by that extension's
Resources/SegmentationCategoryTypeModifier-TotalSegmentator.term.json; codes from its
Resources/totalsegmentator_snomed_mapping.csv; identical on its branch 5.8 = 2e5f9c3 and on main
6a82370), so segments merged from TotalSegmentator keep the entry TotalSegmentator gave them.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
TOTALSEGMENTATOR_CONTEXT = "Segmentation category and type - Total Segmentator"

Code = Tuple[str, str, str]  # (scheme, value, meaning)
ANATOMICAL_STRUCTURE: Code = ("SCT", "123037004", "Anatomical Structure")
ALTERED_STRUCTURE: Code = ("SCT", "49755003", "Morphologically Altered Structure")
NO_CODE: Code = ("", "", "")

# name -> (category, type, type modifier)
STRUCTURE_CODES = {
    "kidney_left": (ANATOMICAL_STRUCTURE, ("SCT", "64033007", "Kidney"), ("SCT", "7771000", "Left")),
    "kidney_right": (ANATOMICAL_STRUCTURE, ("SCT", "64033007", "Kidney"), ("SCT", "24028007", "Right")),
    "liver": (ANATOMICAL_STRUCTURE, ("SCT", "10200004", "Liver"), NO_CODE),
    "spleen": (ANATOMICAL_STRUCTURE, ("SCT", "78961009", "Spleen"), NO_CODE),
    "urinary_bladder": (ANATOMICAL_STRUCTURE, ("SCT", "89837001", "Bladder"), NO_CODE),
    "vertebra_L2": (ANATOMICAL_STRUCTURE, ("SCT", "14293000", "L2 vertebra"), NO_CODE),
    "vertebra_L3": (ANATOMICAL_STRUCTURE, ("SCT", "36470004", "L3 vertebra"), NO_CODE),
    "vertebra_L4": (ANATOMICAL_STRUCTURE, ("SCT", "11994002", "L4 vertebra"), NO_CODE),
}
# structures whose type is not in the DICOM master list: the context that defines it
STRUCTURE_CONTEXTS = {name: TOTALSEGMENTATOR_CONTEXT for name in ("vertebra_L2", "vertebra_L3", "vertebra_L4")}
TUMOUR_CODES = (ALTERED_STRUCTURE, ("SCT", "108369006", "Neoplasm"), NO_CODE)
_TUMOUR = re.compile(r"^tumou?r(_\d+)?$")


def structure_codes(name: str) -> Optional[Tuple[Code, Code, Code]]:
    """(category, type, modifier) codes of a standard structure name, None for other names."""
    if name in STRUCTURE_CODES:
        return STRUCTURE_CODES[name]
    if _TUMOUR.match(name):
        return TUMOUR_CODES
    return None


def _code(code: Code) -> str:
    return "^".join(code)


def terminology_entry(name: str) -> Optional[str]:
    """Slicer's serialized terminology entry for a standard structure name (None when it has none)."""
    codes = structure_codes(name)
    if codes is None:
        return None
    category, type_, modifier = codes
    return "~".join([STRUCTURE_CONTEXTS.get(name, CONTEXT), _code(category), _code(type_), _code(modifier),
                     ANATOMIC_CONTEXT, _code(NO_CODE), _code(NO_CODE)])


def parse_terminology_entry(entry: str) -> Tuple[str, Code, Code, Code]:
    """(context, category, type, modifier) of a serialized entry; ValueError when malformed."""
    fields = entry.split("~")
    if len(fields) != 7:
        raise ValueError(f"terminology entry has {len(fields)} '~' fields, expected 7: {entry!r}")
    codes = [tuple(f.split("^")) for f in fields[1:4]]
    if any(len(c) != 3 for c in codes):
        raise ValueError(f"terminology entry code is not scheme^value^meaning: {entry!r}")
    return (fields[0],) + tuple(codes)  # type: ignore[return-value]
