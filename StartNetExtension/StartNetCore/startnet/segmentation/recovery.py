"""Partial-volume correction with recovery coefficients (RC) versus volume, per camera.

RC(V) = measured mean concentration in a volume V / true concentration. The corrected activity
of a VOI is A = A_measured / RC(V). Curves live in ``recovery_curves.json`` beside this module
(per camera/protocol name: volumes in mL and RC values, with how they were obtained); a site
replaces them with curves measured on its own sphere phantom.

The shipped ``default`` curve is derived, not measured: a uniform sphere of volume V blurred by
an isotropic Gaussian PSF of ``psf_fwhm_mm`` (11 mm, a 177Lu medium-energy SPECT with resolution
recovery, as the project phantom), mean of the blurred image inside the true sphere. The closed
form of the blurred sphere profile (uniform ball * Gaussian) is
c(r) = 1/2 [erf((R-r)/(s√2)) + erf((R+r)/(s√2))] - s/(r√(2π)) [exp(-(R-r)²/2s²) - exp(-(R+r)²/2s²)]
and RC = 3/R³ ∫₀^R c(r) r² dr (``sphere_recovery_coefficient``). ``write_default_curves``
regenerates the JSON; a test checks the file against the formula and the formula against a
voxelised, blurred sphere.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
from scipy import integrate, special

from startnet.errors import InputError

CURVES_PATH = Path(__file__).with_name("recovery_curves.json")
DEFAULT_VOLUMES_ML = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0)
DEFAULT_PSF_FWHM_MM = 11.0


def blurred_sphere_profile(r_mm: np.ndarray, radius_mm: float, sigma_mm: float) -> np.ndarray:
    """Concentration at distance r from the centre of a unit sphere blurred by a Gaussian."""
    r = np.maximum(np.asarray(r_mm, dtype=float), 1e-9)
    s2 = sigma_mm * math.sqrt(2.0)
    erf_part = 0.5 * (special.erf((radius_mm - r) / s2) + special.erf((radius_mm + r) / s2))
    exp_part = (sigma_mm / (r * math.sqrt(2.0 * math.pi))) * (
        np.exp(-((radius_mm - r) ** 2) / (2 * sigma_mm ** 2)) - np.exp(-((radius_mm + r) ** 2) / (2 * sigma_mm ** 2)))
    return erf_part - exp_part


def sphere_recovery_coefficient(volume_ml: float, psf_fwhm_mm: float) -> float:
    """Mean of the blurred sphere inside the true sphere (closed-form profile, 1-D quadrature)."""
    if volume_ml <= 0 or psf_fwhm_mm <= 0:
        raise InputError("sphere_recovery_coefficient: volume_ml and psf_fwhm_mm must be positive")
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    sigma = psf_fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    value, _ = integrate.quad(lambda r: float(blurred_sphere_profile(r, radius, sigma)) * r * r, 0.0, radius,
                              limit=200)
    return 3.0 * value / radius ** 3


@dataclass(frozen=True)
class RecoveryCurve:
    """RC versus volume for one camera/protocol; log-volume linear interpolation, clamped ends."""

    camera: str
    volumes_ml: Tuple[float, ...]
    recovery_coefficients: Tuple[float, ...]
    description: str = ""
    # relative standard uncertainty of the curve's values (GUM input); 5 % assumed for a derived curve
    rel_sd: float = 0.05

    def __post_init__(self) -> None:
        v, rc = np.asarray(self.volumes_ml, float), np.asarray(self.recovery_coefficients, float)
        if v.ndim != 1 or v.size < 2 or v.size != rc.size:
            raise InputError(f"recovery curve '{self.camera}': need >= 2 volumes with one RC each")
        if np.any(np.diff(v) <= 0) or np.any(v <= 0):
            raise InputError(f"recovery curve '{self.camera}': volumes_ml must be positive and increasing")
        if np.any(rc <= 0) or np.any(rc > 1.2):
            raise InputError(f"recovery curve '{self.camera}': RC values must lie in (0, 1.2]")

    def rc(self, volume_ml: float) -> float:
        if not volume_ml > 0:
            raise InputError(f"recovery curve '{self.camera}': volume must be positive, got {volume_ml}")
        return float(np.interp(math.log(volume_ml), np.log(self.volumes_ml), self.recovery_coefficients))

    def rel_sd_params(self, volume_ml: float) -> float:
        """Relative standard uncertainty of RC(volume) from the curve itself (GUM input)."""
        return self.rel_sd

    def dln_rc_dln_v(self, volume_ml: float) -> float:
        """Sensitivity of RC to the volume, d ln RC / d ln V (numerical, +-5 %)."""
        step = 1.05
        return math.log(self.rc(volume_ml * step) / self.rc(volume_ml / step)) / (2.0 * math.log(step))

    @property
    def source(self) -> str:
        return f"{self.camera}: {self.description} (relative SD {100 * self.rel_sd:g} %)"

    def to_dict(self) -> Dict[str, object]:
        return {"volumes_ml": list(self.volumes_ml), "recovery_coefficients": list(self.recovery_coefficients),
                "description": self.description, "rel_sd": self.rel_sd}


def derive_sphere_curve(camera: str, psf_fwhm_mm: float,
                        volumes_ml: Sequence[float] = DEFAULT_VOLUMES_ML) -> RecoveryCurve:
    rcs = tuple(round(sphere_recovery_coefficient(v, psf_fwhm_mm), 5) for v in volumes_ml)
    return RecoveryCurve(camera, tuple(float(v) for v in volumes_ml), rcs,
                         f"derived: uniform spheres blurred by a Gaussian PSF of {psf_fwhm_mm:g} mm FWHM, "
                         "mean inside the true sphere (not measured)")


def write_default_curves(path: Path = CURVES_PATH) -> None:
    """Regenerate the shipped JSON (the default derived curve)."""
    curve = derive_sphere_curve("default", DEFAULT_PSF_FWHM_MM)
    payload = {"format": "startnet recovery curves v1", "psf_fwhm_mm": {"default": DEFAULT_PSF_FWHM_MM},
               "curves": {"default": curve.to_dict()}}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def load_recovery_curves(path: Path = CURVES_PATH) -> Dict[str, RecoveryCurve]:
    try:
        payload = json.loads(Path(path).read_text())
        curves = payload["curves"]
        return {name: RecoveryCurve(name, tuple(c["volumes_ml"]), tuple(c["recovery_coefficients"]),
                                    c.get("description", ""), float(c.get("rel_sd", 0.05)))
                for name, c in curves.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"recovery curve file {path}: cannot read ({type(exc).__name__}: {exc}); "
                         "expected {'curves': {name: {volumes_ml, recovery_coefficients}}}") from exc


@lru_cache(maxsize=4)
def _shipped() -> Dict[str, RecoveryCurve]:
    return load_recovery_curves(CURVES_PATH)


def recovery_coefficient(volume_ml: float, camera: str = "default") -> float:
    """RC for a VOI of ``volume_ml`` from the shipped curve of ``camera``."""
    curves = _shipped()
    if camera not in curves:
        raise InputError(f"no recovery curve for camera '{camera}'; available: {sorted(curves)}")
    return curves[camera].rc(volume_ml)
