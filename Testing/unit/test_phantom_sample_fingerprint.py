"""The sample-data cache is keyed by the phantom's configuration and generator code, not only the version.

Reusing a cached phantom made by other parameters or by other phantom code (a developer install
within one startnet version) would silently give stale DICOM; a folder left by an interrupted
generation must never pass for a finished one. A one-time-point phantom keeps each build short.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

import startnet.phantom.fingerprint as fingerprint
import startnet.phantom.sample as sample
from startnet.errors import InputError
from startnet.phantom.config import PhantomConfig

TINY = PhantomConfig(timepoints_h=(24.0,), motion=False)


@pytest.fixture
def builds(monkeypatch):
    """Counts the phantom builds (the real builder runs)."""
    import startnet.phantom.model as model

    calls = []
    real = model.build_phantom

    def counting(config):
        calls.append(config)
        return real(config)

    monkeypatch.setattr(model, "build_phantom", counting)
    return calls


def test_another_configuration_gets_another_folder():
    default = sample.sample_folder("cache")
    assert default == sample.sample_folder("cache", config=PhantomConfig(preset="small", seed=0))
    assert default.name.startswith(f"startnet-phantom-small-seed0-v{sample.__version__}-")
    others = {sample.sample_folder("cache", config=dataclasses.replace(PhantomConfig(), **change)).name
              for change in ({"noise": False}, {"calibration_cps_per_mbq": 8.0}, {"timepoints_h": (4.0, 24.0)},
                             {"psf_fwhm_mm": 15.0}, {"units": "counts"})}
    assert len(others) == 5 and default.name not in others
    with pytest.raises(InputError, match="PhantomConfig.units"):
        sample.sample_folder("cache", config=PhantomConfig(units="kBq"))


def test_changed_generator_code_regenerates(tmp_path, monkeypatch, builds):
    extra = tmp_path / "render_patch.py"  # stands for an edited file of the phantom package
    extra.write_text("GAIN = 1.0\n", encoding="utf-8")
    real_sources = fingerprint.generator_sources()
    monkeypatch.setattr(fingerprint, "generator_sources", lambda: real_sources + [extra])
    cache = tmp_path / "cache"

    first = sample.ensure_sample_cycle(cache, config=TINY)
    again = sample.ensure_sample_cycle(cache, config=TINY)
    assert first.generated and not again.generated and again.folder == first.folder and len(builds) == 1

    extra.write_text("GAIN = 1.05  # the generator changed within the same startnet version\n", encoding="utf-8")
    changed = sample.ensure_sample_cycle(cache, config=TINY)
    assert changed.generated and len(builds) == 2 and changed.folder != first.folder
    assert changed.manifest["code_sha256"] != first.manifest["code_sha256"]
    assert changed.manifest["config_sha256"] == first.manifest["config_sha256"]

    # the old copy renamed into the new name (or a manifest from other code) is not accepted either
    shutil.rmtree(changed.folder)
    shutil.copytree(first.folder, changed.folder)
    assert sample.read_manifest(changed.folder) is not None
    assert sample.read_manifest(changed.folder, changed.manifest["fingerprint"]) is None
    rebuilt = sample.ensure_sample_cycle(cache, config=TINY)
    assert rebuilt.generated and len(builds) == 3 and rebuilt.manifest["fingerprint"] == changed.manifest["fingerprint"]


def test_interrupted_write_is_regenerated_not_reused(tmp_path, builds):
    cache = tmp_path / "cache"
    folder = sample.sample_folder(cache, config=TINY)
    # what a killed generation can leave: a temporary sibling, and a folder without its manifest
    (cache / (folder.name + ".partial-killed") / "DICOM").mkdir(parents=True)
    (folder / "DICOM").mkdir(parents=True)
    (folder / "DICOM" / "NM000001.dcm").write_bytes(b"half a file")
    made = sample.ensure_sample_cycle(cache, config=TINY)
    assert made.generated and made.folder == folder and len(builds) == 1
    assert sample.read_manifest(folder, made.manifest["fingerprint"]) == made.manifest
    assert (folder / made.manifest["dicom_dir"]).is_dir()
    assert sample.ensure_sample_cycle(cache, config=TINY).generated is False and len(builds) == 1

    # a manifest that lists a file no longer complete (killed while a later writer replaced it)
    manifest = json.loads((folder / sample.MANIFEST_NAME).read_text(encoding="utf-8"))
    victim = folder / next(name for name in manifest["files"] if name.endswith(".dcm"))
    victim.write_bytes(victim.read_bytes()[:100])
    again = sample.ensure_sample_cycle(cache, config=TINY)
    assert again.generated and len(builds) == 2
    assert sample.read_manifest(folder, again.manifest["fingerprint"]) == again.manifest
