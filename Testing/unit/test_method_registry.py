"""Dose engine and partial-volume correction names live in one registry each
(``startnet.dosimetry.methods.DOSE_METHODS``, ``startnet.cycle.pvc.PVC_METHODS``); the command line,
``RunOptions``, ``DoseMaps.method``, the report, the Slicer Dosimetry module and the README read
or match them. Before, the names were spelled in five places, once as ``vsv_density``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from startnet.cli import build_parser
from startnet.cycle.pvc import DEFAULT_PVC, PVC_METHODS
from startnet.cycle.run import RunOptions
from startnet.dosimetry.engines import DOSE_ENGINES, dose_maps
from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD, DOSE_METHODS
from startnet.errors import InputError
from startnet.report.fmt import method_label

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kernel():
    from startnet.dosimetry.kernels import get_kernel

    return get_kernel((4.8, 4.8, 4.8))


@pytest.mark.parametrize("name", list(DOSE_METHODS))
def test_each_engine_names_its_maps_by_its_registry_name(name, kernel):
    tia = np.zeros((9, 9, 9), np.float32)
    tia[4, 4, 4] = 10.0
    maps = dose_maps(name, tia, 4.8 ** 3 / 1000.0, np.ones_like(tia), kernel)
    assert maps.method == name
    assert float(maps.total_gy[4, 4, 4]) > 0


def test_every_registered_name_has_an_engine():
    assert list(DOSE_ENGINES) == list(DOSE_METHODS)


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(InputError, match="led, vsv, vsv-density"):
        dose_maps("vsv_density", np.zeros((3, 3, 3), np.float32), 1.0, 1.0, None)


def _option(parser, command: str, flag: str):
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return next(a for a in subparsers.choices[command]._actions if flag in a.option_strings)


def test_command_line_choices_are_the_registries():
    parser = build_parser()
    for command in ("run", "demo"):
        method = _option(parser, command, "--method")
        assert list(method.choices) == list(DOSE_METHODS) and method.default == DEFAULT_DOSE_METHOD
    pvc = _option(parser, "run", "--pvc")
    assert list(pvc.choices) == list(PVC_METHODS) and pvc.default == DEFAULT_PVC


def test_run_options_accept_every_registered_name_and_nothing_else(tmp_path):
    for method in DOSE_METHODS:
        for pvc in PVC_METHODS:
            RunOptions(str(tmp_path), str(tmp_path), method=method, pvc=pvc).validate()
    defaults = RunOptions(str(tmp_path), str(tmp_path))
    assert (defaults.method, defaults.pvc) == (DEFAULT_DOSE_METHOD, DEFAULT_PVC)
    with pytest.raises(InputError, match="led, vsv, vsv-density"):
        RunOptions(str(tmp_path), str(tmp_path), method="vsv_density").validate()
    with pytest.raises(InputError, match="gtm, rc, none"):
        RunOptions(str(tmp_path), str(tmp_path), pvc="GTM").validate()


def test_report_titles_come_from_the_registry():
    for name, method in DOSE_METHODS.items():
        assert method_label(name) == method.title


def _slicer_method_choice():
    """The Choice([...]) list and default of DosimetryParameterNode.method in Dosimetry.py (Slicer-only module)."""
    tree = ast.parse((REPO / "StartNetExtension" / "Dosimetry" / "Dosimetry.py").read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "DosimetryParameterNode")
    field = next(s for s in node.body if isinstance(s, ast.AnnAssign) and s.target.id == "method")
    choice = next(c for c in ast.walk(field.annotation) if isinstance(c, ast.Call) and c.func.id == "Choice")
    return ast.literal_eval(choice.args[0]), ast.literal_eval(field.value)


def test_slicer_parameter_node_offers_the_registered_engines():
    # the parameter node's Choice fills the combobox when the module loads; importing the registry there
    # would load startnet at Slicer start-up, so the list is spelled there and checked here
    choices, default = _slicer_method_choice()
    assert sorted(choices) == sorted(DOSE_METHODS) and len(choices) == len(DOSE_METHODS)
    assert default == DEFAULT_DOSE_METHOD


def test_slicer_method_tooltip_describes_every_engine():
    ui = (REPO / "StartNetExtension" / "Dosimetry" / "Resources" / "UI" / "Dosimetry.ui").read_text(encoding="utf-8")
    tooltip = re.search(r'name="methodComboBox">\s*<property name="toolTip">\s*<string>([^<]*)', ui).group(1)
    described = re.findall(r"([a-z-]+):", tooltip)
    assert sorted(described) == sorted(DOSE_METHODS)


def test_readme_usage_lists_the_registries():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"--method ([a-z|-]+)\]", readme).group(1).split("|") == list(DOSE_METHODS)
    assert re.search(r"--pvc ([a-z|]+)\]", readme).group(1).split("|") == list(PVC_METHODS)
