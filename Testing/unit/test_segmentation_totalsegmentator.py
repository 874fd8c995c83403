"""Our TotalSegmentator version dispatch against the exact ``process`` signatures of each version.

The functions below copy the ``TotalSegmentatorLogic.process`` signatures from
lassoan/SlicerTotalSegmentator (TotalSegmentator/TotalSegmentator.py): branch 5.8 = main at the
Slicer 5.10.0 release (2e5f9c3, line 956), main a1f8b4a (line 1005) and main since a40fc4d
(6a82370, line 1039). The test checks the keyword arguments we build bind to each signature and
mean what we want (fast model, only the dosimetry structures). ``_options_*`` copy the lines of
``processVolume`` that turn them into TotalSegmentator's command-line options, to show that ``--fast``
is really passed with ``--roi_subset`` (with ``task=None`` it was dropped).
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


def _options_2e5f9c3(fast=True, task=None, subset=None, fastest=False):
    """Options ``process``/``processVolume`` pass to TotalSegmentator in 2e5f9c3 (973-974, 1093-1116;
    ``self.tasks['total']`` 415; a1f8b4a 1028, 1162-1187 adds ``fastest`` the same way)."""
    tasks = {"total": {"supportsFast": True, "supportsFastest": True, "supportsMultiLabel": True}}
    if task is None and not subset:
        task = "total"
    multilabel = task in tasks and tasks[task].get("supportsMultiLabel", False)
    if not (task in tasks and tasks[task].get("supportsFast", False)):
        fast = False
    if not (task in tasks and tasks[task].get("supportsFastest", False)):
        fastest = False
    options = ["--ml"] if multilabel else []
    if task:
        options += ["--task", task]
    if fastest:
        options.append("--fastest")
    elif fast:
        options.append("--fast")
    if subset:
        options += ["--roi_subset", *subset]
    return options


def _options_6a82370(quality=None, task=None, subset=None):
    """The same for main 6a82370 (1060-1066, 1193-1232; ``getSupportedQualityModesForTask`` 625-629,
    ``self.tasks['total']`` 466). ``--device`` and the opt-in flags are left out."""
    tasks = {"total": {"qualityModes": ["normal", "fast", "faster"], "supportsMultiLabel": True}}
    if quality is True:
        quality = "fast"
    elif quality is False:
        quality = "normal"
    if task is None and not subset:
        task = "total"
    multilabel = task in tasks and tasks[task].get("supportsMultiLabel", False)
    supported = tasks[task]["qualityModes"] if task in tasks else ["normal"]
    if quality not in supported:
        quality = supported[0]
    options = ["--ml"] if multilabel else []
    if task:
        options += ["--task", task]
    if quality == "faster":
        options.append("--fastest")
    elif quality == "fast":
        options.append("--fast")
    if subset:
        options += ["--roi_subset", *subset]
    return options


def _options(process, kwargs):
    arguments = _bound(process, kwargs)
    options = _options_6a82370 if "quality" in inspect.signature(process).parameters else _options_2e5f9c3
    return options(**{k: v for k, v in arguments.items() if k in ("fast", "fastest", "quality", "task", "subset")})


@pytest.mark.parametrize("process", [process_2e5f9c3, process_a1f8b4a])
def test_slicer_5_8_branch_gets_fast(process):
    kwargs = process_kwargs(process, DOSIMETRY_STRUCTURES)
    assert kwargs == {"fast": True, "task": "total", "subset": list(DOSIMETRY_STRUCTURES)}
    arguments = _bound(process, kwargs)
    assert arguments["fast"] is True and arguments["subset"] == list(DOSIMETRY_STRUCTURES)


def test_current_main_gets_quality_not_fast():
    kwargs = process_kwargs(process_6a82370, DOSIMETRY_STRUCTURES)
    assert kwargs == {"quality": "fast", "task": "total", "subset": list(DOSIMETRY_STRUCTURES)}
    assert _bound(process_6a82370, kwargs)["quality"] == "fast"
    with pytest.raises(TypeError):  # what the module passed before: fast= on current main
        _bound(process_6a82370, {"fast": True, "task": "total"})
    assert process_kwargs(process_6a82370, ["liver"], fast=False)["quality"] == "normal"


@pytest.mark.parametrize("process", [process_2e5f9c3, process_a1f8b4a, process_6a82370])
def test_fast_reaches_totalsegmentator_together_with_the_subset(process):
    subset = list(DOSIMETRY_STRUCTURES) + ["vertebra_L2", "vertebra_L3", "vertebra_L4"]
    classes = list(DOSIMETRY_STRUCTURES) + ["vertebrae_L2", "vertebrae_L3", "vertebrae_L4"]
    options = _options(process, process_kwargs(process, subset))
    assert options == ["--ml", "--task", "total", "--fast", "--roi_subset", *classes]
    normal = _options(process, process_kwargs(process, subset, fast=False))
    assert normal == ["--ml", "--task", "total", "--roi_subset", *classes]


@pytest.mark.parametrize("process", [process_2e5f9c3, process_a1f8b4a, process_6a82370])
def test_task_none_with_a_subset_drops_fast(process):
    """Why task="total": the former call (task=None) ran the full-resolution model on every version."""
    fast = {"quality": "fast"} if "quality" in inspect.signature(process).parameters else {"fast": True}
    options = _options(process, {**fast, "task": None, "subset": ["liver"]})
    assert options == ["--roi_subset", "liver"]


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
