"""Placeholder repository URLs cannot ship unnoticed: PUBLICATION.json, the URLs and the README agree.

The extension's URLs (StartNetExtension.json scm_url; CMakeLists.txt EXTENSION_HOMEPAGE,
EXTENSION_ICONURL, EXTENSION_SCREENSHOTURLS) must all name one repository, and:
- while PUBLICATION.json says ``"published": false`` that repository must be exactly the declared
  ``placeholder_repository``, the README's install section must say the extension is not yet
  published (naming the placeholder) and must not send users to the Extension Manager, and the
  CMake configure step warns;
- once ``"published": true`` they must name the declared ``repository``, an ExtensionsIndex pull
  request must be recorded, and the README must drop the notice.
Changing any one of the URLs, the record or the README alone fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[2]
UNPUBLISHED_NOTICE = "not yet published"
GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?(?:[#?].*)?$")
RAW = re.compile(r"^https://raw\.githubusercontent\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)/([^/]+)/(.+)$")


def _record() -> dict:
    return json.loads((ROOT / "PUBLICATION.json").read_text())


def _extension_urls() -> Dict[str, str]:
    urls = {"StartNetExtension.json scm_url": json.loads((ROOT / "StartNetExtension.json").read_text())["scm_url"]}
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        value = re.search(rf'set\({variable} "([^"]*)"\)', cmake).group(1)
        for i, url in enumerate(value.split()):
            urls[f"CMakeLists.txt {variable}[{i}]"] = url
    return urls


def _repository(url: str) -> str:
    match = GITHUB.match(url) or RAW.match(url)
    assert match, f"{url}: not a GitHub repository or raw-file URL"
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def _install_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Install in Slicer\n(.*?)(?=^## )", readme, re.S | re.M)
    assert match, "README.md has no '## Install in Slicer' section"
    return match.group(1)


def test_all_urls_name_one_repository_and_its_real_files():
    urls = _extension_urls()
    repositories = {_repository(url) for url in urls.values()}
    assert len(repositories) == 1, f"the extension's URLs name different repositories: {urls}"
    revision = json.loads((ROOT / "StartNetExtension.json").read_text())["scm_revision"]
    for name, url in urls.items():
        raw = RAW.match(url)
        if raw:  # icon and screenshots: files of this checkout, on the branch the index builds
            assert raw.group(3) == revision, f"{name}: branch {raw.group(3)}, scm_revision {revision}"
            assert (ROOT / raw.group(4)).is_file(), f"{name}: {raw.group(4)} is not in the repository"


def test_publication_record_urls_and_readme_agree():
    record = _record()
    assert isinstance(record["published"], bool)
    repository = _repository(next(iter(_extension_urls().values())))
    install = _install_section()
    if not record["published"]:
        assert record["repository"] is None and record["extensions_index_pull_request"] is None
        assert repository == record["placeholder_repository"], (
            f"the URLs name {repository}, which PUBLICATION.json neither declares as placeholder nor as published")
        assert UNPUBLISHED_NOTICE in install.lower(), "README must say the extension is not yet published"
        assert record["placeholder_repository"] in install, "README must name the placeholder repository"
        assert not re.search(r"search\b[^.\n]*\bSTART-NET", install, re.I), (
            "README sends users to search the Extension Manager for an unpublished extension")
    else:
        assert repository == record["repository"], f"URLs name {repository}, PUBLICATION.json {record['repository']}"
        assert "placeholder_repository" not in record
        assert re.fullmatch(r"https://github\.com/Slicer/ExtensionsIndex/pull/\d+",
                            str(record["extensions_index_pull_request"]))
        assert UNPUBLISHED_NOTICE not in install.lower()
        assert "Extension Manager" in install


def _cmake_pattern() -> str:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r'if\(_startnet_publication MATCHES "((?:[^"\\]|\\.)*)"\)', cmake)
    assert match, "CMakeLists.txt no longer checks PUBLICATION.json"
    escapes = {'\\"': '"', "\\t": "\t", "\\r": "\r", "\\n": "\n", "\\\\": "\\"}
    return re.sub(r'\\["trn\\]', lambda m: escapes[m.group(0)], match.group(1))


def test_cmake_configure_warns_exactly_while_unpublished():
    text = (ROOT / "PUBLICATION.json").read_text()
    pattern = _cmake_pattern()
    assert bool(re.search(pattern, text)) == (not _record()["published"])
    assert re.search(pattern, text.replace('"published": false', '"published": true')) is None
    assert "message(WARNING" in (ROOT / "CMakeLists.txt").read_text()
