"""START-NET dosimetry core: pure Python (numpy/scipy/SimpleITK/pydicom/numba), no Qt, no slicer.app.

Data flows one way: ``dicomio`` (calibrated activity images with timing) -> ``registration``
-> ``segmentation`` -> ``kinetics`` (time-integrated activity) -> ``dosimetry`` (dose, DVH, BED,
uncertainty) -> ``report`` and ``trial``. ``pipeline`` is the only module that chains the steps;
``mrml`` is the only module that imports ``slicer``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from startnet.errors import StartNetError

__all__ = ["StartNetError", "__version__"]
