"""Voxel S-value kernels of 177Lu in water: ``get_kernel(voxel_size_mm)``.

Contract
    ``get_kernel(voxel_size_mm, nuclide=LU177, photon_radius_mm=250.0) -> VoxelKernel``.
    ``voxel_size_mm`` is in SimpleITK order (x, y, z) and may be anisotropic; the kernel arrays
    are in numpy/SimpleITK index order (z, y, x), odd-sized and centred. Each value is the mean
    absorbed dose to WATER in that voxel per MBq.h of time-integrated activity uniformly
    distributed in the central voxel (Gy per MBq.h).

How the kernel is made (all by this package; see the modules named)
    spectrum.py -> electron_transport.py / photon_transport.py (Monte Carlo radial profiles,
    committed as kernels/lu177_radial_profiles.npz by tools/generate_kernels.py) ->
    kernel_build.py (cube-to-cube voxel integration). The electron part is scaled so that
    sum S * m_voxel equals ICRP 107's Delta_e exactly; the scale applied is reported as the
    pre-normalisation energy balance. The photon part is not rescaled: its sum S * m_voxel is
    compared with the photon energy the Monte Carlo deposited inside the kernel sphere
    (``photon_radius_mm``, default 250 mm; beyond it the kernel is zero and that energy -- about
    a quarter of Delta_ph in infinite water -- is not counted, as it largely leaves a patient).

Caching
    Kernels for 2.21, 3.0, 3.9, 4.42, 4.7952 and 4.8 mm isotropic voxels (250 mm photon radius)
    are committed as kernels/lu177_<x>x<y>x<z>mm.npz (electron kernel and photon near block;
    the photon far field is rebuilt from the radial profile on load, in about a second). Other
    sizes are built on demand (a few seconds) and cached in ``$STARTNET_CACHE_DIR`` or
    ``~/.cache/startnet/kernels``; kernels are also memoised in-process.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from startnet.dosimetry import kernel_build
from startnet.dosimetry.kernel_profiles import GENERATOR_VERSION, KERNEL_DIR, RadialProfiles, load_profiles
from startnet.errors import InputError
from startnet.physics.lu177 import LU177, Nuclide

LOG = logging.getLogger(__name__)
COMMITTED_SIZES_MM = (2.21, 3.0, 3.9, 4.42, 4.7952, 4.8)
DEFAULT_PHOTON_RADIUS_MM = 250.0


@dataclass(frozen=True)
class KernelEnergyBalance:
    """Energy balance of a kernel; energies in MeV per decay, deviations in percent."""

    electron_kernel_mev: float  # sum S_e * m_voxel after normalisation
    electron_reference_mev: float  # ICRP 107 Delta_e
    electron_deviation_percent: float
    electron_prenormalisation_deviation_percent: float  # before scaling to Delta_e
    photon_kernel_mev: float  # sum S_ph * m_voxel
    photon_within_extent_mev: float  # Monte Carlo photon energy absorbed inside photon_radius_mm
    photon_deviation_percent: float
    photon_reference_mev: float  # ICRP 107 Delta_ph (emitted)
    photon_radius_mm: float

    @property
    def photon_absorbed_fraction(self) -> float:
        return self.photon_kernel_mev / self.photon_reference_mev


@dataclass(frozen=True)
class VoxelKernel:
    electron_gy_per_mbq_h: np.ndarray  # float32, (z, y, x), odd sizes, centred
    photon_gy_per_mbq_h: np.ndarray  # float32, (z, y, x), odd sizes, centred
    voxel_size_mm: Tuple[float, float, float]  # (x, y, z)
    nuclide: str
    energy_balance: KernelEnergyBalance
    provenance: Dict[str, str] = field(default_factory=dict)

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.voxel_size_mm)) / 1000.0


_MEMO: OrderedDict[tuple, VoxelKernel] = OrderedDict()
MEMO_SIZE = 4  # a 2.21 mm kernel holds ~47 MB of photon values: keep only the last few in memory
_PROFILES: Dict[str, RadialProfiles] = {}


def _profiles() -> RadialProfiles:
    if "lu177" not in _PROFILES:
        _PROFILES["lu177"] = load_profiles()
    return _PROFILES["lu177"]


def _validate_size(voxel_size_mm: Sequence[float]) -> Tuple[float, float, float]:
    try:
        size = tuple(float(v) for v in voxel_size_mm)
    except (TypeError, ValueError) as exc:
        raise InputError(f"kernel voxel_size_mm {voxel_size_mm!r}: expected three numbers (x, y, z) in mm") from exc
    if len(size) != 3 or not all(math.isfinite(v) and 0.5 <= v <= 20.0 for v in size):
        raise InputError(f"kernel voxel_size_mm {voxel_size_mm!r}: expected three sizes between 0.5 and 20 mm")
    return size  # type: ignore[return-value]


def _file_name(size: Tuple[float, float, float], radius_mm: float) -> str:
    tag = "x".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in size)
    suffix = "" if radius_mm == DEFAULT_PHOTON_RADIUS_MM else f"_r{radius_mm:g}"
    return f"lu177_{tag}mm{suffix}.npz"


def _build_tag() -> str:
    """Profile generator version + voxel-integration version, stored in every kernel file."""
    return f"{GENERATOR_VERSION}/{kernel_build.BUILD_VERSION}"


def user_cache_dir() -> Path:
    base = os.environ.get("STARTNET_CACHE_DIR")
    if base:
        return Path(base) / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "startnet" / "kernels"


def build_kernel_parts(size: Tuple[float, float, float], radius_mm: float) -> Dict[str, np.ndarray]:
    """Electron kernel (un-normalised, float64) and photon near block (float32) for ``size``."""
    prof = _profiles()
    electron = kernel_build.electron_kernel(prof.electron_edges_mm, prof.electron_shell_mev, size)
    near = kernel_build.near_field_kernel(prof.photon_edges_mm, prof.photon_shell_mev, size,
                                          kernel_build.photon_near_half(size, radius_mm))
    return {"electron_raw_gy_per_mbq_h": electron, "photon_near_gy_per_mbq_h": near.astype(np.float32),
            "voxel_size_mm": np.array(size), "photon_radius_mm": np.array(radius_mm),
            "generator_version": np.array(_build_tag())}


def save_kernel_parts(parts: Dict[str, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **parts)
    os.replace(tmp, path)


def _load_parts(path: Path) -> Optional[Dict[str, np.ndarray]]:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        parts = {k: data[k] for k in data.files}
    if str(parts.get("generator_version")) != _build_tag():
        return None
    return parts


def _assemble(parts: Dict[str, np.ndarray], size, radius_mm: float, nuclide: Nuclide, source: str) -> VoxelKernel:
    prof = _profiles()
    raw = parts["electron_raw_gy_per_mbq_h"].astype(np.float64)
    raw_mev = kernel_build.kernel_energy_mev_per_decay(raw, size)
    reference_e = nuclide.electron_energy_per_decay_mev
    electron = (raw * (reference_e / raw_mev)).astype(np.float32)
    photon = kernel_build.photon_kernel(prof.photon_edges_mm, prof.photon_shell_mev, size, radius_mm,
                                        near_block=parts["photon_near_gy_per_mbq_h"])
    e_mev = kernel_build.kernel_energy_mev_per_decay(electron, size)
    p_mev = kernel_build.kernel_energy_mev_per_decay(photon, size)
    p_within = kernel_build.energy_within_radius_mev(prof.photon_edges_mm, prof.photon_shell_mev, radius_mm)
    balance = KernelEnergyBalance(
        electron_kernel_mev=e_mev, electron_reference_mev=reference_e,
        electron_deviation_percent=100.0 * (e_mev / reference_e - 1.0),
        electron_prenormalisation_deviation_percent=100.0 * (raw_mev / reference_e - 1.0),
        photon_kernel_mev=p_mev, photon_within_extent_mev=p_within,
        photon_deviation_percent=100.0 * (p_mev / p_within - 1.0),
        photon_reference_mev=nuclide.photon_energy_per_decay_mev, photon_radius_mm=radius_mm)
    provenance = dict(prof.metadata)
    provenance.update({"voxel_integration": "cube-to-cube, shell-averaged box autocorrelation (kernel_build.py)",
                       "electron_normalisation_factor": f"{reference_e / raw_mev:.6f}",
                       "photon_radius_mm": f"{radius_mm:g}", "source": source,
                       "kernel_build_version": _build_tag(),
                       "voxel_size_mm_xyz": ",".join(f"{v:g}" for v in size)})
    return VoxelKernel(electron, photon, tuple(size), nuclide.name, balance, provenance)


def get_kernel(voxel_size_mm: Sequence[float], nuclide: Nuclide = LU177,
               photon_radius_mm: float = DEFAULT_PHOTON_RADIUS_MM) -> VoxelKernel:
    """Voxel S-value kernel (electrons and photons separately) for ``voxel_size_mm`` (x, y, z)."""
    if nuclide.name != LU177.name:
        raise InputError(f"get_kernel: nuclide {nuclide.name!r} has no kernel data; expected {LU177.name}")
    size = _validate_size(voxel_size_mm)
    if not (math.isfinite(photon_radius_mm) and 3 * max(size) <= photon_radius_mm <= 600.0):
        raise InputError(f"get_kernel: photon_radius_mm {photon_radius_mm!r}: expected 3 voxels to 600 mm")
    key = (tuple(round(v, 4) for v in size), float(photon_radius_mm))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    name = _file_name(key[0], photon_radius_mm)
    parts = _load_parts(KERNEL_DIR / name)
    source = f"committed table {name}"
    if parts is None:
        cached = user_cache_dir() / name
        parts = _load_parts(cached)
        source = f"user cache {cached}"
        if parts is None:
            parts = build_kernel_parts(key[0], photon_radius_mm)
            source = "generated on demand"
            try:
                save_kernel_parts(parts, cached)
            except OSError as exc:  # a read-only home must not stop the dose calculation
                LOG.warning("could not cache kernel in %s: %s", cached, exc)
    kernel = _assemble(parts, size, photon_radius_mm, nuclide, source)
    _MEMO[key] = kernel
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return kernel
