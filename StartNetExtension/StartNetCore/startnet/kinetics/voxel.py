"""Per-voxel time-activity fits (numba, parallel, cached): ``fit_voxels`` -> TIA map.

Per voxel inside ``mask`` (T time points, T >= 2), closed form, no iterations:

1. Peak index ``ip`` = argmax of the voxel's values. Non-finite values count as missing.
2. If the peak is below the threshold (``min_peak_mbq``, default ``min_peak_fraction`` of the
   largest voxel value of the whole array) the voxel is *low-count* -> fallback (step 5).
3. Tail fit over the points from the peak on (>= 2 positive points needed), A = a e^{-k t}:
   start from a log-linear regression of ln A on the positive points (weights A_i), then
   ``irls_iterations`` (default 4) steps of Poisson-GLM iteratively reweighted least squares
   (log link; variance proportional to the mean, as for SPECT counts; zeros and negative values
   take part, which removes the upward bias of log-linear fits at low counts).
   Physical constraint: k < lambda_phys is set to lambda_phys and a refitted with that slope
   (counted in ``n_constrained``). k > ``max_rate_per_h`` (default ln2/1 h: faster than any
   late clearance, i.e. noise) -> fallback.
4. TIA: peak at the first point -> code 1 (mono), ``a / k`` from t = 0 (instant uptake, same
   convention as the structure-level mono fit). Peak later -> code 2 (uptake + mono): trapezoid
   over the measured points from A(0) = 0 up to the peak, then the fitted tail
   ``a e^{-k t_peak} / k``.
5. Fallbacks: code 4 when the voxel's structure has a fitted TAC (``structure_fits``): the
   structure's curve s(t) scaled to the voxel by least squares, c = sum v s / sum s^2,
   TIA = max(c, 0) * TIA_structure (linear, so voxel sums reproduce the structure); otherwise
   code 3: trapezoid of the values clipped at 0 with A(0) = 0 and a physical-decay tail.

``model_map`` legend (uint8): 0 outside mask, 1 mono, 2 uptake + mono tail, 3 trapezoid +
physical tail (fallback), 4 scaled structure TAC (fallback). ``k_per_h`` holds the voxel's
clearance rate (codes 1, 2), the structure's dominant clearance rate (code 4) or the
equivalent rate A_peak / TIA (code 3), never below lambda_phys: it is what voxel BED maps use
(``startnet.dosimetry.bed.g_map_from_rates``). No voxel is extrapolated beyond the last scan
slower than physical decay (tail rates are held at >= lambda_phys, code 3 decays physically).

Memory: the input is used in place when it is a C-contiguous float32 array (other dtypes are
converted once: one more copy of the input); outputs are two float32 maps and one uint8 map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Union

import numba
import numpy as np

from startnet.errors import GeometryError, InputError
from startnet.kinetics.tacfit import TacFit
from startnet.physics.lu177 import LU177, Nuclide

MODEL_CODES: Dict[int, str] = {
    0: "outside mask",
    1: "mono-exponential (peak at first point, instant uptake)",
    2: "uptake (trapezoid from A(0)=0 to the peak) + mono-exponential tail",
    3: "fallback: trapezoid (A(0)=0) + physical-decay tail",
    4: "fallback: structure TAC scaled to the voxel",
}
DEFAULT_MAX_RATE_PER_H = math.log(2.0) / 1.0


@dataclass
class VoxelFitResult:
    """Per-voxel kinetics on the (z, y, x) grid of the input."""

    tia_mbq_h: np.ndarray  # float32 (z, y, x), MBq.h per voxel; 0 outside mask
    model_map: np.ndarray  # uint8 (z, y, x), codes in ``legend``
    k_per_h: np.ndarray  # float32 (z, y, x), clearance rate used for BED (see module docstring)
    n_fallback: int
    n_constrained: int
    n_nonfinite: int
    counts: Dict[int, int]
    min_peak_mbq: float
    legend: Dict[int, str] = field(default_factory=lambda: dict(MODEL_CODES))
    warnings: list = field(default_factory=list)

    def total_tia_mbq_h(self, region: Optional[np.ndarray] = None) -> float:
        values = self.tia_mbq_h if region is None else self.tia_mbq_h[region]
        return float(np.sum(values, dtype=np.float64))


@numba.njit(parallel=True, cache=True)
def _fit_kernel(times, act, mask, lam, min_peak, max_rate, n_irls, labels, has_labels, default_label,
                shape_vals, shape_norm, shape_tia, shape_k, tia_out, code_out, k_out):  # pragma: no cover
    n_t = times.shape[0]
    n_vox = act.shape[1]
    n_constrained = 0
    n_nonfinite = 0
    for i in numba.prange(n_vox):
        if not mask[i]:
            tia_out[i] = 0.0
            code_out[i] = 0
            k_out[i] = 0.0
            continue
        ip = 0
        vmax = -np.inf
        bad = 0
        for t in range(n_t):
            v = act[t, i]
            if not np.isfinite(v):
                bad = 1
            elif v > vmax:
                vmax = v
                ip = t
        n_nonfinite += bad
        code = 0
        tia = 0.0
        k = 0.0
        if vmax > min_peak:
            sw = 0.0
            swt = 0.0
            swtt = 0.0
            swy = 0.0
            swty = 0.0
            npos = 0
            for t in range(ip, n_t):
                v = act[t, i]
                if np.isfinite(v) and v > 0.0:
                    w = v
                    ly = math.log(v)
                    sw += w
                    swt += w * times[t]
                    swtt += w * times[t] * times[t]
                    swy += w * ly
                    swty += w * times[t] * ly
                    npos += 1
            det = sw * swtt - swt * swt
            if npos >= 2 and det > 0.0:
                slope = (sw * swty - swt * swy) / det
                lna = (swy - slope * swt) / sw
                # Poisson-GLM IRLS (log link): working response z = eta + (v - mu)/mu, weight mu;
                # uses every point from the peak on, zeros and negatives included.
                for _ in range(n_irls):
                    sw = 0.0
                    swt = 0.0
                    swtt = 0.0
                    swy = 0.0
                    swty = 0.0
                    for t in range(ip, n_t):
                        v = act[t, i]
                        if np.isfinite(v):
                            eta = lna + slope * times[t]
                            if eta > 700.0 or eta < -700.0:
                                continue
                            mu = math.exp(eta)
                            z = eta + (v - mu) / mu
                            sw += mu
                            swt += mu * times[t]
                            swtt += mu * times[t] * times[t]
                            swy += mu * z
                            swty += mu * times[t] * z
                    det = sw * swtt - swt * swt
                    if not (det > 1e-12 * sw * swtt) or not (sw > 0.0):
                        break
                    new_slope = (sw * swty - swt * swy) / det
                    new_lna = (swy - new_slope * swt) / sw
                    converged = abs(new_slope - slope) <= 1e-6 * abs(new_slope) + 1e-12 and abs(new_lna - lna) <= 1e-6
                    slope = new_slope
                    lna = new_lna
                    if converged:
                        break
                k = -slope
                if k < lam:
                    k = lam
                    n_constrained += 1
                    lna = (swy + k * swt) / sw
                if k <= max_rate and lna < 700.0 and np.isfinite(lna):
                    a = math.exp(lna)
                    if ip == 0:
                        tia = a / k
                        code = 1
                    else:
                        v_first = act[0, i] if np.isfinite(act[0, i]) else 0.0
                        area = 0.5 * times[0] * max(v_first, 0.0)
                        for t in range(1, ip + 1):
                            v0 = act[t - 1, i] if np.isfinite(act[t - 1, i]) else 0.0
                            v1 = act[t, i] if np.isfinite(act[t, i]) else 0.0
                            area += 0.5 * (times[t] - times[t - 1]) * (max(v0, 0.0) + max(v1, 0.0))
                        tia = area + a * math.exp(-k * times[ip]) / k
                        code = 2
        if code == 0:
            lab = labels[i] if has_labels else default_label
            if lab >= 0 and lab < shape_norm.shape[0] and shape_norm[lab] > 0.0:
                c = 0.0
                for t in range(n_t):
                    v = act[t, i]
                    if np.isfinite(v):
                        c += v * shape_vals[lab, t]
                c /= shape_norm[lab]
                tia = max(c, 0.0) * shape_tia[lab]
                k = shape_k[lab]
                code = 4
            else:
                v0 = act[0, i] if np.isfinite(act[0, i]) else 0.0
                area = 0.5 * times[0] * max(v0, 0.0)
                for t in range(1, n_t):
                    va = act[t - 1, i] if np.isfinite(act[t - 1, i]) else 0.0
                    vb = act[t, i] if np.isfinite(act[t, i]) else 0.0
                    area += 0.5 * (times[t] - times[t - 1]) * (max(va, 0.0) + max(vb, 0.0))
                vl = act[n_t - 1, i] if np.isfinite(act[n_t - 1, i]) else 0.0
                tia = area + max(vl, 0.0) / lam
                k = max(vmax, 0.0) / tia if tia > 0.0 else lam
                if k < lam:
                    k = lam  # a rate for BED: nothing clears slower than it decays
                code = 3
        tia_out[i] = tia
        code_out[i] = code
        k_out[i] = k
    return n_constrained, n_nonfinite


def fit_voxels(
    times_h,
    activity_mbq_per_voxel: np.ndarray,
    mask: np.ndarray,
    *,
    nuclide: Nuclide = LU177,
    min_peak_mbq: Optional[float] = None,
    min_peak_fraction: float = 0.01,
    max_rate_per_h: float = DEFAULT_MAX_RATE_PER_H,
    irls_iterations: int = 4,
    structure_fits: Union[None, TacFit, Mapping[int, TacFit]] = None,
    labels: Optional[np.ndarray] = None,
) -> VoxelFitResult:
    """Fit every voxel in ``mask`` and return the TIA map (see module docstring).

    ``activity_mbq_per_voxel``: (T, z, y, x), MBq per voxel at ``times_h`` (h after
    administration, strictly increasing, T >= 2), registered to one grid. ``mask``: (z, y, x)
    bool. ``structure_fits``: one :class:`TacFit` used for all mask voxels, or a mapping
    label -> TacFit used with the integer ``labels`` map (z, y, x) for the code-4 fallback.
    """
    t = np.asarray(times_h, dtype=np.float64).ravel()
    act = np.asarray(activity_mbq_per_voxel)
    if act.ndim != 4 or act.shape[0] != len(t):
        raise InputError(f"fit_voxels: activity must be (T, z, y, x) with T = len(times_h) = {len(t)}, "
                         f"got shape {act.shape}")
    if len(t) < 2 or not np.all(np.isfinite(t)) or t[0] <= 0 or np.any(np.diff(t) <= 0):
        raise InputError(f"fit_voxels: times_h must be >= 2 finite values > 0, strictly increasing; got {t.tolist()}")
    mask = np.asarray(mask)
    if mask.shape != act.shape[1:]:
        raise GeometryError(f"fit_voxels: mask shape {mask.shape} differs from the activity grid {act.shape[1:]}")
    act = np.ascontiguousarray(act, dtype=np.float32)
    flat = act.reshape(len(t), -1)
    mask_flat = np.ascontiguousarray(mask, dtype=np.bool_).ravel()
    if min_peak_mbq is None:
        with np.errstate(invalid="ignore"):
            peak_all = float(np.nanmax(act)) if act.size else 0.0
        min_peak_mbq = max(min_peak_fraction * peak_all, 0.0)
    has_labels, default_label, lab_flat, shape_vals, shape_norm, shape_tia, shape_k = _shape_table(
        structure_fits, labels, mask.shape, t)
    n = flat.shape[1]
    tia = np.empty(n, dtype=np.float32)
    code = np.empty(n, dtype=np.uint8)
    k = np.empty(n, dtype=np.float32)
    n_constrained, n_nonfinite = _fit_kernel(
        t, flat, mask_flat, nuclide.decay_constant_per_h, float(min_peak_mbq), float(max_rate_per_h),
        int(irls_iterations), lab_flat, has_labels, default_label, shape_vals, shape_norm, shape_tia, shape_k,
        tia, code, k)
    counts = {c: int(np.count_nonzero(code == c)) for c in MODEL_CODES}  # bincount would copy to int64
    warnings = []
    if n_nonfinite:
        warnings.append(f"{n_nonfinite} voxels had non-finite values (treated as missing)")
    return VoxelFitResult(
        tia_mbq_h=tia.reshape(mask.shape), model_map=code.reshape(mask.shape), k_per_h=k.reshape(mask.shape),
        n_fallback=counts[3] + counts[4], n_constrained=int(n_constrained), n_nonfinite=int(n_nonfinite),
        counts=counts, min_peak_mbq=float(min_peak_mbq), warnings=warnings,
    )


def _shape_table(structure_fits, labels, grid_shape, t):
    """Arrays describing each structure's fitted curve at the scan times (row = label)."""
    lab_flat = np.zeros(1, dtype=np.int32)
    has_labels, default_label = False, 0
    if structure_fits is None:
        fits: Dict[int, TacFit] = {}
    elif isinstance(structure_fits, TacFit):
        fits, default_label = {1: structure_fits}, 1  # one fit for every voxel
    else:
        fits = {int(key): fit for key, fit in structure_fits.items()}
        if labels is None:
            raise InputError("fit_voxels: structure_fits given as a mapping needs the integer 'labels' map")
        if fits and min(fits) < 0:
            raise InputError("fit_voxels: structure_fits labels must be >= 0")
        labels = np.asarray(labels)
        if labels.shape != tuple(grid_shape):
            raise GeometryError(f"fit_voxels: labels shape {labels.shape} differs from the grid {tuple(grid_shape)}")
        lab_flat = np.ascontiguousarray(labels, dtype=np.int32).ravel()
        has_labels = True
    size = max(fits) + 1 if fits else 1
    shape_vals = np.zeros((size, len(t)))
    shape_norm = np.zeros(size)
    shape_tia = np.zeros(size)
    shape_k = np.zeros(size)
    for key, fit in fits.items():
        s = fit.evaluate(t)
        shape_vals[key] = s
        shape_norm[key] = float(s @ s)
        shape_tia[key] = fit.tia_mbq_h
        if fit.is_exponential:
            shape_k[key] = math.log(2.0) / fit.effective_half_life_h
        else:
            shape_k[key] = float(np.max(s)) / fit.tia_mbq_h
        # a clearance rate for BED is never below physical decay (nothing clears slower than it decays)
        shape_k[key] = max(shape_k[key], fit.physical_decay_constant_per_h)
    return has_labels, default_label, lab_flat, shape_vals, shape_norm, shape_tia, shape_k
