"""BED: general G factor vs a numerical double integral, EQD2 identity, voxel maps, cycle sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from startnet.dosimetry.bed import (
    bed_from_dose,
    bed_map,
    eqd2,
    g_factor,
    g_factor_for_fit,
    g_factor_mono,
    g_factor_numeric,
    g_map_from_rates,
    g_map_from_structures,
    structure_bed,
    sum_cycles,
)
from startnet.errors import GeometryError, InputError
from startnet.kinetics import fit_tac, trapezoid_fit

LN2 = math.log(2.0)


def _g_double_integral(exps, t_rep_h):
    """G = 2 int_0^inf Ddot(t) int_0^t Ddot(s) e^{-mu (t-s)} ds dt / D^2 (scipy dblquad)."""
    mu = LN2 / t_rep_h
    a = np.array([e[0] for e in exps])
    k = np.array([e[1] for e in exps])

    def rate(t):
        return float(np.sum(a * np.exp(-k * t)))

    t_end = 60.0 * LN2 / k.min()
    inner, _ = integrate.dblquad(lambda s, t: rate(t) * rate(s) * math.exp(-mu * (t - s)),
                                 0.0, t_end, 0.0, lambda t: t, epsabs=1e-10, epsrel=1e-10)
    dose, _ = integrate.quad(rate, 0.0, t_end, limit=200)
    return 2.0 * inner / dose**2


@pytest.mark.parametrize("exps", [
    [(1.0, LN2 / 50.0)],  # mono, instant uptake (kidney-like)
    [(1.0, LN2 / 90.0)],  # mono (tumour-like)
    [(1.0, LN2 / 50.0), (-1.0, 0.5)],  # bi-exponential with uptake
    [(1.0, LN2 / 40.0), (-1.0, 2.0)],  # fast uptake
    [(0.6, LN2 / 80.0), (0.8, LN2 / 8.0), (-1.4, 1.0)],  # tri-exponential with uptake
])
@pytest.mark.parametrize("t_rep_h", [2.8, 1.5])
def test_general_g_matches_numerical_double_integral(exps, t_rep_h):
    g = g_factor(exps, t_rep_h)
    g_num = _g_double_integral(exps, t_rep_h)
    assert g == pytest.approx(g_num, rel=1e-6)


def test_mono_g_closed_forms_agree():
    assert g_factor([(3.0, LN2 / 50.0)], 2.8) == pytest.approx(2.8 / (2.8 + 50.0), rel=1e-12)
    assert g_factor_mono(50.0, 2.8) == pytest.approx(2.8 / 52.8, rel=1e-15)
    # G is scale invariant (dose-rate shape only)
    exps = [(1.0, 0.02), (-1.0, 0.4)]
    assert g_factor([(7 * a, k) for a, k in exps]) == pytest.approx(g_factor(exps), rel=1e-12)


def test_numeric_g_of_piecewise_linear_converges_to_exponential():
    k = LN2 / 50.0
    g_num = g_factor_numeric(lambda t: np.exp(-k * t), 2500.0, 2.8, dt_h=0.02)
    assert g_num == pytest.approx(g_factor_mono(50.0, 2.8), rel=1e-4)


def test_g_for_fits_exponential_and_trapezoid():
    t = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])
    y = 100 * (np.exp(-LN2 / 50 * t) - np.exp(-0.5 * t))
    fit = fit_tac(t, y)
    assert fit.model == "bi_uptake"
    assert g_factor_for_fit(fit) == pytest.approx(g_factor([(100, LN2 / 50), (-100, 0.5)]), rel=1e-6)
    trap = trapezoid_fit([24.0, 96.0], [50.0, 20.0])
    assert g_factor_for_fit(trap) == pytest.approx(_g_nested_quad(trap, 400.0, [24.0, 96.0]), rel=1e-5)
    t4 = np.array([1.0, 24.0, 96.0, 168.0])
    hybrid = fit_tac(t4, 100 * (np.exp(-LN2 / 60 * t4) - np.exp(-0.5 * t4)))
    assert hybrid.model == "hybrid"
    assert g_factor_for_fit(hybrid) == pytest.approx(_g_nested_quad(hybrid, 400.0, [1.0, 24.0]), rel=1e-5)


def _g_nested_quad(fit, t_switch, kinks):
    """Independent G: nested adaptive quadrature of the fit's own curve up to ``t_switch``; after
    it the curve is its exponential tail A(t_switch) e^{-k (t - t_switch)}, done in closed form."""
    mu = LN2 / 2.8
    k = fit.tail_exponential[1]

    def rate(s):
        return float(fit.evaluate(s))

    def memory(t):  # int_0^t Ddot(s) e^{-mu (t - s)} ds
        inside = [x for x in kinks if x < t] or None
        return integrate.quad(lambda s: rate(s) * math.exp(-mu * (t - s)), 0.0, t, points=inside, limit=400)[0]

    inner = integrate.quad(lambda t: rate(t) * memory(t), 0.0, t_switch, points=kinks, limit=400,
                           epsrel=1e-11)[0]
    a_sw = rate(t_switch)
    inner += a_sw * a_sw / (2 * k * (k + mu)) + a_sw / (k + mu) * memory(t_switch)
    dose = integrate.quad(rate, 0.0, t_switch, points=kinks, limit=400)[0] + a_sw / k
    assert dose == pytest.approx(fit.tia_mbq_h, rel=1e-7)
    return 2 * inner / dose**2


def test_bed_and_eqd2_identities():
    d, ab = 20.0, 2.6
    g = g_factor_mono(50.0, 2.8)
    assert bed_from_dose(d, 50.0, ab, 2.8) == pytest.approx(d * (1 + g * d / ab), rel=1e-14)
    # EQD2 identity: n fractions of 2 Gy (acute, G per fraction = 1) have EQD2 = total dose
    n = 15
    bed_fractions = n * 2.0 * (1 + 2.0 / ab)
    assert eqd2(bed_fractions, ab) == pytest.approx(n * 2.0, rel=1e-14)
    # a very slow dose rate (G -> 0) gives BED -> D
    assert bed_from_dose(d, 1e9, ab) == pytest.approx(d, rel=1e-6)
    res = structure_bed("kidney_left", d, [(1.0, LN2 / 50.0)])
    assert res.bed_gy == pytest.approx(bed_from_dose(d, 50.0), rel=1e-12)
    assert res.eqd2_gy == pytest.approx(res.bed_gy / (1 + 2 / 2.6), rel=1e-14)
    with pytest.raises(InputError):
        bed_from_dose(d, 50.0, alpha_beta_gy=0.0)
    with pytest.raises(InputError):
        g_factor([(1.0, -0.1)])


def test_voxel_bed_maps_and_cycle_sums():
    dose = np.array([[[0.0, 5.0], [10.0, 20.0]]], np.float32)
    k = np.array([[[0.0, LN2 / 50], [LN2 / 50, LN2 / 90]]], np.float32)
    g = g_map_from_rates(k, 2.8)
    assert g[0, 0, 0] == 0
    assert g[0, 1, 1] == pytest.approx(g_factor_mono(90.0, 2.8), rel=1e-6)
    bed = bed_map(dose, g, 2.6)
    assert bed[0, 1, 0] == pytest.approx(bed_from_dose(10.0, 50.0, 2.6), rel=1e-6)
    labels = np.array([[[0, 1], [1, 2]]])
    g2 = g_map_from_structures(labels, {1: 50.0, 2: [(1.0, LN2 / 90)]})
    np.testing.assert_allclose(g2, g, rtol=1e-6)
    total = sum_cycles([bed, bed, 2 * bed])
    np.testing.assert_allclose(total, 4 * bed, rtol=1e-6)
    assert sum_cycles([3.5, 4.0, 2.5]) == pytest.approx(10.0)
    with pytest.raises(GeometryError):
        sum_cycles([bed, bed[:, :1]])
    with pytest.raises(GeometryError):
        bed_map(dose, g[:, :1])
    with pytest.raises(InputError):
        sum_cycles([])


def test_voxel_g_map_from_voxel_fit_matches_structure_kinetics():
    from startnet.kinetics import fit_voxels

    t4 = np.array([1.0, 24.0, 96.0, 168.0])
    amp = np.linspace(0.5, 2.0, 3 * 4 * 5).reshape(3, 4, 5)
    act = (amp[None] * np.exp(-LN2 / 50.0 * t4)[:, None, None, None]).astype(np.float32)
    res = fit_voxels(t4, act, np.ones(amp.shape, bool))
    g = g_map_from_rates(res.k_per_h, 2.8)
    np.testing.assert_allclose(g, g_factor_mono(50.0, 2.8), rtol=1e-5)
    dose = (res.tia_mbq_h * 0.08532 / 0.1).astype(np.float32)  # LED, 0.1 mL water voxels
    np.testing.assert_allclose(bed_map(dose, g), bed_from_dose(dose.astype(float), 50.0), rtol=1e-5)


def test_g_of_a_plateau_fit_uses_a_grid_bounded_by_the_data():
    # issue 10 finding 4: a hybrid with k = 1e-6 asked for a 4.1 GiB grid (40 tail half-lives)
    from startnet.kinetics import fit_tac, trapezoid_fit
    from startnet.kinetics.tacfit import TacFit

    t4 = np.array([4.0, 24.0, 96.0, 168.0])
    fit = fit_tac(t4, [1.9, 2.0, 2.0, 2.0])
    g = g_factor_for_fit(fit, 1.5)
    assert g == pytest.approx(_g_nested_quad_mu(fit, 1.5, [4.0, 24.0, 96.0]), rel=1e-4)
    # a piecewise fit with a very slow tail (as a released fit had) costs no more than its data
    trap = trapezoid_fit(t4, [1.9, 2.0, 2.0, 2.0])
    slow = TacFit(**{**trap.__dict__, "tail_exponential": (2.0, 1e-6)})
    import tracemalloc

    tracemalloc.start()
    g_slow = g_factor_for_fit(slow, 1.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6 and 0.0 < g_slow < g


def _g_nested_quad_mu(fit, t_rep_h, kinks):
    mu = LN2 / t_rep_h
    k = fit.tail_exponential[1]
    t_switch = float(fit.times_h[-1])

    def rate(s):
        return float(fit.evaluate(s))

    def memory(t):
        inside = [x for x in kinks if x < t] or None
        return integrate.quad(lambda s: rate(s) * math.exp(-mu * (t - s)), 0.0, t, points=inside, limit=400)[0]

    inner = integrate.quad(lambda t: rate(t) * memory(t), 0.0, t_switch, points=kinks, limit=400, epsrel=1e-11)[0]
    a_sw = rate(t_switch)
    inner += a_sw * a_sw / (2 * k * (k + mu)) + a_sw / (k + mu) * memory(t_switch)
    dose = integrate.quad(rate, 0.0, t_switch, points=kinks, limit=400)[0] + a_sw / k
    return 2 * inner / dose**2


def test_voxel_g_map_never_uses_a_rate_below_physical_decay():
    from startnet.physics.lu177 import LU177

    lam = LU177.decay_constant_per_h
    g = g_map_from_rates(np.array([0.0, 1e-6, lam, 0.1], np.float32), 1.5)
    mu = LN2 / 1.5
    assert g[0] == 0.0
    assert g[1] == pytest.approx(lam / (lam + mu), rel=1e-5)
    assert g[3] == pytest.approx(0.1 / (0.1 + mu), rel=1e-5)
