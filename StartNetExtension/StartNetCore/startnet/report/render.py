"""``write_report``: the per-cycle report as ``report.html``, ``report.pdf`` and figure PNGs.

Everything is first written into a temporary folder inside ``out_dir`` and moved into place only
when all files are complete, so a failed run never leaves a half-written report that looks like
a result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

from startnet.errors import OutputError
from startnet.report import fmt
from startnet.report.html import render_figures, render_html
from startnet.report.model import ReportFiles, ReportInput
from startnet.report.pdf import render_pdf

FIGURE_DIR = "report_figures"


def structure_order(inp: ReportInput):
    """Structures to show: those in results (kidneys first), then any only in masks or TACs."""
    names = list((inp.results.get("structures") or {}).keys())
    names += [n for n in list(inp.masks) + list(inp.tacs) if n not in names]
    return fmt.ordered_structures(names)


def write_report(report_input: ReportInput, out_dir: Union[str, Path], *, tac_log_y: bool = True) -> ReportFiles:
    """Render the report into ``out_dir``; returns the paths written.

    Raises InputError for inconsistent input (named field) and OutputError when ``out_dir``
    cannot be written.
    """
    report_input.validate()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=str(out)))
    except OSError as exc:
        raise OutputError(f"cannot write the report into {out}: {exc.strerror or exc}") from exc
    try:
        names = structure_order(report_input)
        pngs = render_figures(report_input, names, log_y=tac_log_y)
        (staging / FIGURE_DIR).mkdir()
        for name, data in pngs.items():
            (staging / FIGURE_DIR / f"{name}.png").write_bytes(data)
        (staging / "report.html").write_text(render_html(report_input, names, pngs), encoding="utf-8")
        render_pdf(report_input, str(staging / "report.pdf"), names, log_y=tac_log_y)
        final_figures = out / FIGURE_DIR
        if final_figures.exists():
            shutil.rmtree(final_figures)
        os.replace(staging / FIGURE_DIR, final_figures)
        os.replace(staging / "report.html", out / "report.html")
        os.replace(staging / "report.pdf", out / "report.pdf")
    except OSError as exc:
        raise OutputError(f"cannot write the report into {out}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ReportFiles(html=out / "report.html", pdf=out / "report.pdf",
                       figures={name: out / FIGURE_DIR / f"{name}.png" for name in pngs})
