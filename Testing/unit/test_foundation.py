"""Package foundation: decay data, the CLI error contract, the Python 3.9 checker, environment report."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

from startnet import cli
from startnet.about import environment_report
from startnet.errors import InputError
from startnet.physics.lu177 import LU177

ROOT = Path(__file__).resolve().parents[2]


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_py39", ROOT / "tools" / "check_py39.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lu177_decay_data_matches_icrp107():
    assert LU177.half_life_h == pytest.approx(159.528, abs=1e-3)
    assert LU177.decay_constant_per_h == pytest.approx(4.344988e-3, rel=1e-6)
    assert LU177.decay_constant_per_s == pytest.approx(1.206941e-6, rel=1e-6)
    # REFERENCE.md: 2.36999e-8 J per MBq.s = 0.08532 mJ per MBq.h
    assert LU177.electron_energy_j_per_mbq_h == pytest.approx(0.08532e-3, rel=2e-4)
    assert LU177.decay_factor(LU177.half_life_h) == pytest.approx(0.5)


def test_led_of_uniform_unit_concentration_is_the_reference_value():
    # 1 MBq/mL for 1 h in water (1 g/mL): electrons only -> 0.08532 Gy
    dose_gy = LU177.electron_energy_j_per_mbq_h * 1.0 / 1.0e-3
    assert dose_gy == pytest.approx(0.08532, rel=2e-4)


def test_cli_turns_user_errors_into_one_line_and_exit_code(capsys, monkeypatch):
    def failing_handler(args):
        raise InputError("scan.dcm: attribute (0018,1242) ActualFrameDuration missing; expected milliseconds")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.add_parser("explode").set_defaults(handler=failing_handler)
    assert cli.main(["explode"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert err.startswith("error: scan.dcm: attribute (0018,1242)")


def test_cli_hides_tracebacks_of_internal_errors(capsys, monkeypatch):
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.add_parser("bug").set_defaults(handler=lambda args: 1 / 0)
    assert cli.main(["bug"]) == cli.INTERNAL_ERROR_EXIT
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ZeroDivisionError" in err


def test_console_script_runs_help_and_version():
    result = subprocess.run([sys.executable, "-m", "startnet", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("startnet ")
    result = subprocess.run([sys.executable, "-m", "startnet", "--help"], capture_output=True, text=True, check=True)
    assert "START-NET" in result.stdout


def test_py39_checker_finds_runtime_unions_and_accepts_deferred_annotations():
    checker = _load_checker()
    ok = "from __future__ import annotations\ndef f(x: int | None) -> list[int] | None:\n    return None\n"
    assert checker.check_source(Path("ok.py"), ok) == []
    no_future = "def f(x: int | None):\n    return x\n"
    assert "no 'from __future__" in checker.check_source(Path("a.py"), no_future)[0]
    mapped = ("from __future__ import annotations\nclass C:\n    name: Mapped[str | None]\n")
    assert "Mapped" in checker.check_source(Path("m.py"), mapped)[0]
    runtime = "x = isinstance(3, int | float)\n"
    assert "runtime 'X | Y'" in checker.check_source(Path("r.py"), runtime)[0]
    pattern = "match x:\n    case 1:\n        pass\n"
    assert "syntax not valid on Python 3.9" in checker.check_source(Path("p.py"), pattern)[0]
    strict = "from __future__ import annotations\nz = zip([1], [2], strict=True)\n"
    assert "strict" in checker.check_source(Path("z.py"), strict)[0]


def test_environment_report_lists_dependencies():
    report = environment_report()
    assert report["dependencies"]["numpy"] is not None
    assert report["dependencies"]["SimpleITK"] is not None
    assert math.isfinite(float(report["cpu_count"]))
