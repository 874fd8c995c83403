"""GUM uncertainty budgets vs Monte Carlo propagation of the same measurement model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from startnet.dosimetry.uncertainty import (
    RecoveryCurve,
    combine,
    structure_uncertainty,
    volume_sd_from_boundary,
)
from startnet.errors import InputError
from startnet.kinetics import fit_tac

LN2 = math.log(2.0)


def test_combine_quadrature_and_contributions():
    b = combine("TIA", 1000.0, "MBq.h", [("a", 0.03, -1.0), ("b", 0.04, 1.0), ("c", 0.10, 0.5)])
    assert b.combined_rel_sd == pytest.approx(math.sqrt(0.03**2 + 0.04**2 + 0.05**2), rel=1e-12)
    assert b.combined_sd == pytest.approx(1000.0 * b.combined_rel_sd, rel=1e-12)
    assert [c.contribution_abs for c in b.components] == pytest.approx([30.0, 40.0, 50.0])
    assert "TIA" in b.table() and "%" in b.table()
    with pytest.raises(InputError):
        combine("TIA", 1.0, "MBq.h", [("bad", -0.1, 1.0)])


def test_recovery_curve_gradient_and_elasticity():
    rc = RecoveryCurve(0.95, 8.0, 1.2, np.diag([0.02, 0.8, 0.1]) ** 2)
    v, h = 150.0, 1e-6
    p = np.array([rc.rc_max, rc.v50_ml, rc.n])
    for i in range(3):
        dp = np.zeros(3)
        dp[i] = h
        up = RecoveryCurve(*(p + dp)).rc(v)
        dn = RecoveryCurve(*(p - dp)).rc(v)
        assert rc.param_gradient(v)[i] == pytest.approx((up - dn) / (2 * h), rel=1e-6)
    el = (math.log(rc.rc(v * (1 + h))) - math.log(rc.rc(v * (1 - h)))) / (2 * h)
    assert rc.dln_rc_dln_v(v) == pytest.approx(el, rel=1e-6)


def test_gum_dose_budget_matches_monte_carlo():
    """Monte Carlo of D = TIA_fit / (CF RC(V)) * E / (rho V) against the GUM combination."""
    rng = np.random.default_rng(2024)
    t = np.array([1.0, 24.0, 96.0, 168.0, 240.0])
    y = 40.0 * np.exp(-LN2 / 50 * t)
    fit = fit_tac(t, y * (1 + 0.04 * rng.standard_normal(len(t))), sigma_mbq=0.04 * y, models=("mono",))
    curve = RecoveryCurve(0.95, 12.0, 1.1, np.diag([0.03, 1.5, 0.08]) ** 2, source="phantom spheres")
    v0, u_v, cf_rel = 150.0, 9.0, 0.05
    e_per_mbq_h_over_rho = 0.08532  # Gy.mL per MBq.h (electrons, water)
    tia0 = fit.tia_mbq_h
    dose0 = tia0 * e_per_mbq_h_over_rho / v0
    budget = structure_uncertainty("kidney_left", tia_mbq_h=tia0, tia_fit_sd_mbq_h=fit.tia_sd_mbq_h,
                                   volume_ml=v0, volume_sd_ml=u_v, dose_gy=dose0, cf_rel_sd=cf_rel,
                                   recovery=curve)
    n = 400_000
    cf = 1 + cf_rel * rng.standard_normal(n)  # relative deviation of the calibration factor
    params = rng.multivariate_normal([curve.rc_max, curve.v50_ml, curve.n], curve.covariance, n)
    vol = v0 + u_v * rng.standard_normal(n)
    rc = params[:, 0] / (1 + (params[:, 1] / vol) ** params[:, 2])
    tia = (tia0 + fit.tia_sd_mbq_h * rng.standard_normal(n)) * curve.rc(v0) / (cf * rc)
    dose = tia * e_per_mbq_h_over_rho / vol
    mc_tia_rel = tia.std() / tia0
    mc_dose_rel = dose.std() / dose0
    # agreement within 3 % of the SD (linearisation at ~5-8 % input SDs; MC error ~0.1 %)
    assert budget.tia.combined_rel_sd == pytest.approx(mc_tia_rel, rel=0.03)
    assert budget.dose.combined_rel_sd == pytest.approx(mc_dose_rel, rel=0.03)
    names = [c.name for c in budget.dose.components]
    assert names[0] == "calibration factor" and "phantom spheres" in names[1]
    # volume enters the dose through RC and mass with one (correlated) sensitivity
    vol_comp = budget.dose.components[2]
    assert vol_comp.sensitivity == pytest.approx(-curve.dln_rc_dln_v(v0) - 1.0, rel=1e-12)


def test_volume_sd_from_one_voxel_boundary_shell():
    mask = np.zeros((20, 20, 20), bool)
    mask[5:15, 5:15, 5:15] = True  # 10^3 voxels
    vol, sd = volume_sd_from_boundary(mask, (2.0, 2.0, 2.0))
    voxel_ml = 0.008
    assert vol == pytest.approx(1000 * voxel_ml)
    dilated = 1000 + 6 * 100  # face-connected dilation adds one layer on each face
    eroded = 8**3
    assert sd == pytest.approx((dilated - eroded) * voxel_ml / (2 * math.sqrt(3)), rel=1e-12)
    with pytest.raises(InputError):
        volume_sd_from_boundary(np.zeros((3, 3, 3), bool), (1, 1, 1))


def test_structure_uncertainty_rejects_bad_values():
    with pytest.raises(InputError, match="kidney"):
        structure_uncertainty("kidney", tia_mbq_h=-1.0, tia_fit_sd_mbq_h=1.0, volume_ml=100.0, volume_sd_ml=1.0)
