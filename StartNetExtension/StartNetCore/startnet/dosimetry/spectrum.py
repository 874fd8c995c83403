"""177Lu emission spectrum used to generate the project's dose kernels.

Electrons
    * beta-minus continuum: the three branches of REFERENCE.md section 2 (endpoints 498.3, 385.3,
      176.5 keV; intensities 79.4, 9.0, 12.2 %), each with the *allowed* shape
      ``N(W) ~ F(Z, W) p W (W0 - W)^2`` and the relativistic Fermi function with finite nuclear
      radius (Z = 72 for the Hf daughter, R = 1.2 A^(1/3) fm). Approximations: the branches are
      treated as allowed (no forbiddenness shape factor), no screening or radiative corrections.
      The resulting mean beta energy per decay is about 1 % above ICRP 107's 133.27 keV; the
      kernel generator reports that difference as part of the pre-normalisation energy balance.
    * internal-conversion lines of the 112.95 keV and 208.37 keV transitions (K, L, M shells;
      Hf K binding 65.35 keV, L ~10.7 keV, M ~2.5 keV) with approximate relative intensities,
      scaled so that their energy sum equals ICRP 107's IC total (13.522 keV per decay). All of
      them have CSDA ranges below 0.5 mm in water.
    * Auger electrons (ICRP 107 total 1.132 keV per decay, energies <= ~55 keV, mostly ~6 keV L
      Auger): deposited at the decay site.

Photons
    * gamma lines of REFERENCE.md section 2 (208.366, 112.95, 321.3, 249.7 keV), yields scaled
      by 31.558 / 31.38 so that the gamma energy per decay equals ICRP 107 (the minor lines not
      listed carry the 0.6 % difference);
    * Hf K X-rays as one effective 56 keV line (Ka1/Ka2/Kb weighted) with yield 0.0585 and the
      L X-rays (~8 keV, range < 1 mm in water) absorbed at the decay site, together matching
      ICRP 107's X-ray total of 3.540 keV per decay (the K/L split is approximate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy.special import loggamma

from startnet.physics.lu177 import LU177, Nuclide

ELECTRON_REST_MEV = 0.51099895
FINE_STRUCTURE = 1.0 / 137.035999
HBAR_C_OVER_MC2_FM = 386.159  # reduced Compton wavelength of the electron, fm

ICRP_BETA_MEV = 0.133270
ICRP_IC_MEV = 0.013522
ICRP_AUGER_MEV = 0.001132
ICRP_GAMMA_MEV = 0.031558
ICRP_XRAY_MEV = 0.003540

# (energy keV, relative intensity per decay before scaling) of the conversion electrons
_IC_LINES_KEV = ((47.6, 0.052), (102.2, 0.087), (110.4, 0.020), (143.0, 0.0013), (197.7, 0.0005))
_K_XRAY_KEV = 56.0
_K_XRAY_YIELD = 0.0585


@dataclass(frozen=True)
class EmissionSpectrum:
    """Discrete representation of the emissions per decay (energies in MeV)."""

    beta_energy_mev: np.ndarray  # bin centres of the summed beta continuum
    beta_prob_per_decay: np.ndarray  # probability per decay in each bin (sums to the branch total)
    electron_lines: Tuple[Tuple[float, float], ...]  # (energy MeV, yield per decay) IC electrons
    local_electron_mev: float  # Auger energy deposited at the decay site, per decay
    photon_lines: Tuple[Tuple[float, float], ...]  # (energy MeV, yield per decay) transported
    local_photon_mev: float  # L X-ray energy deposited at the decay site, per decay

    @property
    def beta_mean_mev_per_decay(self) -> float:
        return float(np.sum(self.beta_energy_mev * self.beta_prob_per_decay))

    @property
    def electron_mev_per_decay(self) -> float:
        lines = sum(e * y for e, y in self.electron_lines)
        return self.beta_mean_mev_per_decay + lines + self.local_electron_mev

    @property
    def photon_mev_per_decay(self) -> float:
        return sum(e * y for e, y in self.photon_lines) + self.local_photon_mev


def fermi_function(z_daughter: int, kinetic_mev: np.ndarray, mass_number: int) -> np.ndarray:
    """Relativistic Fermi function F(Z, W) with finite nuclear radius, for beta-minus decay."""
    w = 1.0 + np.asarray(kinetic_mev, dtype=float) / ELECTRON_REST_MEV
    p = np.sqrt(np.maximum(w * w - 1.0, 1e-300))
    az = FINE_STRUCTURE * z_daughter
    gamma = math.sqrt(1.0 - az * az)
    eta = az * w / p
    radius = 1.2 * mass_number ** (1.0 / 3.0) / HBAR_C_OVER_MC2_FM
    log_gamma_complex = loggamma(gamma + 1j * eta)
    log_f = (math.log(2.0 * (1.0 + gamma)) + (2.0 * gamma - 2.0) * np.log(2.0 * p * radius)
             + math.pi * eta + 2.0 * log_gamma_complex.real - 2.0 * float(loggamma(2.0 * gamma + 1.0).real))
    return np.exp(log_f)


def allowed_beta_shape(endpoint_mev: float, kinetic_mev: np.ndarray, z_daughter: int = 72,
                       mass_number: int = 177) -> np.ndarray:
    """Unnormalised allowed beta-minus spectrum dN/dT at ``kinetic_mev`` (zero beyond the endpoint)."""
    t = np.asarray(kinetic_mev, dtype=float)
    w = 1.0 + t / ELECTRON_REST_MEV
    w0 = 1.0 + endpoint_mev / ELECTRON_REST_MEV
    p = np.sqrt(np.maximum(w * w - 1.0, 0.0))
    shape = fermi_function(z_daughter, np.maximum(t, 1e-9), mass_number) * p * w * (w0 - w) ** 2
    return np.where((t > 0.0) & (t < endpoint_mev), shape, 0.0)


def lu177_spectrum(nuclide: Nuclide = LU177, n_bins: int = 500) -> EmissionSpectrum:
    """Emissions of ``nuclide`` (only 177Lu data are available) as described in the module docstring."""
    if nuclide.name != LU177.name:
        raise ValueError(f"kernel generation has emission data for {LU177.name} only, not {nuclide.name}")
    branches = nuclide.beta_branches_endpoint_kev_intensity
    e_max_mev = max(e for e, _ in branches) / 1000.0
    edges = np.linspace(0.0, e_max_mev, n_bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    prob = np.zeros(n_bins)
    for endpoint_kev, intensity in branches:
        # integrate the shape over each bin with 8-point midpoint sub-sampling
        sub = edges[:-1, None] + (np.arange(8)[None, :] + 0.5) / 8.0 * (edges[1] - edges[0])
        per_bin = allowed_beta_shape(endpoint_kev / 1000.0, sub).mean(axis=1)
        prob += intensity * per_bin / per_bin.sum()
    ic_scale = ICRP_IC_MEV / sum(e / 1000.0 * y for e, y in _IC_LINES_KEV)
    ic_lines = tuple((e / 1000.0, y * ic_scale) for e, y in _IC_LINES_KEV)
    gamma = nuclide.gamma_lines_kev_yield
    gamma_scale = ICRP_GAMMA_MEV / sum(e / 1000.0 * y for e, y in gamma)
    photon_lines = tuple((e / 1000.0, y * gamma_scale) for e, y in gamma) + (
        (_K_XRAY_KEV / 1000.0, _K_XRAY_YIELD),)
    local_xray = ICRP_XRAY_MEV - _K_XRAY_KEV / 1000.0 * _K_XRAY_YIELD
    return EmissionSpectrum(beta_energy_mev=centres, beta_prob_per_decay=prob, electron_lines=ic_lines,
                            local_electron_mev=ICRP_AUGER_MEV, photon_lines=photon_lines,
                            local_photon_mev=local_xray)
