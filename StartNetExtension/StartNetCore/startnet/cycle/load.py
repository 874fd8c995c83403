"""Load step: a cycle's calibrated time points from a DICOM folder or from a list of DICOM files.

A list of files is what Slicer's DICOM database gives (``slicer.dicomDatabase.filesForSeries``
per series, or all files of a patient); the same discovery and calibration rules as for a folder
(``startnet inspect``) apply to exactly those files.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from startnet.dicomio import Cycle, Discovery, Overrides, discover, load_cycle

Source = Union[str, Sequence[str]]


def load_timepoints(source: Source, overrides: Optional[Overrides] = None) -> Tuple[Cycle, Discovery]:
    """The cycle's time points (SPECT Bq/mL, CT HU, timing) and the discovery they came from.

    ``source``: a folder (searched recursively) or a list/tuple of DICOM file paths. The
    ``Discovery`` lists each series' files, e.g. the reference CT's for RT Dose and DICOM SEG.
    """
    files = list(source) if isinstance(source, (list, tuple)) else source
    discovery = discover(files)
    cycle = load_cycle(discovery.input_dir, overrides=overrides, discovery=discovery)
    return cycle, discovery
