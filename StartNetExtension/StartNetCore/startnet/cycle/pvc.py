"""Partial-volume corrections a run can use, by the one name the command line (``--pvc``),
``RunOptions``, the analysis and ``results.json`` use (see :mod:`startnet.cycle.quantify` for the
transfer matrix and :func:`startnet.cycle.analyse.structure_activities` for how each is applied).

Kept free of numerical imports so that the command line offers the names without slowing its start.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict

GTM = "gtm"
RC = "rc"
NONE = "none"
DEFAULT_PVC = GTM

# name -> what it does (the command line's help)
PVC_METHODS: Dict[str, str] = OrderedDict((
    (GTM, "geometric transfer matrix (default)"),
    (RC, "recovery coefficients"),
    (NONE, "none"),
))
