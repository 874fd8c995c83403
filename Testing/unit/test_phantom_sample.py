"""The phantom cycle as Slicer sample data: generated once into a cache folder, reused, never half-written."""

from __future__ import annotations

import pytest

import startnet.phantom.sample as sample
from startnet.dicomio import load_cycle
from startnet.errors import InputError
from startnet.phantom import ensure_sample_cycle


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slicer-cache")
    return folder, ensure_sample_cycle(folder)


def test_first_use_generates_a_loadable_cycle(cache):
    cache_dir, first = cache
    assert first.generated and first.folder == sample.sample_folder(cache_dir)
    assert first.manifest["hours_post_injection"] == [4.0, 24.0, 96.0, 168.0]
    dicom_files = [name for name in first.manifest["files"] if name.startswith(first.manifest["dicom_dir"] + "/")]
    assert len(dicom_files) > 4 and all((first.folder / name).is_file() for name in dicom_files)
    cycle = load_cycle(str(first.dicom_dir))
    assert [round(tp.hours_post_injection, 3) for tp in cycle.timepoints] == [4.0, 24.0, 96.0, 168.0]
    assert cycle.patient_id == first.manifest["patient_id"]
    assert [p.name for p in cache_dir.iterdir()] == [first.folder.name]  # no partial folder left


def test_second_use_reuses_the_cache_without_building(cache, monkeypatch):
    cache_dir, first = cache

    def no_build(config):
        raise AssertionError("the complete cached sample must be reused")

    monkeypatch.setattr("startnet.phantom.model.build_phantom", no_build)
    again = ensure_sample_cycle(cache_dir)
    assert not again.generated and again.dicom_dir == first.dicom_dir and again.manifest == first.manifest


def test_damaged_or_interrupted_samples_are_not_reused(cache, tmp_path, monkeypatch):
    _, first = cache
    victim = first.folder / next(name for name in first.manifest["files"] if name.endswith(".dcm"))
    original = victim.read_bytes()
    victim.write_bytes(original[: len(original) // 2])  # truncated file: manifest no longer holds
    try:
        assert sample.read_manifest(first.folder) is None
    finally:
        victim.write_bytes(original)
    assert sample.read_manifest(first.folder) == first.manifest

    def crash(phantom, out_dir):
        (out_dir / "DICOM").mkdir()
        raise OSError("disk full")

    monkeypatch.setattr("startnet.phantom.export.write_phantom_dicom", crash)
    with pytest.raises(OSError, match="disk full"):
        ensure_sample_cycle(tmp_path, seed=3)
    assert list(tmp_path.iterdir()) == []  # nothing that could later pass for a finished sample
    with pytest.raises(InputError, match="sample preset 'huge'"):
        ensure_sample_cycle(tmp_path, preset="huge")
