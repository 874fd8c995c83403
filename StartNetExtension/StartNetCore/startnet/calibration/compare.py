"""Several cameras' calibrations side by side for the trial's harmonisation review.

``compare(paths)`` -> rows (one per file: camera, sensitivity, PSF, recovery per sphere volume), a
text table, an HTML table (``calibration_comparison.html``) and a plot of the recovery curves
(``recovery_curves.png``: RC with its standard uncertainty per sphere, and the closed-form curve of
each camera's fitted PSF, :func:`startnet.segmentation.recovery.sphere_recovery_coefficient`). The
spread between cameras is stated (max/min - 1 of sensitivity, PSF and RC at each common volume).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Dict, List, Optional

from startnet.calibration.calfile import read_calibration
from startnet.calibration.camera import describe
from startnet.errors import OutputError


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def rows_of(paths: List[str]) -> List[Dict[str, Any]]:
    rows = []
    for path in paths:
        data = read_calibration(path)
        rows.append({"file": str(path), "camera": describe(data["camera"]),
                     "collimator": data["camera"].get("collimator", ""),
                     "reconstruction": (data["camera"].get("reconstruction") or {}).get("method", ""),
                     "sensitivity_cps_per_mbq": data.get("sensitivity_cps_per_mbq"),
                     "sensitivity_rel_sd": data.get("sensitivity_rel_sd"),
                     "vendor_quantification_ratio": data.get("vendor_quantification_ratio"),
                     "psf_fwhm_mm": data.get("psf_fwhm_mm"), "psf_fwhm_rel_sd": data.get("psf_fwhm_rel_sd"),
                     "recovery": list(data.get("recovery") or [])})
    return rows


def spread(values: List[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v]
    return max(known) / min(known) - 1.0 if len(known) >= 2 else None


def text_table(rows: List[Dict[str, Any]]) -> str:
    volumes = sorted({round(r["volume_ml"], 2) for row in rows for r in row["recovery"]})
    header = ["camera", "sensitivity cps/MBq", "PSF FWHM mm"] + [f"RC {v:g} mL" for v in volumes]
    body = []
    for row in rows:
        rc = {round(r["volume_ml"], 2): r for r in row["recovery"]}
        body.append([row["camera"],
                     f"{_fmt(row['sensitivity_cps_per_mbq'])} ({_pct(row['sensitivity_rel_sd'])})",
                     f"{_fmt(row['psf_fwhm_mm'])} ({_pct(row['psf_fwhm_rel_sd'])})"]
                    + [f"{rc[v]['rc']:.3f}+-{rc[v]['rc_sd']:.3f}" if v in rc else "-" for v in volumes])
    spreads = ["spread (max/min - 1)", _pct(spread([r["sensitivity_cps_per_mbq"] for r in rows])),
               _pct(spread([r["psf_fwhm_mm"] for r in rows]))]
    for v in volumes:
        spreads.append(_pct(spread([next((x["rc"] for x in row["recovery"] if round(x["volume_ml"], 2) == v), None)
                                    for row in rows])))
    body.append(spreads)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def html_table(rows: List[Dict[str, Any]], plot_name: Optional[str]) -> str:
    lines = text_table(rows).splitlines()
    cells = [[c.strip() for c in line.split(" | ")] for i, line in enumerate(lines) if i != 1]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
    files = "".join(f"<li>{html.escape(r['camera'])}: {html.escape(r['file'])}</li>" for r in rows)
    image = f'<p><img src="{html.escape(plot_name)}" alt="recovery curves"></p>' if plot_name else ""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Camera calibrations</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 8px}</style></head><body>"
            f"<h1>Camera calibrations</h1><table><tr>{head}</tr>{body}</table>{image}<ul>{files}</ul></body></html>\n")


def plot_recovery(rows: List[Dict[str, Any]], path: Path) -> Path:
    import numpy as np
    from matplotlib.figure import Figure

    from startnet.segmentation.recovery import sphere_recovery_coefficient

    figure = Figure(figsize=(7, 4.5), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    for index, row in enumerate(rows):
        color = f"C{index % 10}"
        points = row["recovery"]
        if points:
            axes.errorbar([p["volume_ml"] for p in points], [p["rc"] for p in points],
                          yerr=[p["rc_sd"] for p in points], fmt="o", color=color, capsize=3, label=row["camera"])
        if row["psf_fwhm_mm"]:
            volumes = np.geomspace(0.3, 300.0, 40)
            axes.plot(volumes, [sphere_recovery_coefficient(v, row["psf_fwhm_mm"]) for v in volumes], "-",
                      color=color, alpha=0.6, label=f"Gaussian PSF {row['psf_fwhm_mm']:.1f} mm")
    axes.set_xscale("log")
    axes.set_xlabel("sphere volume (mL)")
    axes.set_ylabel("recovery coefficient")
    axes.set_ylim(0.0, 1.05)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    return path


def write_comparison(rows: List[Dict[str, Any]], out_dir) -> Dict[str, str]:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        png = plot_recovery(rows, out / "recovery_curves.png")
        page = out / "calibration_comparison.html"
        page.write_text(html_table(rows, png.name), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"calibrate compare: cannot write into {out} ({exc})") from exc
    return {"plot": str(png), "html": str(page)}
