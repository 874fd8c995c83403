"""Per-cycle report: the PDF rendered to PNG has content where the layout puts it, its text holds
the patient, the kidney dose and the warnings; the HTML is self-contained."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread
from test_report_synthetic import WARNING, synthetic_input

from startnet.errors import InputError, OutputError
from startnet.report import fmt, tables
from startnet.report.figures import _letter, slice_centre
from startnet.report.model import cumulative_dvh
from startnet.report.pdf import MARGIN_X, page_layout
from startnet.report.render import structure_order, write_report

POPPLER_MISSING = "poppler-utils (pdftoppm, pdftotext, pdfinfo) missing: run tools/install-system-deps.sh"


def _run(*args) -> str:
    assert shutil.which(args[0]), POPPLER_MISSING
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def _pages(pdf) -> int:
    info = _run("pdfinfo", str(pdf))
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def _text(pdf) -> str:
    out = _run("pdftotext", str(pdf), "-")
    return " ".join(out.split())


def _render(pdf, tmp_path, dpi=60) -> np.ndarray:
    _run("pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(pdf), str(tmp_path / "page"))
    return imread(str(tmp_path / "page.png"))[..., :3]


def _crop(image, rect):
    height, width = image.shape[:2]
    left, bottom, w, h = rect
    return image[int((1 - bottom - h) * height) + 1:int((1 - bottom) * height) - 1,
                 int(left * width) + 1:int((left + w) * width) - 1]


def _ink(pixels) -> float:
    return float(np.mean(pixels.min(axis=-1) < 0.85))


def _coloured(pixels) -> float:
    return float(np.mean(pixels.max(axis=-1) - pixels.min(axis=-1) > 0.2))


def test_pdf_page_has_content_where_the_layout_puts_it(tmp_path):
    inp = synthetic_input()
    files = write_report(inp, tmp_path / "out")
    assert files.pdf.exists() and files.html.exists() and _pages(files.pdf) == 1
    page = _render(files.pdf, tmp_path)
    height, width = page.shape[:2]
    assert abs(height / width - 11.69 / 8.27) < 0.01  # A4 portrait
    layout = page_layout(inp, structure_order(inp))
    regions = layout.regions
    header = _crop(page, regions["header"])
    assert np.mean(np.all(np.abs(header - np.array([0x1F, 0x3A, 0x5F]) / 255) < 0.08, axis=-1)) > 0.6
    for name in ("dose_axial", "dose_coronal"):
        pixels = _crop(page, regions[name])
        assert _ink(pixels) > 0.5, name  # CT and black surround fill the panel
        assert _coloured(pixels) > 0.01, name  # dose wash and structure outlines
    assert _coloured(_crop(page, regions["dose_colorbar"])) > 0.05
    for name in ("tac_plot", "dvh_plot", "activity_table", "dose_table", "timepoints_table", "kidney_budget",
                 "info", "signature"):
        assert _ink(_crop(page, regions[name])) > 0.02, name
    for name in ("tac_plot", "dvh_plot", "kidney_budget"):
        assert _coloured(_crop(page, regions[name])) > 0.003, name
    warnings = _crop(page, regions["warnings"])
    amber = np.all(np.abs(warnings - np.array([0xFF, 0xF4, 0xCE]) / 255) < 0.06, axis=-1)
    assert np.mean(amber) > 0.3
    # The side margins are blank: the layout maps onto the page where the test thinks it does.
    margin = page[:, : int(0.8 * MARGIN_X * width)]
    assert _ink(margin) == 0.0


def test_pdf_text_holds_patient_kidney_dose_and_warning(tmp_path):
    inp = synthetic_input()
    files = write_report(inp, tmp_path)
    text = _text(files.pdf)
    kidneys = fmt.gy(inp.results["kidneys_mean_gy"])
    assert kidneys == "4.10"
    for expected in ("SN-001", "Cycle 2", f"{kidneys} Gy", WARNING, "limit 30 Gy", "7400 MBq (7.40 GBq)",
                     "Voxel S-value convolution, density-corrected", "Signature", "Kidneys (both)",
                     "2026-03-02 08:15 UTC", "Next cycle allowed up to 7.50 GBq"):
        assert expected in text, expected
    left = inp.results["structures"]["kidney_left"]
    assert f"{left['mean_gy']:.2f} \u00b1 {left['mean_gy'] * 0.09:.2f}" in text
    assert "Lutetium" not in text and "DOTATOC" not in text  # nothing the results did not say


def test_html_is_self_contained(tmp_path):
    inp = synthetic_input()
    files = write_report(inp, tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) == 4
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SN-001" in page and "4.10 Gy" in page and "no scatter correction" in page
    assert "@page { size: A4 portrait" in page
    for path in files.figures.values():
        assert path.read_bytes()[:4] == b"\x89PNG"


def test_minimal_results_without_trial_ct_or_optional_keys(tmp_path):
    inp = synthetic_input(with_trial=False, with_ct=False, warnings=())
    inp.results["cycle"] = None
    for entry in inp.results["structures"].values():
        for key in ("bed_gy", "d2_gy", "tia_sd_mbq_h", "activity_mbq"):
            entry.pop(key)
    inp.results.pop("kidneys_bed_gy")
    inp.results.pop("provenance")
    files = write_report(inp, tmp_path)
    assert _pages(files.pdf) == 1
    text = _text(files.pdf)
    assert "No trial record given" in text and "No warnings were raised" in text
    assert "KIDNEY DOSE VS LIMIT" in text and "CUMULATIVE KIDNEY DOSE" not in text
    assert "\u2013" in text  # missing values shown as a dash, not as 0 or nan
    assert "nan" not in text.lower().split()


def test_crowded_cycle_still_fits_one_page(tmp_path):
    warnings = [f"Warning number {i}: recovery coefficient extrapolated below the phantom's smallest sphere"
                for i in range(8)]
    inp = synthetic_input(warnings=warnings)
    for i in range(5):
        inp.results["structures"][f"tumour_{i + 2}"] = dict(inp.results["structures"]["tumour_1"])
    files = write_report(inp, tmp_path)
    assert _pages(files.pdf) == 1
    text = _text(files.pdf)
    for i in range(8):
        assert f"Warning number {i}:" in text
    assert "Tumour 6" in text


def test_refused_next_cycle_is_stated(tmp_path):
    inp = synthetic_input()
    inp.results["trial"]["next_cycle"] = {"allowed": False, "reason": "cumulative kidney dose would exceed 30 Gy"}
    files = write_report(inp, tmp_path)
    assert "Next cycle NOT allowed: cumulative kidney dose would exceed 30 Gy" in _text(files.pdf)


def test_kidney_budget_projection_and_current_cycle():
    inp = synthetic_input()
    budget = tables.kidney_budget(inp.results)
    kinds = [b.kind for b in budget.bars]
    assert kinds == ["previous", "current", "projected"]
    gy_per_gbq = inp.results["kidneys_mean_gy"] / 7.4
    assert budget.bars[2].kidney_gy == pytest.approx(gy_per_gbq * 7.5, rel=1e-12)
    assert budget.cumulative_gy == pytest.approx(3.9 + inp.results["kidneys_mean_gy"])
    # A trial record that does not yet hold this cycle gets it appended, marked as this cycle.
    inp.results["trial"]["cycles"] = inp.results["trial"]["cycles"][:1]
    inp.results["trial"].pop("cumulative_kidney_gy")
    budget = tables.kidney_budget(inp.results)
    assert [b.label for b in budget.bars][:2] == ["Cycle 1", "Cycle 2 (this)"]
    assert budget.cumulative_gy == pytest.approx(3.9 + inp.results["kidneys_mean_gy"])


def test_number_formats():
    assert fmt.sig(7400.0) == "7400" and fmt.sig(123.4) == "123" and fmt.sig(4.567) == "4.57"
    assert fmt.sig(0.012345) == "0.0123" and fmt.sig(None) == fmt.MISSING and fmt.sig(float("nan")) == fmt.MISSING
    assert fmt.gy(4.105, unit=True) in ("4.10 Gy", "4.11 Gy") and fmt.gy(-0.0001) == "0.00"
    assert fmt.datetime_text("2026-03-29T10:00:00+02:00") == "2026-03-29 10:00 +02:00"
    assert fmt.structure_label("kidney_left") == "Kidney left"
    assert fmt.ordered_structures(["liver", "kidney_right", "tumour", "kidney_left"]) == [
        "kidney_left", "kidney_right", "liver", "tumour"]


def test_bad_input_and_unwritable_output(tmp_path):
    inp = synthetic_input()
    inp.masks["kidney_left"] = inp.masks["kidney_left"][:-1]
    with pytest.raises(InputError, match="kidney_left"):
        write_report(inp, tmp_path)
    inp = synthetic_input()
    inp.dose_gy = inp.dose_gy.copy()
    inp.dose_gy[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_report(inp, tmp_path)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not_a_folder"):
        write_report(synthetic_input(), blocker / "out")
    assert not list(tmp_path.glob("report.*"))


def test_cumulative_dvh_counts_exactly():
    dose = np.arange(100, dtype=float).reshape(4, 5, 5)
    mask = np.ones(dose.shape, bool)
    levels, fraction = cumulative_dvh(dose, mask, n_bins=99)
    assert np.allclose(levels, np.arange(100))
    assert np.allclose(fraction, (100 - np.arange(100)) / 100.0)  # fraction of voxels >= level
    half = dose >= 50
    levels, fraction = cumulative_dvh(dose, half, n_bins=49)
    assert fraction[0] == 1.0 and fraction[-1] == pytest.approx(1 / 50)
    with pytest.raises(InputError, match="empty"):
        cumulative_dvh(dose, np.zeros(dose.shape, bool))


def test_slices_go_through_the_kidneys_with_lps_orientation_letters():
    inp = synthetic_input()
    union = inp.masks["kidney_left"] | inp.masks["kidney_right"]
    assert slice_centre(inp) == tuple(int(round(c)) for c in np.argwhere(union).mean(axis=0))
    # Identity direction: +x is the patient's left, +y posterior, +z superior (LPS).
    assert (_letter(np.array([1.0, 0, 0])), _letter(np.array([-1.0, 0, 0]))) == ("L", "R")
    assert (_letter(np.array([0, 1.0, 0])), _letter(np.array([0, 0, -1.0]))) == ("P", "I")


def test_tac_axis_follows_measurements_not_a_collapsing_fit():
    from matplotlib.figure import Figure

    from startnet.report.figures import draw_tacs, structure_colours
    from startnet.report.model import TacPlotData

    inp = synthetic_input()
    fit_t = np.linspace(0, 200, 50)
    inp.tacs = {"bladder": TacPlotData([4, 24, 96, 168], [283, 30.6, 0.356, 0.114], None, fit_t,
                                       283 * np.exp(-0.11 * fit_t), "mono")}
    ax = Figure().add_subplot()
    draw_tacs(ax, inp, ["bladder"], structure_colours(["bladder"]), log_y=True)
    low, high = ax.get_ylim()
    assert low == pytest.approx(0.114 / 3) and high > 283  # the fit reaches 1e-8 MBq, the axis does not


def test_overfull_cycle_cuts_rows_and_says_so(tmp_path):
    warnings = [f"Warning number {i}: the {i}th check flagged something worth reading" for i in range(40)]
    inp = synthetic_input(warnings=warnings)
    for i in range(25):
        inp.results["structures"][f"tumour_{i + 2}"] = dict(inp.results["structures"]["tumour_1"])
    files = write_report(inp, tmp_path)
    assert _pages(files.pdf) == 1
    text = _text(files.pdf)
    assert "Kidney left" in text and "Kidneys (both)" in text  # kidneys are never the ones cut
    assert "Not shown for lack of space" in text and "Tumour 26" in text
    assert "Warning number 0:" in text and "more warnings: see report.html" in text
    page = files.html.read_text(encoding="utf-8")
    # every structure in the HTML's activity, dose and partial-volume-correction tables
    assert "Warning number 39:" in page and page.count("<td class=\"l\">Tumour 26</td>") == 3


def test_single_time_point_cycle_without_trial(tmp_path):
    from startnet.report.model import TacPlotData

    inp = synthetic_input(with_trial=False)
    inp.results["timepoints"] = inp.results["timepoints"][2:3]
    inp.results["reference_timepoint"] = 2
    for entry in inp.results["structures"].values():
        entry["activity_mbq"] = entry["activity_mbq"][2:3]
        entry["fit_model"] = "STP (Haenscheid)"
    inp.tacs = {n: TacPlotData([96.0], [t.activity_mbq[2]], None, [], [], "stp") for n, t in inp.tacs.items()}
    files = write_report(inp, tmp_path, tac_log_y=False)
    assert _pages(files.pdf) == 1
    text = _text(files.pdf)
    kidneys = fmt.gy(inp.results["kidneys_mean_gy"])
    assert f"This cycle {kidneys} Gy (limit 30 Gy over all cycles)." in text
    assert "STP (Haenscheid)" in text and "3 (ref)" in text and "96 h" in text


def test_html_names_each_structures_pvc_method_and_reason():
    from startnet.report.tables import pvc_table

    results = {"structures": {"kidney_left": {
        "pvc_method": "GTM", "pvc_reason": "fallback to plain GTM: counts around it not explained (+14 %)",
        "uncertainty_budget": [{"component": "PVC GTM: uncorrected under-estimate (...)", "relative_pct": 9.815}]}}}
    table = pvc_table(results, ["kidney_left"])
    assert table.rows[0][1:] == ["GTM", "fallback to plain GTM: counts around it not explained (+14 %)", "9.8"]


def test_marrow_block_and_its_assumptions_in_html_and_on_a_second_pdf_page(tmp_path):
    inp = synthetic_input()
    inp.results["marrow"] = {
        "method": "blood-based (EANM SOP, Hindorf 2010)", "dose_gy": 0.321, "self_dose_gy": 0.27,
        "cross_dose_gy": 0.051, "uncertainty_pct": 22.0, "red_marrow_to_blood_ratio": 1.0,
        "assumptions": {"self_dose": "D_self = TIAC_blood x RMBLR x E_electron"},
        "image_based": {"method": "image-based (lumbar vertebrae VOI)", "dose_gy": 0.234, "self_dose_gy": 0.198,
                        "cross_dose_gy": 0.036, "uncertainty_pct": 41.0, "red_marrow_mass_g": 43.5,
                        "mass_model": {"model": "voi", "verified": False, "sources": "ICRP 89, ICRP 70"},
                        "assumptions": {"limitation": "activity before the first scan is extrapolated"}}}
    files = write_report(inp, tmp_path / "out")
    page = files.html.read_text()
    assert "Red bone-marrow absorbed dose" in page and "0.321" in page and "0.234" in page
    assert "mass model voi, 43.5 g red marrow (unverified)" in page
    assert "activity before the first scan is extrapolated" in page and "ICRP 89, ICRP 70" in page
    assert _pages(files.pdf) == 2
    text = _text(files.pdf)
    assert "Red bone-marrow absorbed dose" in text and "TIAC_blood x RMBLR" in text
