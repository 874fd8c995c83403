"""What identifies one generated phantom: its configuration, the generator's code and the startnet version.

A cached phantom (:mod:`startnet.phantom.sample`) is reused only when all three are the same: the
version alone misses a developer install whose phantom code changed, and another
:class:`~startnet.phantom.config.PhantomConfig` (noise, timing, camera, grids...) within one preset.

- configuration: every field of the PhantomConfig, with the grids it resolves to, as canonical JSON;
- code: the bytes of every ``.py`` file of the :mod:`startnet.phantom` package and of the modules
  outside it whose values go into the written files (:data:`GENERATOR_MODULES`), found without
  importing them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Dict, List

from startnet import __version__

# modules outside startnet.phantom that the generator uses for the values it writes
GENERATOR_MODULES = ("startnet.physics.lu177", "startnet.segmentation.recovery", "startnet.dosimetry.marrow_image")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def config_values(config) -> Dict[str, object]:
    """Every field of a PhantomConfig as JSON values (the grid override as the grids it gives)."""
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "grid_override"}
    out["ct_grid"] = dataclasses.asdict(config.ct_grid)
    out["spect_grid"] = dataclasses.asdict(config.spect_grid)
    return _jsonable(out)


def generator_sources() -> List[Path]:
    """The source files whose code generates the phantom (sorted)."""
    package = Path(__file__).resolve().parent
    files = sorted(package.glob("*.py"))
    for name in GENERATOR_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            files.append(Path(spec.origin).resolve())
    return files


def code_digest() -> str:
    """SHA-256 of the generator's source files (names and bytes), re-read when a file's size or time changes."""
    return _digest(tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in generator_sources()))


@functools.lru_cache(maxsize=8)
def _digest(files: tuple) -> str:
    digest = hashlib.sha256()
    for path, _, _ in files:
        digest.update(Path(path).name.encode())
        digest.update(b"\0")
        digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def phantom_fingerprint(config) -> Dict[str, str]:
    """``startnet_version``, ``config_sha256``, ``code_sha256`` and their ``fingerprint`` for ``config``."""
    config_text = json.dumps(config_values(config), sort_keys=True, separators=(",", ":"))
    config_sha = hashlib.sha256(config_text.encode()).hexdigest()
    code_sha = code_digest()
    combined = hashlib.sha256(f"{__version__}\0{config_sha}\0{code_sha}".encode()).hexdigest()
    return {"startnet_version": __version__, "config_sha256": config_sha, "code_sha256": code_sha,
            "fingerprint": combined}
