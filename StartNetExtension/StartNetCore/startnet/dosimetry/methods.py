"""The dose engines' names: the one place they are spelled.

Read by the command line (``--method`` choices), ``RunOptions``, ``results.json`` (``method``),
``DoseMaps.method``, the RT Dose export and the report; the Slicer Dosimetry module's list is
checked against it by a test. The engines themselves are registered under these names in
:data:`startnet.dosimetry.engines.DOSE_ENGINES`. This module imports nothing numerical, so the
command line offers the names without slowing its start.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict

from startnet.errors import InputError

LED = "led"
VSV = "vsv"
VSV_DENSITY = "vsv-density"
DEFAULT_DOSE_METHOD = VSV_DENSITY


@dataclass(frozen=True)
class DoseMethod:
    name: str
    title: str  # as the report prints it
    # RT Dose Tissue Heterogeneity Correction (3004,0014) with a CT (defined terms IMAGE, ROI_OVERRIDE, WATER):
    # IMAGE when the dose map follows the CT density (LED divides by the CT mass of each voxel, vsv-density scales
    # by it), WATER when the whole volume is water (plain vsv); see :func:`tissue_heterogeneity_correction`
    tissue_heterogeneity_correction: str


DOSE_METHODS: Dict[str, DoseMethod] = OrderedDict((method.name, method) for method in (
    DoseMethod(LED, "Local energy deposition", "IMAGE"),
    DoseMethod(VSV, "Voxel S-value convolution", "WATER"),
    DoseMethod(VSV_DENSITY, "Voxel S-value convolution, density-corrected", "IMAGE"),
))


def dose_method(name: str) -> DoseMethod:
    """The dose engine called ``name``; an unknown name -> InputError listing the known ones."""
    if name not in DOSE_METHODS:
        raise InputError(f"dose method {name!r}: expected one of {', '.join(DOSE_METHODS)}")
    return DOSE_METHODS[name]


def tissue_heterogeneity_correction(name: str, with_ct_density: bool) -> str:
    """RT Dose (3004,0014) for the engine ``name``: its own term with a CT density map, WATER without a CT
    (the engines then use 1 g/mL everywhere)."""
    return dose_method(name).tissue_heterogeneity_correction if with_ct_density else "WATER"
