"""The Slicer extension is well formed: CMake lists, modules, resources, .ui files, index entry.

The Slicer desktop cannot run here, so these checks stand in for what the Slicer build farm and
the ExtensionsIndex checks would reject: a module listed in CMake that does not exist, a missing
icon or .ui, a .ui that does not parse, a widget bound (SlicerParameterName) to a parameter that
the module's @parameterNodeWrapper class does not declare, an ExtensionsIndex entry that breaks
schema v1.0.1.
"""

from __future__ import annotations

import ast
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION_DIR = ROOT / "StartNetExtension"
QT_CLASSES = {"QWidget", "QLabel", "QPushButton", "QCheckBox", "QSpinBox", "QDoubleSpinBox", "QLineEdit",
              "QComboBox", "QTableWidget", "QTableView", "QGroupBox", "QTextEdit", "QPlainTextEdit",
              "QRadioButton", "QToolButton", "QProgressBar", "QFrame", "QSlider", "QTabWidget"}
# ExtensionsIndex schema v1.0.1: required keys, allowed keys, and value constraints.
SCHEMA_REQUIRED = {"$schema", "category", "scm_url"}
SCHEMA_ALLOWED = SCHEMA_REQUIRED | {"scm_revision", "scm_type", "build_dependencies", "build_subdirectory",
                                    "enabled", "tier"}


def _cmake_subdirectories(path: Path) -> list:
    text = re.sub(r"#.*", "", path.read_text())
    return re.findall(r"add_subdirectory\(\s*([A-Za-z0-9_]+)\s*\)", text)


def _modules() -> list:
    return _cmake_subdirectories(EXTENSION_DIR / "CMakeLists.txt")


def _parameter_fields(module_py: Path) -> set:
    tree = ast.parse(module_py.read_text())
    fields = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            getattr(d, "id", getattr(d, "attr", None)) == "parameterNodeWrapper" for d in node.decorator_list
        ):
            fields |= {stmt.target.id for stmt in node.body if isinstance(stmt, ast.AnnAssign)}
    return fields


def test_top_level_cmake_follows_the_extension_template():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"project\(StartNetExtension\)", text)
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                     "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS", "EXTENSION_CATEGORY"):
        assert re.search(rf"set\({variable} ", text), variable
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(StartNetExtension)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text, line


def test_extensions_index_entry_matches_schema_and_project_name():
    entry = json.loads((ROOT / "StartNetExtension.json").read_text())
    assert set(entry) >= SCHEMA_REQUIRED, SCHEMA_REQUIRED - set(entry)
    assert set(entry) <= SCHEMA_ALLOWED, set(entry) - SCHEMA_ALLOWED
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry["tier"] in (1, 3, 5)
    assert entry.get("scm_type", "git") in ("git", "local")
    assert all(isinstance(d, str) for d in entry["build_dependencies"])
    # the ExtensionsIndex file name must equal the CMake project name
    assert (ROOT / "StartNetExtension.json").stem == "StartNetExtension"
    assert (ROOT / "LICENSE.txt").read_text().lstrip().startswith("Apache License")


def _png_size(path: Path) -> tuple:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_extension_icon_is_128_png():
    assert _png_size(ROOT / "StartNetExtension.png") == (128, 128)


@pytest.mark.parametrize("module", _modules())
def test_module_has_sources_and_resources(module):
    folder = EXTENSION_DIR / module
    cmake = (folder / "CMakeLists.txt").read_text()
    assert f"set(MODULE_NAME {module})" in cmake
    assert "slicerMacroBuildScriptedModule(" in cmake and "WITH_GENERIC_TESTS" in cmake
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake
    source = folder / f"{module}.py"
    tree = ast.parse(source.read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for suffix in ("", "Widget", "Logic", "Test"):
        assert f"{module}{suffix}" in classes, f"{source} lacks class {module}{suffix}"
    assert _parameter_fields(source) or module == "StartNetCore"
    assert _png_size(folder / "Resources" / "Icons" / f"{module}.png")[0] >= 64
    assert (folder / "Resources" / "UI" / f"{module}.ui").is_file()


@pytest.mark.parametrize("module", _modules())
def test_ui_parses_and_binds_only_declared_parameters(module):
    folder = EXTENSION_DIR / module
    root = ET.parse(folder / "Resources" / "UI" / f"{module}.ui").getroot()
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    widgets = {w.get("name"): w.get("class") for w in root.iter("widget")}
    assert len(widgets) == len(list(root.iter("widget"))), "widget names must be unique"
    declared_custom = {c.findtext("class") for c in root.iter("customwidget")}
    for name, cls in widgets.items():
        assert cls in QT_CLASSES or cls in declared_custom, f"{module}.ui: {name} uses undeclared class {cls}"
    bound = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[widget.get("name")] = prop.findtext("string")
    fields = _parameter_fields(folder / f"{module}.py")
    for widget_name, parameter in bound.items():
        assert parameter in fields, f"{module}.ui: {widget_name} binds unknown parameter '{parameter}'"
    for connection in root.iter("connection"):
        assert connection.findtext("sender") in widgets
        assert connection.findtext("receiver") in widgets
    # every widget the module code uses through self.ui.<name> exists in the .ui
    used = set(re.findall(r"self\.ui\.([A-Za-z_][A-Za-z0-9_]*)", (folder / f"{module}.py").read_text()))
    assert used <= set(widgets), f"{module}.py uses widgets missing from the .ui: {used - set(widgets)}"


def test_modules_depend_on_core_and_core_ships_the_package():
    modules = _modules()
    assert modules[0] == "StartNetCore"
    for module in modules[1:]:
        text = (EXTENSION_DIR / module / f"{module}.py").read_text()
        assert 'self.parent.dependencies = ["StartNetCore"]' in text, module
    core_cmake = (EXTENSION_DIR / "StartNetCore" / "CMakeLists.txt").read_text()
    assert "startnet/*.py" in core_cmake
    assert (EXTENSION_DIR / "StartNetCore" / "startnet" / "__init__.py").is_file()


def test_module_titles_are_unique():
    titles = []
    for module in _modules():
        match = re.search(r'self\.parent\.title = "([^"]+)"', (EXTENSION_DIR / module / f"{module}.py").read_text())
        titles.append(match.group(1))
    assert len(set(titles)) == len(titles)
