"""Digital phantom patient with known kinetics that writes realistic DICOM and its ground truth.

Public API::

    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
    phantom = build_phantom(PhantomConfig(preset="small", seed=1, noise=False, blur=False))
    files = write_phantom_dicom(phantom, out_dir)

See :mod:`startnet.phantom.model` (Phantom, PhantomTimepoint), :mod:`startnet.phantom.config`
(PhantomConfig, presets), :mod:`startnet.phantom.motion` (transform direction),
:mod:`startnet.phantom.truth` (ground-truth methods) and :mod:`startnet.phantom.dicom_writer`
(what is written and how).
"""

from __future__ import annotations

from startnet.phantom.config import GridSpec, PhantomConfig
from startnet.phantom.export import PhantomFiles, TimepointFiles, write_phantom_dicom
from startnet.phantom.model import Phantom, PhantomTimepoint, build_phantom

__all__ = [
    "GridSpec",
    "Phantom",
    "PhantomConfig",
    "PhantomFiles",
    "PhantomTimepoint",
    "TimepointFiles",
    "build_phantom",
    "write_phantom_dicom",
]
