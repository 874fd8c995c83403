"""DVH and dose statistics against closed forms; cycle accumulation."""

from __future__ import annotations

import numpy as np
import pytest

from startnet.dosimetry.dvh import accumulate_cycles, accumulate_structure_values, structure_dose_stats
from startnet.dosimetry.engines import DoseMaps
from startnet.errors import GeometryError, InputError


def _ramp(n=10000, d_max=40.0):
    # doses uniformly distributed on [0, d_max]: voxel i carries the dose at the centre of its
    # 1/n slice of the volume, so D_x = d_max (1 - x/100) and V(d) = 1 - d/d_max exactly
    dose = ((np.arange(n) + 0.5) / n * d_max).reshape(10, 10, n // 100)
    rng = np.random.default_rng(0)
    return rng.permutation(dose.ravel()).reshape(dose.shape), np.ones(dose.shape, bool)


def test_linear_ramp_closed_forms():
    dose, mask = _ramp()
    s = structure_dose_stats(dose, mask, v_thresholds_gy=(10.0, 30.0), d_percents=(90.0,))
    assert s.mean_gy == pytest.approx(20.0, rel=1e-9)
    assert s.d2_gy == pytest.approx(40.0 * 0.98, rel=1e-9)
    assert s.d98_gy == pytest.approx(40.0 * 0.02, rel=1e-9)
    assert s.d50_gy == pytest.approx(20.0, rel=1e-9) and s.median_gy == s.d50_gy
    assert s.extra_d_gy[90.0] == pytest.approx(4.0, rel=1e-9)
    assert s.v_gy[10.0] == pytest.approx(0.75, abs=1e-4) and s.v_gy[30.0] == pytest.approx(0.25, abs=1e-4)
    assert s.min_gy == pytest.approx(0.002) and s.max_gy == pytest.approx(39.998)
    # cumulative DVH: V(d) = 1 - d / d_max
    expected = 1.0 - s.dvh_dose_gy / 40.0
    np.testing.assert_allclose(s.dvh_volume_fraction, expected, atol=2e-4)
    assert s.dvh_volume_fraction[0] == 1.0 and np.all(np.diff(s.dvh_volume_fraction) <= 0)


def test_d2_d98_definition_on_two_level_structure():
    # 90 % of the volume at 10 Gy, 10 % at 30 Gy: the hottest 2 % receive >= 30 Gy,
    # the hottest 98 % (all but the coldest 2 %) >= 10 Gy
    dose = np.full((10, 10, 10), 10.0)
    dose.ravel()[:100] = 30.0
    s = structure_dose_stats(dose, np.ones_like(dose, bool))
    assert s.d2_gy == pytest.approx(30.0) and s.d98_gy == pytest.approx(10.0) and s.median_gy == pytest.approx(10.0)
    assert s.mean_gy == pytest.approx(12.0)
    assert s.v_gy[20.0] == pytest.approx(0.10) and s.v_gy[5.0] == pytest.approx(1.0)


def test_mass_weighting():
    dose = np.array([[[10.0, 20.0]]])
    mask = np.ones_like(dose, bool)
    vol = structure_dose_stats(dose, mask)
    mass = structure_dose_stats(dose, mask, voxel_mass_g=np.array([[[1.0, 3.0]]]))
    assert vol.mean_gy == pytest.approx(15.0) and vol.weighting == "volume"
    assert mass.mean_gy == pytest.approx(17.5) and mass.weighting == "mass"
    assert mass.v_gy[20.0] == pytest.approx(0.75)


def test_mask_selects_voxels_and_errors():
    dose = np.arange(27, dtype=float).reshape(3, 3, 3)
    mask = np.zeros_like(dose, bool)
    mask[0, 0, :] = True
    s = structure_dose_stats(dose, mask)
    assert (s.min_gy, s.max_gy, s.mean_gy, s.n_voxels) == (0.0, 2.0, 1.0, 3)
    with pytest.raises(InputError, match="empty"):
        structure_dose_stats(dose, np.zeros_like(mask))
    with pytest.raises(GeometryError, match="mask shape"):
        structure_dose_stats(dose, mask[:, :, :2])


def test_accumulate_cycles_sums_registered_maps():
    a = np.full((2, 3, 4), 1.5, dtype=np.float32)
    b = np.full((2, 3, 4), 2.0, dtype=np.float32)
    maps = DoseMaps(b, b, np.zeros_like(b), "vsv")
    total = accumulate_cycles([a, maps, a])
    np.testing.assert_allclose(total, 5.0)
    with pytest.raises(GeometryError, match="cycle 2"):
        accumulate_cycles([a, np.zeros((2, 3, 5))])
    with pytest.raises(InputError):
        accumulate_cycles([])


def test_accumulate_structure_values():
    cycles = [{"kidney_left": 4.1, "kidney_right": 3.9}, {"kidney_left": 4.3, "kidney_right": 4.0}]
    total = accumulate_structure_values(cycles)
    assert total == {"kidney_left": pytest.approx(8.4), "kidney_right": pytest.approx(7.9)}
    assert accumulate_structure_values([1.0, 2.5, 3.0]) == pytest.approx(6.5)
    with pytest.raises(InputError, match="missing in cycle 2"):
        accumulate_structure_values([{"kidney_left": 1.0}, {"kidney_right": 1.0}])
    with pytest.raises(InputError, match="missing in cycle 1"):
        accumulate_structure_values([{"a": 1.0}], required=["kidney_left"])
