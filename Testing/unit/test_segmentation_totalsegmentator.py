"""Our TotalSegmentator version dispatch against the exact ``process`` signatures of each version.

The functions below copy the ``TotalSegmentatorLogic.process`` signatures from
lassoan/SlicerTotalSegmentator (TotalSegmentator/TotalSegmentator.py): branch 5.8 = main at the
Slicer 5.10.0 release (2e5f9c3, line 956), main a1f8b4a (line 1005) and main since a40fc4d
(6a82370, line 1039). The test checks the keyword arguments we build bind to each signature and
mean what we want (fast model, only the dosimetry structures); it does not imitate TotalSegmentator.
"""

from __future__ import annotations

import inspect

import pytest

from startnet.errors import InputError
from startnet.mrml.segmentation_logic import DOSIMETRY_STRUCTURES
from startnet.mrml.totalsegmentator import process_kwargs


def process_2e5f9c3(self, inputVolume, outputSegmentation, fast=True, cpu=False, task=None, subset=None,
                    interactive=False, sequenceBrowserNode=None):
    pass


def process_a1f8b4a(self, inputVolume, outputSegmentation, fast=True, fastest=False, cpu=False, task=None,
                    subset=None, interactive=False, sequenceBrowserNode=None, robustCrop=False,
                    removeSmallBlobs=False, higherOrderResampling=False):
    pass


def process_6a82370(self, inputVolume, outputSegmentation, quality=None, cpu=False, task=None, subset=None,
                    interactive=False, sequenceBrowserNode=None):
    pass


def _bound(process, kwargs):
    return inspect.signature(process).bind("logic", "ct", "segmentation", **kwargs).arguments


@pytest.mark.parametrize("process", [process_2e5f9c3, process_a1f8b4a])
def test_slicer_5_8_branch_gets_fast(process):
    kwargs = process_kwargs(process, DOSIMETRY_STRUCTURES)
    assert kwargs == {"fast": True, "task": None, "subset": list(DOSIMETRY_STRUCTURES)}
    arguments = _bound(process, kwargs)
    assert arguments["fast"] is True and arguments["subset"] == list(DOSIMETRY_STRUCTURES)


def test_current_main_gets_quality_not_fast():
    kwargs = process_kwargs(process_6a82370, DOSIMETRY_STRUCTURES)
    assert kwargs == {"quality": "fast", "task": None, "subset": list(DOSIMETRY_STRUCTURES)}
    assert _bound(process_6a82370, kwargs)["quality"] == "fast"
    with pytest.raises(TypeError):  # what the module passed before: fast= on current main
        _bound(process_6a82370, {"fast": True, "task": "total"})
    assert process_kwargs(process_6a82370, ["liver"], fast=False)["quality"] == "normal"


def test_bound_methods_and_unknown_versions():
    class Logic:
        def process(self, inputVolume, outputSegmentation, quality=None, cpu=False, task=None, subset=None,
                    interactive=False, sequenceBrowserNode=None):
            pass

    assert process_kwargs(Logic().process, ["spleen"])["quality"] == "fast"

    def process_unknown(self, inputVolume, outputSegmentation, mode="x", task=None, subset=None):
        pass

    with pytest.raises(InputError, match="neither quality= nor fast="):
        process_kwargs(process_unknown, ["liver"])
    with pytest.raises(InputError, match="no structure"):
        process_kwargs(process_6a82370, [])
