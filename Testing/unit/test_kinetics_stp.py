"""Single-time-point methods: Haenscheid ratio 2x 2^-x, Madsen exactness and sensitivity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from startnet.errors import InputError
from startnet.kinetics import default_population_table, fit_tac
from startnet.kinetics.stp import haenscheid_ratio, haenscheid_tia, madsen_rel_sd_from_teff, madsen_tia

LN2 = math.log(2.0)


@pytest.mark.parametrize("x", [0.25, 0.5, 1.0, 1.0 / LN2, 1.5, 2.0, 3.0])
def test_haenscheid_ratio_closed_form(x):
    t_eff, a0 = 50.0, 300.0
    t = x * t_eff
    true_tia = a0 * t_eff / LN2
    estimate = haenscheid_tia(a0 * 2.0 ** (-x), t)
    assert estimate / true_tia == pytest.approx(2 * x * 2.0 ** (-x), rel=1e-12)
    assert haenscheid_ratio(t, t_eff) == pytest.approx(estimate / true_tia, rel=1e-12)


def test_haenscheid_exact_at_x_1_and_2_and_peak():
    assert haenscheid_ratio(50.0, 50.0) == pytest.approx(1.0, abs=1e-15)
    assert haenscheid_ratio(100.0, 50.0) == pytest.approx(1.0, abs=1e-15)
    xs = np.linspace(0.1, 4, 40001)
    ratios = 2 * xs * 2.0 ** (-xs)
    assert ratios.max() == pytest.approx(2 / (math.e * LN2), rel=1e-8)
    assert round(ratios.max(), 4) == 1.0615
    assert xs[np.argmax(ratios)] == pytest.approx(1 / LN2, abs=1e-4)


@pytest.mark.parametrize("t_h", [24.0, 96.0, 168.0])
def test_madsen_exact_when_lambda_right(t_h):
    t_eff, a0 = 70.0, 120.0
    a_t = a0 * math.exp(-LN2 / t_eff * t_h)
    assert madsen_tia(a_t, t_h, t_eff) == pytest.approx(a0 * t_eff / LN2, rel=1e-12)


def test_madsen_least_sensitive_at_one_over_lambda():
    t_eff = 50.0
    lam = LN2 / t_eff
    assert madsen_rel_sd_from_teff(1 / lam, t_eff, 0.2) == pytest.approx(0.0, abs=1e-15)
    # numerical derivative of the TIA error w.r.t. a T_eff error vanishes at t = 1/lambda
    a0 = 100.0
    for t, expect_small in ((1 / lam, True), (168.0, False)):
        a_t = a0 * math.exp(-lam * t)
        up, down = madsen_tia(a_t, t, t_eff * 1.01), madsen_tia(a_t, t, t_eff / 1.01)
        rel = abs(up - down) / (2 * a0 * t_eff / LN2)
        assert (rel < 1e-4) == expect_small
        assert rel == pytest.approx(madsen_rel_sd_from_teff(t, t_eff, 0.01), rel=0.02, abs=1e-4)


def test_fit_tac_single_point_uses_madsen_with_population_table_and_records_source():
    t_eff = default_population_table().lookup("Kidney_Left").t_eff_h
    assert t_eff == 50.0
    a0 = 80.0
    fit = fit_tac([96.0], [a0 * 2 ** (-96.0 / 50.0)], sigma_mbq=[1.0], structure="Kidney_Left")
    assert fit.model == "madsen"
    assert fit.tia_mbq_h == pytest.approx(a0 * 50.0 / LN2, rel=1e-12)
    assert "source" in fit.selection_reason and "project default" in fit.selection_reason
    expected_rel = math.hypot(1.0 / (a0 * 2 ** (-96.0 / 50.0)), abs(LN2 / 50 * 96 - 1) * 0.2)
    assert fit.tia_rel_sd == pytest.approx(expected_rel, rel=1e-9)
    assert fit.evaluate(0.0) == pytest.approx(a0, rel=1e-12)


def test_fit_tac_single_point_haenscheid_without_population_value():
    fit = fit_tac([96.0], [40.0], structure="left parotid")
    assert fit.model == "haenscheid"
    assert fit.tia_mbq_h == pytest.approx(40.0 * 2 * 96.0 / LN2, rel=1e-12)
    # Haenscheid's implicit mono-exponential has T_eff = t: its integral is the same TIA
    (a, k), = fit.dose_rate_exponentials()
    assert a / k == pytest.approx(fit.tia_mbq_h, rel=1e-12)
    explicit = fit_tac([96.0], [40.0], structure="x", population_t_eff_h=96.0)
    assert explicit.model == "madsen" and explicit.tia_mbq_h == pytest.approx(fit.tia_mbq_h, rel=1e-12)


def test_stp_bad_time_raises():
    with pytest.raises(InputError):
        haenscheid_tia(10.0, 0.0)
    with pytest.raises(InputError):
        madsen_tia(10.0, 24.0, -5.0)


def test_population_table_aliases_and_user_entries():
    table = default_population_table()
    assert table.lookup("Tumor 3").t_eff_h == 90.0
    assert table.lookup("kidneys").t_eff_h == 50.0
    assert table.lookup("Liver").t_eff_h == 70.0
    assert table.lookup("liver lesion 2").t_eff_h == 90.0  # a lesion in the liver is a tumour
    assert table.lookup("bone marrow") is None
    table.add("bone marrow", 40.0, 0.3, source="site study 2025")
    entry = table.lookup("Bone Marrow")
    assert (entry.t_eff_h, entry.rel_sd, entry.source) == (40.0, 0.3, "site study 2025")
    with pytest.raises(InputError):
        table.add("x", -1.0)


def test_haenscheid_bed_g_factor_uses_the_population_t_eff():
    # issue 10 finding 12: a Haenscheid run took T_eff = t (96 h) for the G factor
    from startnet.dosimetry.bed import g_factor_for_fit, g_factor_mono

    fit = fit_tac([96.0], [40.0], structure="kidney_left", models=("haenscheid",))
    assert fit.model == "haenscheid" and fit.tia_mbq_h == pytest.approx(40.0 * 2 * 96.0 / LN2, rel=1e-12)
    assert fit.bed_half_life_h == 50.0 and "population T_eff 50" in fit.selection_reason
    assert g_factor_for_fit(fit, 2.8) == pytest.approx(g_factor_mono(50.0, 2.8), rel=1e-12)
    (a, k), = fit.dose_rate_exponentials()
    assert a / k == pytest.approx(fit.tia_mbq_h, rel=1e-12)
    # without a population value Haenscheid's T_eff = t stays, and the run says so
    other = fit_tac([96.0], [40.0], structure="left parotid")
    assert other.bed_half_life_h == pytest.approx(96.0) and any("T_eff = t" in w for w in other.warnings)
