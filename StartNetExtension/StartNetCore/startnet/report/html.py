"""Self-contained HTML report: inline CSS, figures as PNG data URIs, printable on A4.

The tables and texts come from ``startnet.report.tables`` (the same as the PDF's); each figure is
drawn on its own small matplotlib Figure and also returned as PNG bytes so the caller can save
them beside the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from typing import Dict, List

import matplotlib
from matplotlib.figure import Figure

from startnet import __version__
from startnet.report import figures, fmt, tables
from startnet.report.lesions import lesion_html
from startnet.report.marrow import marrow_html
from startnet.report.model import ReportInput

CSS = """
@page { size: A4 portrait; margin: 12mm; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 10pt; color: #222;
       max-width: 190mm; margin: 0 auto; }
header { background: #1f3a5f; color: #fff; padding: 8px 12px; display: flex; justify-content: space-between;
         align-items: center; }
header h1 { font-size: 16pt; margin: 0; }
header .who { font-weight: bold; font-size: 12pt; }
h2 { color: #1f3a5f; font-size: 10pt; text-transform: uppercase; border-bottom: 1px solid #1f3a5f;
     margin: 14px 0 6px 0; }
.info { display: grid; grid-template-columns: repeat(3, 1fr); gap: 2px 12px; margin: 8px 0; font-size: 9pt; }
.info span { color: #555; }
.row { display: flex; gap: 14px; align-items: flex-start; }
.row > div { flex: 1; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; }
th { background: #e8edf3; color: #1f3a5f; text-align: right; padding: 2px 5px; }
td { text-align: right; padding: 2px 5px; border-bottom: 1px solid #eceff3; }
th:first-child, td:first-child { text-align: left; }
td.l, th.l { text-align: left; }
tr.emph td { font-weight: bold; background: #dbe7f6; }
p.note { font-size: 7.5pt; font-style: italic; color: #555; margin: 2px 0; }
.key { background: #eef3fa; border: 1px solid #1f3a5f; border-radius: 6px; padding: 8px 12px; }
.key .big { font-size: 20pt; font-weight: bold; color: #1f3a5f; }
.warnings { background: #fff4ce; border: 2px solid #d68910; border-radius: 5px; padding: 6px 12px; color: #7a4b00; }
.ok { background: #eef7ee; border: 2px solid #5d9c59; border-radius: 5px; padding: 6px 12px; color: #2e6b2b; }
.refused { color: #b03a2e; font-weight: bold; }
img { max-width: 100%; }
.sign { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; margin-top: 8px; }
.sign .line { border-bottom: 1px solid #000; height: 22px; margin-bottom: 2px; }
.sign small { color: #555; }
footer { font-size: 7pt; color: #666; margin-top: 12px; }
@media print { h2 { break-after: avoid; } .row, table, img { break-inside: avoid; } }
"""


def _png(fig: Figure, dpi: int = 150) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def render_figures(inp: ReportInput, names: List[str], log_y: bool = True) -> Dict[str, bytes]:
    """Each report figure as PNG bytes: dose_maps, tacs, dvhs, kidney_budget."""
    colours = figures.structure_colours(names)
    out: Dict[str, bytes] = {}
    with matplotlib.rc_context({"font.family": "DejaVu Sans", "axes.linewidth": 0.6}):
        fig = Figure(figsize=(7.2, 3.3))
        centre = figures.slice_centre(inp)
        vmax = figures.dose_display_max(inp, centre)
        image = None
        for i, plane in enumerate(("axial", "coronal")):
            ax = fig.add_axes((0.01 + i * 0.44, 0.03, 0.425, 0.89))
            image = figures.draw_dose_slice(ax, inp, plane, centre, vmax, colours)
        bar = fig.colorbar(image, cax=fig.add_axes((0.895, 0.08, 0.018, 0.8)))
        bar.set_label("Absorbed dose (Gy)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
        out["dose_maps"] = _png(fig)
        fig = Figure(figsize=(3.6, 2.6))
        figures.draw_tacs(fig.add_axes((0.17, 0.16, 0.80, 0.80)), inp, names, colours, log_y=log_y)
        out["tacs"] = _png(fig)
        fig = Figure(figsize=(3.6, 2.6))
        figures.draw_dvhs(fig.add_axes((0.15, 0.16, 0.82, 0.80)), inp, names, colours)
        out["dvhs"] = _png(fig)
        fig = Figure(figsize=(3.6, 1.2))
        figures.draw_kidney_budget(fig.add_axes((0.04, 0.36, 0.92, 0.60)), tables.kidney_budget(inp.results))
        out["kidney_budget"] = _png(fig)
    return out


def _table_html(table: tables.Table) -> str:
    head = "".join(f'<th class="{a}">{html.escape(h)}</th>' for h, a in zip(table.header, table.align))
    body = []
    for i, row in enumerate(table.rows):
        cls = ' class="emph"' if i in table.emphasis else ""
        cells = "".join(f'<td class="{a}">{html.escape(c)}</td>' for c, a in zip(row, table.align))
        body.append(f"<tr{cls}>{cells}</tr>")
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render_html(inp: ReportInput, names: List[str], pngs: Dict[str, bytes]) -> str:
    r = inp.results
    e = html.escape
    software = r.get("software") or {}
    cycle = r.get("cycle")
    injected = fmt.number(r.get("injected_activity_mbq"))
    budget = tables.kidney_budget(r)
    warnings = tables.collect_warnings(r)
    activity = fmt.MISSING if injected is None else f"{injected:.0f} MBq ({injected / 1000:.2f} GBq)"
    cycle_text = fmt.MISSING if cycle is None else str(cycle)
    info = [("Patient (pseudonym)", r.get("patient_id") or fmt.MISSING),
            ("Cycle", cycle_text),
            ("Injection", fmt.datetime_text(r.get("injection_datetime"))),
            ("Injected activity", activity),
            ("Radiopharmaceutical", r.get("radiopharmaceutical") or fmt.MISSING),
            ("Dosimetry method", fmt.method_label(r.get("method"))),
            ("Software", f"{software.get('name', 'startnet')} {software.get('version', __version__)}"),
            ("Report generated", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ("Time points", str(len(r.get("timepoints") or [])))]
    info_html = "".join(f"<div><span>{e(k)}:</span> <b>{e(str(v))}</b></div>" for k, v in info)
    mean = fmt.number(r.get("kidneys_mean_gy"))
    u_pct = fmt.number(r.get("kidneys_uncertainty_pct"))
    key = [f'<div>Kidneys, mass-weighted mean absorbed dose</div><div class="big">{e(fmt.gy(mean, unit=True))}</div>']
    if mean is not None and u_pct is not None:
        key.append(f"<div>\u00b1 {fmt.gy(mean * u_pct / 100)} Gy ({fmt.pct(u_pct)} %, k = 1)</div>")
    key.append(f"<div>BED {e(fmt.gy(r.get('kidneys_bed_gy'), unit=True))}</div>")
    if mean is not None and injected:
        key.append(f"<div>{mean / (injected / 1000):.2f} Gy/GBq</div>")
    next_cls = ' class="refused"' if budget.next_allowed is False else ""
    summary = [f"<span{next_cls}>{e(text)}</span>" if text == budget.next_text else e(text)
               for text in tables.budget_sentences(budget)]
    if warnings:
        warn_html = '<div class="warnings"><ul>' + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul></div>"
    else:
        warn_html = '<div class="ok">No warnings were raised during the run.</div>'
    prov = fmt.flatten_provenance(r.get("provenance"), limit=30)
    prov_html = "<br>".join(e(p) for p in prov)
    sign = "".join(
        f"<div><b>{role}</b>" + "".join(f'<div class="line"></div><small>{f}</small>' for f in ("Name", "Signature",
                                                                                               "Date")) + "</div>"
        for role in ("Calculated by", "Reviewed and approved by (medical physicist)"))
    title = f"Dosimetry report {r.get('patient_id') or ''} cycle {cycle_text}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{CSS}</style></head>
<body>
<header><h1>Post-therapy absorbed-dose report</h1>
<div class="who">Patient {e(str(r.get('patient_id') or fmt.MISSING))} &middot; Cycle {e(cycle_text)}</div>
</header>
<div class="info">{info_html}</div>
<div class="row"><div><h2>Time points</h2>{_table_html(tables.timepoint_table(r))}</div>
<div><h2>Kidney result (this cycle)</h2><div class="key">{''.join(key)}</div></div></div>
<h2>Time-activity curves and kinetics</h2>
<div class="row"><div>{_img(pngs['tacs'], 'time-activity curves')}</div>
<div>{_table_html(tables.activity_table(r, names))}</div></div>
<h2>Absorbed-dose maps through the kidneys</h2>{_img(pngs['dose_maps'], 'dose maps')}
<h2>Absorbed dose</h2>
<div class="row"><div>{_img(pngs['dvhs'], 'dose-volume histograms')}</div>
<div>{_table_html(tables.dose_table(r, names))}</div></div>
<h2>Partial-volume correction</h2>{_table_html(tables.pvc_table(r, names))}
{lesion_html(r, _table_html)}
{marrow_html(r, _table_html)}
<div class="row"><div><h2>{'Cumulative kidney dose vs limit' if budget.has_trial else 'Kidney dose vs limit'}</h2>
{_img(pngs['kidney_budget'], 'kidney dose budget')}<p>{'<br>'.join(summary)}</p></div>
<div><h2>Warnings raised during the run ({len(warnings)})</h2>{warn_html}</div></div>
<h2>Review and approval</h2><div class="sign">{sign}</div>
<footer>{e(software.get('name', 'startnet'))} {e(str(software.get('version', __version__)))} &middot; results schema
{e(str(r.get('schema_version', fmt.MISSING)))} &middot; research software: verify before clinical use.<br>
{prov_html}</footer>
</body></html>
"""
