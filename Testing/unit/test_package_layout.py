"""The package layout: subcommands stand on their own and ``startnet`` has no import cycles.

The import graph is read statically (``import_graph``), including imports inside functions, so a
cycle hidden behind a function-level import (``startnet.demo`` <-> ``startnet.pipeline_cli`` before
the cycle steps moved to ``startnet.cycle``) is found too.
"""

from __future__ import annotations

import importlib

import pytest
from import_graph import find_cycles, import_graph, module_files, reachable

from startnet.cli import COMMAND_MODULES, build_parser

GRAPH = import_graph()


def test_the_graph_sees_function_level_imports():
    # commands.run imports the cycle runner only inside its handler
    assert "startnet.cycle.run" in GRAPH["startnet.commands.run"]
    # lazy exports resolve to the submodule that defines the name
    assert "startnet.dicomio.loader" in GRAPH["startnet.cycle.load"]


def test_no_import_cycles_in_startnet():
    assert find_cycles(GRAPH) == []


def test_find_cycles_reports_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module_name", COMMAND_MODULES)
def test_each_subcommand_module_imports_and_registers(module_name):
    module = importlib.import_module(module_name)
    assert callable(module.register)


@pytest.mark.parametrize("module_name", COMMAND_MODULES)
def test_no_subcommand_imports_another_subcommand(module_name):
    assert module_name in module_files(), module_name
    others = set(COMMAND_MODULES) - {module_name}
    assert reachable(GRAPH, module_name) & others == set()


def test_every_subcommand_is_listed_once():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert list(subparsers.choices) == ["run", "demo", "accumulate", "batch", "phantom", "inspect",
                                        "compare-segmentations", "trial", "calibrate"]


def test_no_loose_cycle_modules_at_the_package_top():
    top = {name for name in module_files() if name.count(".") == 1}
    moved = {"pipeline", "pipeline_cli", "pipeline_trial", "cycle_analysis", "structures", "quantification",
             "outputs", "report_input", "accumulate", "demo"}
    assert {f"startnet.{name}" for name in moved} & top == set()


def test_cycle_package_exports_resolve_lazily():
    import subprocess
    import sys

    import startnet.cycle as cycle

    assert all(getattr(cycle, name) is not None for name in cycle.__all__)
    # importing the package itself loads none of its steps (cheap for the command line and Slicer)
    code = "import sys, startnet.cycle; print(sorted(m for m in sys.modules if m.startswith('startnet.cycle.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
