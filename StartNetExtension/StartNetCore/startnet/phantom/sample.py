"""The phantom cycle as sample data: generated locally into a cache folder on first use, reused afterwards.

Nothing is downloaded: the cycle (CT + NM SPECT DICOM per time point, segmentation.seg.nrrd and
truth.json, as ``startnet phantom`` writes) is built by :mod:`startnet.phantom`. The Slicer side
(StartNetCoreLib.sampledata) registers it with the Sample Data module and imports the DICOM
folder into Slicer's DICOM database.

A cache folder counts as complete only when its manifest (written last) lists files that all
exist with the recorded sizes; the cycle is written into a temporary sibling and renamed into
place, so an interrupted generation is never mistaken for a finished one. The folder name holds
the preset, seed, startnet version and the phantom's fingerprint (:mod:`startnet.phantom.fingerprint`:
the PhantomConfig's values and the generator's source code), and the manifest must hold the same
fingerprint: another configuration, or changed phantom code within one version (a developer
install), regenerates instead of reusing files made by other code or parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from startnet import __version__
from startnet.errors import InputError, OutputError
from startnet.phantom.fingerprint import phantom_fingerprint

MANIFEST_NAME = "startnet-sample.json"
DEFAULT_PRESET = "small"
DEFAULT_SEED = 0


@dataclass(frozen=True)
class SampleCycle:
    folder: Path  # the cache folder of this sample
    dicom_dir: Path  # DICOM files of all time points (what to import / load)
    manifest: Dict[str, object]
    generated: bool  # True when this call built it, False when the cache was reused


def sample_config(preset: str = DEFAULT_PRESET, seed: int = DEFAULT_SEED, config=None):
    """The PhantomConfig of a sample: ``config`` when given, else the defaults of ``preset`` and ``seed``."""
    from startnet.phantom.config import PRESETS, PhantomConfig

    if config is None:
        if preset not in PRESETS:
            raise InputError(f"sample preset {preset!r} is not one of {PRESETS}")
        config = PhantomConfig(preset=preset, seed=seed)
    config.validate()
    return config


def sample_folder(cache_dir, preset: str = DEFAULT_PRESET, seed: int = DEFAULT_SEED, config=None) -> Path:
    """Cache folder of one sample: preset, seed, startnet version and the fingerprint of config and code."""
    config = sample_config(preset, seed, config)
    short = phantom_fingerprint(config)["fingerprint"][:16]
    return Path(cache_dir) / f"startnet-phantom-{config.preset}-seed{int(config.seed)}-v{__version__}-{short}"


def read_manifest(folder, fingerprint: Optional[str] = None) -> Optional[Dict[str, object]]:
    """The folder's manifest when the sample there is complete (every listed file present, same size) and,
    when ``fingerprint`` is given, made from that configuration and generator code; else None."""
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("startnet_version") != __version__:
        return None
    if fingerprint is not None and manifest.get("fingerprint") != fingerprint:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for relative, size in files.items():
        target = Path(folder) / relative
        if not target.is_file() or target.stat().st_size != size:
            return None
    return manifest


def _manifest(folder: Path, phantom, files, identity: Dict[str, str]) -> Dict[str, object]:
    listed = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    return {
        **identity,
        "preset": phantom.config.preset,
        "seed": phantom.config.seed,
        "patient_id": phantom.config.patient_id,
        "hours_post_injection": [tp.hours_post_injection for tp in phantom.timepoints],
        "dicom_dir": files.dicom_dir.relative_to(folder).as_posix(),
        "truth_json": files.truth_json.relative_to(folder).as_posix(),
        "segmentation": files.segmentation_nrrd.relative_to(folder).as_posix(),
        "files": {p.relative_to(folder).as_posix(): p.stat().st_size for p in listed},
    }


def _sample(folder: Path, manifest: Dict[str, object], generated: bool) -> SampleCycle:
    return SampleCycle(folder, folder / str(manifest["dicom_dir"]), manifest, generated)


def ensure_sample_cycle(cache_dir, *, preset: str = DEFAULT_PRESET, seed: int = DEFAULT_SEED, config=None,
                        progress: Optional[Callable[[float, str], None]] = None) -> SampleCycle:
    """The sample cycle in ``cache_dir``: reused when complete and made from the same configuration and
    generator code, otherwise generated (needs numba). ``config`` (a PhantomConfig) overrides preset and seed."""
    config = sample_config(preset, seed, config)
    identity = phantom_fingerprint(config)
    fingerprint = identity["fingerprint"]
    folder = sample_folder(cache_dir, config=config)
    manifest = read_manifest(folder, fingerprint)
    if manifest is not None:
        return _sample(folder, manifest, generated=False)

    from startnet.phantom.export import write_phantom_dicom
    from startnet.phantom.model import build_phantom

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    except OSError as exc:
        raise OutputError(f"sample data cache {folder.parent}: cannot create a folder there ({exc})") from exc
    try:
        if progress:
            progress(0.05, "building the phantom patient")
        phantom = build_phantom(config)
        if progress:
            progress(0.6, "writing its DICOM")
        files = write_phantom_dicom(phantom, partial)
        manifest = _manifest(partial, phantom, files, identity)
        (partial / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if folder.exists() and read_manifest(folder, fingerprint) is None:
            shutil.rmtree(folder)  # an incomplete or outdated copy
        try:
            os.replace(partial, folder)
        except OSError:
            # another process finished the same sample first: use it if it is complete
            if read_manifest(folder, fingerprint) is None:
                raise
            shutil.rmtree(partial, ignore_errors=True)
            return _sample(folder, read_manifest(folder, fingerprint), generated=False)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if progress:
        progress(1.0, f"sample cycle ready in {folder}")
    return _sample(folder, manifest, generated=True)
