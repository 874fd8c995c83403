"""``startnet compare-segmentations A B``: per-segment agreement of two segmentations.

B is resampled (nearest neighbour) onto A's grid; a dose map (any grid, Gy) is resampled
linearly onto A's grid. Segments are matched by name (TotalSegmentator/Slicer spellings
understood). Prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from startnet.errors import InputError

if TYPE_CHECKING:
    import SimpleITK as sitk

# SimpleITK, scipy.ndimage and the comparison code are imported when the command runs: every startnet
# command builds this parser, and importing them here cost each one 0.25 s of start-up


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare-segmentations",
        help="compare two segmentations: Dice, Jaccard, HD95, surface distance, volume and dose change",
        description="Compare segmentation B against A segment by segment (.seg.nrrd, DICOM SEG or labelmap).",
    )
    parser.add_argument("a", help="segmentation A (the reference grid)")
    parser.add_argument("b", help="segmentation B")
    parser.add_argument("--labels-a", help="JSON {value: name} for a labelmap A")
    parser.add_argument("--labels-b", help="JSON {value: name} for a labelmap B")
    parser.add_argument("--dose", help="absorbed-dose map in Gy (NRRD/NIfTI/MHA) for the mean-dose change")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def _reference_grid(path: Path) -> sitk.Image:
    """A's voxel grid (first segment's grid for DICOM SEG)."""
    import numpy as np
    import SimpleITK as sitk

    from startnet.segmentation.io import _is_dicom, _read_dicom_seg

    if _is_dicom(path):
        return _read_dicom_seg(path)[0][1]
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read as an image ({exc})") from exc
    grid = sitk.Image([int(v) for v in reader.GetSize()[:3]], sitk.sitkUInt8)
    grid.SetSpacing(reader.GetSpacing()[:3])
    grid.SetOrigin(reader.GetOrigin()[:3])
    direction = np.asarray(reader.GetDirection()).reshape(reader.GetDimension(), -1)[:3, :3]
    grid.SetDirection(tuple(float(v) for v in direction.ravel()))
    return grid


def run(args) -> int:
    import SimpleITK as sitk

    from startnet.segmentation.compare import compare_segmentations, format_table
    from startnet.segmentation.container import canonical_name
    from startnet.segmentation.io import load_segmentation

    path_a, path_b = Path(args.a), Path(args.b)
    for path in (path_a, path_b):
        if not path.is_file():
            raise InputError(f"segmentation file {path} does not exist")
    reference = _reference_grid(path_a)
    seg_a = load_segmentation(path_a, reference, args.labels_a)
    seg_b = load_segmentation(path_b, reference, args.labels_b)
    dose = None
    if args.dose:
        try:
            dose_image = sitk.ReadImage(str(args.dose), sitk.sitkFloat64)
        except RuntimeError as exc:
            raise InputError(f"dose map {args.dose}: cannot read ({exc})") from exc
        dose = sitk.Resample(dose_image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    rows = compare_segmentations(seg_a, seg_b, seg_a.spacing_mm, dose)
    compared = {r.name for r in rows}
    only_a = [n for n in seg_a.names if canonical_name(n) not in compared]
    only_b = [n for n in seg_b.names if canonical_name(n) not in compared]
    if args.json:
        print(json.dumps({"a": str(path_a), "b": str(path_b), "dose": args.dose,
                          "segments": [r.to_dict() for r in rows], "only_in_a": only_a, "only_in_b": only_b},
                         indent=2))
    else:
        print(format_table(rows))
        for label, names in (("A", only_a), ("B", only_b)):
            if names:
                print(f"not compared (only in {label}): {', '.join(names)}")
    return 0
