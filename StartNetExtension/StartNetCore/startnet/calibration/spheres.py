"""``SPHERES.json`` (the sphere phantom's description) and the spheres' voxel shares on an image grid.

Contract::

    {"spheres": [{"name": str, "centre_mm": [x, y, z] (patient LPS), "volume_ml": float}, ...],
     "sphere_concentration_kbq_ml": float, "background_concentration_kbq_ml": float,
     "reference_datetime": ISO 8601 (with or without offset; without: the site's zone)}

Optional: ``concentration_rel_sd`` (relative standard uncertainty of the concentrations, default
2 %: dose calibrator and dilution). A sphere's share of each voxel is found on a 7^3 sub-grid of
the voxels near it (exact in the limit, < 1 % volume error for a 10 mm sphere at 4.8 mm voxels).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import InputError

DEFAULT_CONCENTRATION_REL_SD = 0.02
SUBSAMPLES = 7


@dataclass(frozen=True)
class Sphere:
    name: str
    centre_mm: Tuple[float, float, float]
    volume_ml: float

    @property
    def radius_mm(self) -> float:
        return (3.0 * self.volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


@dataclass(frozen=True)
class SpherePhantom:
    spheres: List[Sphere]
    sphere_kbq_ml: float
    background_kbq_ml: float
    reference_datetime: _dt.datetime
    concentration_rel_sd: float = DEFAULT_CONCENTRATION_REL_SD
    path: str = ""


def _number(value, where: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            value <= 0 if positive else value < 0):
        raise InputError(f"{where} must be a number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def parse_datetime(text: str, where: str, zone: _dt.tzinfo) -> _dt.datetime:
    """ISO 8601 with or without offset (without: local time in ``zone``), as UTC."""
    try:
        value = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not an ISO 8601 date-time (e.g. 2026-03-02T09:15:00+01:00)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(_dt.timezone.utc)


def read_spheres(path, zone: _dt.tzinfo) -> SpherePhantom:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"spheres file {p}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"spheres file {p}: not readable JSON ({exc})") from None
    return parse_spheres(data, zone, f"spheres file {p}", str(p))


def parse_spheres(data, zone: _dt.tzinfo, where: str, path: str = "") -> SpherePhantom:
    """The phantom a SPHERES.json document describes (``where`` names it in messages: a file, a markups node)."""
    if not isinstance(data, dict) or not isinstance(data.get("spheres"), list) or not data["spheres"]:
        raise InputError(f"{where}: expected an object with a non-empty 'spheres' list")
    spheres = []
    for i, item in enumerate(data["spheres"]):
        at = f"{where}: spheres[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{at} must be an object with name, centre_mm, volume_ml")
        centre = item.get("centre_mm")
        if not isinstance(centre, list) or len(centre) != 3:
            raise InputError(f"{at}.centre_mm must be [x, y, z] in mm, got {centre!r}")
        if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in centre):
            raise InputError(f"{at}.centre_mm must be three finite numbers (mm), got {centre!r}")
        spheres.append(Sphere(str(item.get("name") or f"sphere_{i + 1}"), tuple(float(c) for c in centre),
                              _number(item.get("volume_ml"), f"{at}.volume_ml")))
    names = [s.name for s in spheres]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{where}: sphere names must be unique, {', '.join(repeated)} repeated")
    hot = _number(data.get("sphere_concentration_kbq_ml"), f"{where}: sphere_concentration_kbq_ml")
    warm = _number(data.get("background_concentration_kbq_ml"), f"{where}: background_concentration_kbq_ml",
                   positive=False)
    if not hot > warm:
        raise InputError(f"{where}: sphere_concentration_kbq_ml {hot:g} must exceed the background's {warm:g}")
    if "reference_datetime" not in data:
        raise InputError(f"{where}: 'reference_datetime' (ISO 8601, when the concentrations were measured) "
                         "is missing")
    when = parse_datetime(data["reference_datetime"], f"{where}: reference_datetime", zone)
    rel = _number(data.get("concentration_rel_sd", DEFAULT_CONCENTRATION_REL_SD),
                  f"{where}: concentration_rel_sd", positive=False)
    return SpherePhantom(spheres, hot, warm, when, rel, path)


def sphere_share(image: sitk.Image, sphere: Sphere, where: str = ""):
    """(low_xyz, block_zyx): the share of each voxel inside the sphere in a block starting at voxel ``low_xyz``.

    InputError if the sphere's centre lies outside the image.
    """
    size = np.array(image.GetSize())
    centre_index = np.array(image.TransformPhysicalPointToContinuousIndex([float(c) for c in sphere.centre_mm]))
    if np.any(centre_index < -0.5) or np.any(centre_index > size - 0.5):
        raise InputError(f"{where}sphere '{sphere.name}': centre_mm {list(sphere.centre_mm)} lies outside the image "
                         f"({image.GetSize()} voxels from {tuple(round(v, 1) for v in image.GetOrigin())} mm); "
                         "expected patient LPS coordinates of the sphere's centre")
    spacing = np.array(image.GetSpacing())
    reach = sphere.radius_mm / spacing + 1.0
    low = np.maximum(np.floor(centre_index - reach).astype(int), 0)
    high = np.minimum(np.ceil(centre_index + reach).astype(int) + 1, size)
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES - 0.5
    d = [((np.arange(low[a], high[a])[:, None] + offsets[None, :]) - centre_index[a]) * spacing[a] for a in range(3)]
    dx, dy, dz = d
    r2 = (dz[:, None, None, :, None, None] ** 2 + dy[None, :, None, None, :, None] ** 2
          + dx[None, None, :, None, None, :] ** 2)
    return tuple(int(v) for v in low), (r2 <= sphere.radius_mm ** 2).mean(axis=(3, 4, 5))


def voxel_positions_mm(image: sitk.Image, crop: Optional[Tuple[slice, slice, slice]] = None):
    """Physical (x, y, z) of voxel centres, each (z, y, x)-shaped (orthonormal direction)."""
    size = image.GetSize()
    zs, ys, xs = (np.arange(size[2]), np.arange(size[1]), np.arange(size[0]))
    if crop is not None:
        zs, ys, xs = zs[crop[0]], ys[crop[1]], xs[crop[2]]
    k, j, i = np.meshgrid(zs, ys, xs, indexing="ij")
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    origin = np.array(image.GetOrigin())
    index = np.stack([i, j, k], axis=-1) * spacing
    points = origin + index @ direction.T
    return points[..., 0], points[..., 1], points[..., 2]
