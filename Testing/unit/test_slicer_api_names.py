"""Every Slicer API name the modules use exists in Slicer 5.8.1 and in Slicer 5.10.0.

The desktop application cannot run here, so a wrong name would only show up as an
AttributeError, a silently ignored signal connection or a parameter-node binding error the first
time a user opens the module. The names are checked against ``Testing/slicer_api/slicer-<tag>.json``
(names extracted from the Slicer, CTK and Qt sources of that release by
``tools/slicer_api_inventory.py``; each file records its tag and commit):

* ``slicer.util`` / ``slicer.parameterNodeWrapper`` / ``slicer.ScriptedLoadableModule`` /
  ``DICOMLib.DICOMUtils`` / ``SampleData`` names used in the code (attribute chains and
  ``from ... import``), and the keyword arguments passed to those functions;
* widget classes, ``<property>`` names and ``<connection>`` signals/slots in the ``.ui`` files;
* signals connected in the code (``self.ui.<widget>.connect("signal(...)", ...)``,
  ``self.ui.<widget>.<signal>.connect(...)``, ``slicer.app.connect(...)``, and on objects made with
  ``qt.QProcess()``, ``qt.QTimer()``, ``slicer.util.createProgressDialog()``...) and properties
  assigned on those objects;
* each ``SlicerParameterName`` binding: the widget class and the field's type must have a
  parameterNodeWrapper GUI connector in both releases (with the annotations that connector needs),
  and a spin box whose ``.ui`` sets a range keeps it (the connectors overwrite an unannotated
  field's widget range with an unbounded one).
"""

from __future__ import annotations

import ast
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "StartNetExtension"
API_DIR = ROOT / "Testing" / "slicer_api"
TAGS = ("v5.8.1", "v5.10.0")
APP_CLASS = "qSlicerApplication"  # slicer.app


def _load(tag: str) -> dict:
    return json.loads((API_DIR / f"slicer-{tag}.json").read_text())


APIS = {tag: _load(tag) for tag in TAGS}


def scanned_files() -> List[Path]:
    files = sorted(EXTENSION.glob("*/*.py"))
    files += sorted((EXTENSION / "StartNetCore" / "StartNetCoreLib").glob("*.py"))
    files += sorted((EXTENSION / "StartNetCore" / "startnet" / "mrml").glob("*.py"))
    return files


def module_ui(py_file: Path) -> Optional[Path]:
    """The module's .ui (``<Module>/Resources/UI/<Module>.ui``) for ``<Module>/<Module>.py``."""
    ui = py_file.parent / "Resources" / "UI" / f"{py_file.stem}.ui"
    return ui if py_file.parent.name == py_file.stem and ui.exists() else None


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------------
# Signatures and class lookups (same normalization as the inventory tool)
# ------------------------------------------------------------------------------------------------
UNSIGNED = {"unsigned int": "uint", "unsigned": "uint", "unsigned long": "ulong", "unsigned short": "ushort",
            "unsigned char": "uchar"}


def normalize_signature(signature: str) -> str:
    name, _, rest = signature.partition("(")
    params = []
    for param in rest[:rest.rfind(")")].split(","):
        text = re.sub(r"\s+", " ", param).strip()
        if not text or text == "void":
            continue
        text = re.sub(r"\s*([*&<>,])\s*", r"\1", text)
        if text.startswith("const ") and text.endswith("&") and not text.endswith("*&"):
            text = text[len("const "):-1]
        elif text.startswith("const ") and "*" not in text and "&" not in text:
            text = text[len("const "):]
        params.append(UNSIGNED.get(text, text))
    return f"{name.strip()}({','.join(params)})"


def class_chain(api: dict, name: str) -> List[dict]:
    """The class and its bases (most derived first), as far as the inventory knows them."""
    classes, chain, todo, seen = api["qt_classes"], [], [name], set()
    while todo:
        current = todo.pop(0)
        if current in seen or current not in classes:
            continue
        seen.add(current)
        chain.append(classes[current])
        todo.extend(classes[current]["bases"])
    return chain


def has_signal(api: dict, cls: str, signature: str) -> bool:
    wanted = normalize_signature(signature)
    return any(wanted in c["signals"] for c in class_chain(api, cls))


def has_signal_name(api: dict, cls: str, name: str) -> bool:
    return any(s.split("(")[0] == name for c in class_chain(api, cls) for s in c["signals"])


def has_slot(api: dict, cls: str, signature: str) -> bool:
    wanted = normalize_signature(signature)
    return any(wanted in c["slots"] or wanted in c["signals"] for c in class_chain(api, cls))


def writable_property(api: dict, cls: str, prop: str) -> Optional[bool]:
    """True/False if the property exists (writable or not), None if it does not exist."""
    for c in class_chain(api, cls):
        if prop in c["properties"]:
            return prop not in c["readonly_properties"]
    return None


# ------------------------------------------------------------------------------------------------
# Uses found in the sources
# ------------------------------------------------------------------------------------------------
@dataclass
class Use:
    where: str  # file:line
    what: str  # the name as the code or .ui spells it
    check: object  # callable(api) -> Optional[str]: None when the name exists, else why not


@dataclass
class UiWidget:
    name: str
    cls: str
    parameter: Optional[str]
    minimum: Optional[float]
    maximum: Optional[float]
    properties: List[Tuple[str, int]] = field(default_factory=list)


def _line_of(text: str, needle: str) -> int:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 0


def _widget_line(text: str, name: str) -> int:
    return _line_of(text, 'name="' + name + '"')


def _number(prop: Optional[ET.Element]) -> Optional[float]:
    if prop is not None and len(prop) and prop[0].tag in ("number", "double"):
        return float(prop[0].text)
    return None


def parse_ui(ui: Path) -> Tuple[Dict[str, UiWidget], List[Tuple[str, str, str, str]], str]:
    text = ui.read_text()
    root = ET.fromstring(text)
    widgets: Dict[str, UiWidget] = {}
    for element in root.iter("widget"):
        props = {p.get("name"): p for p in element.findall("property")}
        parameter = props.get("SlicerParameterName")
        widget = UiWidget(element.get("name"), element.get("class"),
                          parameter[0].text if parameter is not None else None,
                          _number(props.get("minimum")), _number(props.get("maximum")))
        widget.properties = [(p.get("name"), _widget_line(text, element.get("name")))
                             for p in element.findall("property") if p.get("stdset") != "0"]
        widgets[widget.name] = widget
    connections = [(c.findtext("sender"), c.findtext("signal"), c.findtext("receiver"), c.findtext("slot"))
                   for c in root.iter("connection")]
    return widgets, connections, text


def _dotted(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _import_aliases(tree: ast.Module, known: set) -> Tuple[Dict[str, str], List[Tuple[int, str, str]]]:
    """Local name -> dotted target, and (line, module, name) of ``from <known module> import name``."""
    aliases: Dict[str, str] = {}
    imported: List[Tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                local = alias.asname or alias.name
                full = f"{node.module}.{alias.name}"
                if full in known:
                    aliases[local] = full
                elif node.module in known:
                    aliases[local] = full
                    imported.append((node.lineno, node.module, alias.name))
    return aliases, imported


def _lookup_python(api: dict, module: str, parts: List[str]) -> Tuple[Optional[str], Optional[dict]]:
    """(error, callable params) for ``module.parts[0].parts[1]``."""
    mod = api["python_modules"][module]
    name = parts[0]
    if name in mod["functions"]:
        return None, mod["functions"][name]
    if name in mod["classes"]:
        cls = mod["classes"][name]
        if len(parts) == 1:
            return None, cls["methods"].get("__init__")
        member = parts[1]
        seen, current = set(), cls
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if member in current["methods"]:
                return None, current["methods"][member]
            if member in current["attributes"]:
                return None, None
            bases = [b.split(".")[-1] for b in current["bases"]]
            local = [b for b in bases if b in mod["classes"]]
            if len(local) < len(bases):
                return None, None  # inherits from outside the module: cannot tell
            current = mod["classes"][local[0]] if local else None
        return f"{module}.{name} has no member '{member}'", None
    if name in mod["constants"]:
        return None, None
    return f"{module} has no '{name}'", None


def _kwargs_error(params: Optional[dict], call: ast.Call, label: str) -> Optional[str]:
    if not params or params["varkw"]:
        return None
    unknown = [k.arg for k in call.keywords if k.arg and k.arg not in params["params"]]
    return f"{label}() has no parameter(s) {unknown}" if unknown else None


def python_uses(path: Path) -> Iterator[Use]:
    known = {module for api in APIS.values() for module in api["python_modules"]}
    tree = ast.parse(path.read_text())
    aliases, imported = _import_aliases(tree, known)
    for line, module, name in imported:
        yield Use(f"{rel(path)}:{line}", f"from {module} import {name}",
                  lambda api, m=module, n=name: _lookup_python(api, m, [n])[0])

    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Attribute, ast.Name)) or isinstance(parents.get(node), ast.Attribute):
            continue
        dotted = _dotted(node)
        if not dotted:
            continue
        head, _, tail = dotted.partition(".")
        if head not in aliases:
            continue
        full = aliases[head] + ("." + tail if tail else "")
        if full.startswith("slicer.vtkMRMLLayoutNode.SlicerLayout"):
            layout = full.split(".")[2]
            yield Use(f"{rel(path)}:{node.lineno}", full,
                      lambda api, n=layout: None if n in api["mrml_layouts"] else f"no layout {n}")
            continue
        module = max((m for m in known if full == m or full.startswith(m + ".")), key=len, default=None)
        if module is None or full == module:
            continue
        parts = full[len(module) + 1:].split(".")
        call = parents.get(node) if isinstance(parents.get(node), ast.Call) and parents[node].func is node else None

        def check(api: dict, m=module, p=parts, c=call, label=full) -> Optional[str]:
            if m not in api["python_modules"]:
                return f"no Python module {m}"
            error, params = _lookup_python(api, m, p)
            return error or (_kwargs_error(params, c, label) if c is not None else None)

        yield Use(f"{rel(path)}:{node.lineno}", full, check)


def _ui_widget_of(node: ast.AST) -> Optional[str]:
    """``self.ui.<widget>`` -> widget name."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui" \
            and isinstance(node.value.value, ast.Name) and node.value.value.id == "self":
        return node.attr
    return None


# Functions that return a Qt object of a known class.
FACTORIES = {"slicer.util.createProgressDialog": "QProgressDialog", "slicer.util.mainWindow": "qSlicerMainWindow"}
KNOWN_CLASSES = {name for api in APIS.values() for name in api["qt_classes"]}


def constructed_objects(tree: ast.Module) -> Dict[str, str]:
    """``target`` -> Qt class for ``target = qt.QProcess()``, ``ctk.ctkX()``, ``slicer.qMRMLX()`` or a factory."""
    objects: Dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        func = _dotted(node.value.func) or ""
        cls = FACTORIES.get(func)
        if cls is None and func.count(".") == 1 and func.split(".")[0] in ("qt", "ctk", "slicer"):
            cls = func.split(".")[1]
        if cls not in KNOWN_CLASSES:
            continue
        for target in node.targets:
            dotted = _dotted(target)
            if dotted:
                objects[dotted] = cls
    return objects


def _sender_class(node: ast.AST, widgets: Dict[str, UiWidget], objects: Dict[str, str]) -> Optional[str]:
    name = _ui_widget_of(node)
    if name is not None:
        return widgets[name].cls if name in widgets else None
    dotted = _dotted(node)
    if dotted == "slicer.app":
        return APP_CLASS
    return objects.get(dotted) if dotted else None


def qt_uses(path: Path) -> Iterator[Use]:
    ui = module_ui(path)
    widgets = parse_ui(ui)[0] if ui else {}
    tree = ast.parse(path.read_text())
    objects = constructed_objects(tree)
    for node in ast.walk(tree):
        where = f"{rel(path)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("connect", "disconnect"):
            target = node.func.value
            cls = _sender_class(target, widgets, objects)
            if cls and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                signal = node.args[0].value
                yield Use(where, f"{cls}.{signal}",
                          lambda api, c=cls, s=signal: None if has_signal(api, c, s) else f"{c} has no signal {s}")
            elif isinstance(target, ast.Attribute):
                cls = _sender_class(target.value, widgets, objects)
                if cls:
                    name = target.attr
                    yield Use(where, f"{cls}.{name}",
                              lambda api, c=cls, n=name: None if has_signal_name(api, c, n)
                              else f"{c} has no signal named {n}")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not isinstance(target, ast.Attribute):
                    continue
                cls = _sender_class(target.value, widgets, objects)
                if cls is None:
                    continue
                prop = target.attr

                def check(api: dict, c=cls, p=prop) -> Optional[str]:
                    writable = writable_property(api, c, p)
                    if writable is None:
                        return f"{c} has no property '{p}' (assigning it only sets a Python attribute)"
                    return None if writable else f"{c}.{p} is read-only"

                yield Use(where, f"{cls}.{prop} =", check)


def ui_self_references(path: Path) -> Iterator[Tuple[str, str]]:
    """(file:line, widget name) of every ``self.ui.<name>`` in a module file that has a .ui."""
    for node in ast.walk(ast.parse(path.read_text())):
        name = _ui_widget_of(node)
        if name is not None:
            yield f"{rel(path)}:{node.lineno}", name


def ui_uses(ui: Path) -> Iterator[Use]:
    widgets, connections, text = parse_ui(ui)
    for widget in widgets.values():
        where = f"{rel(ui)}:{_widget_line(text, widget.name)}"
        yield Use(where, widget.cls, lambda api, c=widget.cls: None if c in api["qt_classes"] else f"no class {c}")
        for prop, _line in widget.properties:
            yield Use(where, f"{widget.cls}.{prop}",
                      lambda api, c=widget.cls, p=prop: None if writable_property(api, c, p)
                      else f"{c} has no writable property '{p}'")
    for sender, signal, receiver, slot in connections:
        where = f"{rel(ui)}:{_line_of(text, '<sender>' + sender + '</sender>')}"
        s_cls, r_cls = widgets[sender].cls, widgets[receiver].cls
        yield Use(where, f"{s_cls}.{signal}",
                  lambda api, c=s_cls, s=signal: None if has_signal(api, c, s) else f"{c} has no signal {s}")
        yield Use(where, f"{r_cls}.{slot}",
                  lambda api, c=r_cls, s=slot: None if has_slot(api, c, s) else f"{c} has no slot {s}")


# ------------------------------------------------------------------------------------------------
# Parameter-node bindings
# ------------------------------------------------------------------------------------------------
@dataclass
class Field:
    name: str
    datatype: str
    annotations: Dict[str, list]
    line: int


def _datatype(node: ast.AST, enums: set) -> str:
    dotted = _dotted(node) or ""
    if dotted in ("bool", "int", "float", "str"):
        return dotted
    if dotted in ("pathlib.Path", "Path"):
        return "pathlib.Path"
    if dotted.split(".")[-1].startswith("vtkMRML"):
        return "node"
    if dotted in enums:
        return "enum"
    if isinstance(node, ast.Subscript) and _dotted(node.value) in ("Optional", "typing.Optional", "Union",
                                                                   "typing.Union"):
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kinds = {_datatype(e, enums) for e in inner if _dotted(e) != "None"}
        return kinds.pop() if len(kinds) == 1 else "union"
    return dotted or ast.dump(node)


def parameter_fields(py_file: Path) -> Dict[str, Field]:
    tree = ast.parse(py_file.read_text())
    enums = {n.name for n in tree.body if isinstance(n, ast.ClassDef)
             and any((_dotted(b) or "").endswith("Enum") for b in n.bases)}
    fields: Dict[str, Field] = {}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and any((_dotted(d) or "").endswith("parameterNodeWrapper")
                                                       for d in node.decorator_list)):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            annotation, extras = stmt.annotation, {}
            if isinstance(annotation, ast.Subscript) and (_dotted(annotation.value) or "").endswith("Annotated"):
                base, *rest = annotation.slice.elts
                annotation = base
                for extra in rest:
                    if isinstance(extra, ast.Call):
                        extras[(_dotted(extra.func) or "").split(".")[-1]] = [ast.literal_eval(a) for a in extra.args]
            fields[stmt.target.id] = Field(stmt.target.id, _datatype(annotation, enums), extras, stmt.lineno)
    return fields


def connector_for(api: dict, widget_cls: str, datatype: str) -> Optional[dict]:
    """First registered connector that accepts this widget class and datatype (Slicer's own order)."""
    for connector in api["gui_connectors"]:
        if (widget_cls in connector["widgets"] or "*" in connector["widgets"]) and datatype in connector["datatypes"]:
            return connector
    return None


INT_WIDGETS = ("QSpinBox", "QSlider")  # Qt int ranges: the connector uses the 32-bit limits for "unbounded"


def annotated_range(item: Field, widget_cls: str) -> Tuple[float, float]:
    """The widget range the connector writes for this field's annotations."""
    if "WithinRange" in item.annotations:
        low, high = item.annotations["WithinRange"]
        return float(low), float(high)
    unbounded = (-(2.0**31), 2.0**31 - 1) if widget_cls in INT_WIDGETS else (-math.inf, math.inf)
    low = item.annotations.get("Minimum", [unbounded[0]])[0]
    high = item.annotations.get("Maximum", [unbounded[1]])[0]
    return float(low), float(high)


@dataclass
class Binding:
    where: str
    widget: UiWidget
    item: Field


def bindings() -> Iterator[Binding]:
    for py_file in sorted(EXTENSION.glob("*/*.py")):
        ui = module_ui(py_file)
        if ui is None:
            continue
        fields = parameter_fields(py_file)
        widgets, _connections, text = parse_ui(ui)
        for widget in widgets.values():
            if widget.parameter and widget.parameter in fields:
                where = f"{rel(ui)}:{_widget_line(text, widget.name)}"
                yield Binding(where, widget, fields[widget.parameter])


def binding_problem(api: dict, binding: Binding) -> Optional[str]:
    widget, item = binding.widget, binding.item
    connector = connector_for(api, widget.cls, item.datatype)
    if connector is None:
        return (f"no parameterNodeWrapper GUI connector binds a {widget.cls} to a '{item.datatype}' field "
                f"('{item.name}')")
    if connector["requires_choice"] and "Choice" not in item.annotations:
        return f"{connector['name']} needs Annotated[..., Choice([...])] on '{item.name}'"
    bounded = "WithinRange" in item.annotations or {"Minimum", "Maximum"} <= set(item.annotations)
    if widget.cls in connector["bounded_required_widgets"] and not bounded:
        return f"{connector['name']} needs a WithinRange annotation on '{item.name}' for a {widget.cls}"
    return None


def range_problem(api: dict, binding: Binding) -> Optional[str]:
    widget, item = binding.widget, binding.item
    connector = connector_for(api, widget.cls, item.datatype)
    if connector is None or not connector["resets_range_without_annotation"]:
        return None
    if widget.minimum is None and widget.maximum is None:
        return None
    low, high = annotated_range(item, widget.cls)
    ui_low = widget.minimum if widget.minimum is not None else low
    ui_high = widget.maximum if widget.maximum is not None else high
    if (low, high) == (ui_low, ui_high):
        return None
    return (f"{widget.name} ({widget.cls}) has the range [{ui_low:.10g}, {ui_high:.10g}] in the .ui, but "
            f"{connector['name']} sets it to [{low:.10g}, {high:.10g}] when binding '{item.name}'; declare "
            f"'{item.name}: Annotated[{item.datatype}, WithinRange({ui_low:.10g}, {ui_high:.10g})]'")


# ------------------------------------------------------------------------------------------------
def missing_in(uses: List[Use]) -> List[str]:
    """One line per use whose name is missing in a release: where, name, which release(s) lack it."""
    problems = []
    for use in uses:
        reasons = {tag: use.check(APIS[tag]) for tag in TAGS}
        lacking = [tag for tag, reason in reasons.items() if reason]
        if lacking:
            detail = "; ".join(f"{tag}: {reasons[tag]}" for tag in lacking)
            problems.append(f"{use.where}: '{use.what}' not in Slicer {' and '.join(lacking)} ({detail})")
    return problems


def _report(problems: List[str]) -> str:
    return "\n".join(["Slicer API names used by the modules are missing in a supported Slicer release:"] + problems)


def test_inventories_record_their_slicer_tag_and_sources():
    for tag, api in APIS.items():
        assert api["slicer_tag"] == tag
        assert re.fullmatch(r"[0-9a-f]{40}", api["slicer_commit"]) and re.fullmatch(r"[0-9a-f]{40}", api["ctk_commit"])
        assert api["qt_version"].startswith("5.15")
        assert api["sources"]["python_modules"]["slicer.util"] == "Base/Python/slicer/util.py"
        # the lists are not empty: the extraction found what the checks below rely on
        assert {"loadUI", "tryWithErrorDisplay", "createProgressDialog"} <= set(
            api["python_modules"]["slicer.util"]["functions"])
        assert "clicked(bool)" in api["qt_classes"]["QAbstractButton"]["signals"]
        assert "currentNodeChanged(vtkMRMLNode*)" in api["qt_classes"]["qMRMLNodeComboBox"]["signals"]
        assert any("qMRMLNodeComboBox" in c["widgets"] for c in api["gui_connectors"])


def test_python_api_names_exist_in_both_releases():
    uses = [use for path in scanned_files() for use in python_uses(path)]
    assert any(use.what == "slicer.util.loadUI" for use in uses), "the scan found no slicer.util use"
    problems = missing_in(uses)
    assert not problems, _report(problems)


def test_ui_widget_classes_properties_and_connections_exist_in_both_releases():
    uis = sorted(EXTENSION.glob("*/Resources/UI/*.ui"))
    assert uis
    problems = missing_in([use for ui in uis for use in ui_uses(ui)])
    assert not problems, _report(problems)


def test_signals_connected_and_properties_set_in_the_code_exist_in_both_releases():
    uses = [use for path in scanned_files() for use in qt_uses(path)]
    assert any(use.what == "QPushButton.clicked(bool)" for use in uses), "the scan found no signal connection"
    problems = missing_in(uses)
    assert not problems, _report(problems)


def test_code_uses_only_widgets_of_its_ui():
    problems = []
    for path in scanned_files():
        ui = module_ui(path)
        if ui is None:
            continue
        names = set(parse_ui(ui)[0])
        problems += [f"{where}: self.ui.{name} is not a widget of {rel(ui)}"
                     for where, name in ui_self_references(path) if name not in names]
    assert not problems, "\n".join(problems)


def test_parameter_bindings_have_a_gui_connector_in_both_releases():
    found = list(bindings())
    assert len(found) >= 10, "the scan found too few SlicerParameterName bindings"
    problems = []
    for binding in found:
        for tag in TAGS:
            problem = binding_problem(APIS[tag], binding)
            if problem:
                problems.append(f"{binding.where}: Slicer {tag}: {problem}")
    assert not problems, "\n".join(problems)


def test_bound_spin_boxes_keep_the_range_of_the_ui():
    problems = []
    for binding in bindings():
        for tag in TAGS:
            problem = range_problem(APIS[tag], binding)
            if problem:
                problems.append(f"{binding.where}: Slicer {tag}: {problem}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------
# The checks catch what they are meant to catch (so a pass above is not an empty scan)
# ------------------------------------------------------------------------------------------------
def test_checks_reject_wrong_names(tmp_path):
    module = tmp_path / "Wrong"
    (module / "Resources" / "UI").mkdir(parents=True)
    (module / "Resources" / "UI" / "Wrong.ui").write_text(
        '<ui version="4.0"><widget class="qMRMLWidget" name="Wrong"><layout class="QVBoxLayout">'
        '<item><widget class="QPushButton" name="runButton"><property name="txet"><string>x</string></property>'
        '</widget></item>'
        '<item><widget class="QSpinBox" name="countSpinBox"><property name="minimum"><number>1</number></property>'
        '<property name="maximum"><number>9</number></property>'
        '<property name="SlicerParameterName" stdset="0"><string>count</string></property></widget></item>'
        '<item><widget class="QLineEdit" name="ratioEdit">'
        '<property name="SlicerParameterName" stdset="0"><string>ratio</string></property></widget></item>'
        '</layout></widget><connections><connection><sender>Wrong</sender><signal>sceneChanged(vtkMRMLScene*)'
        '</signal><receiver>runButton</receiver><slot>click()</slot></connection></connections></ui>')
    source = module / "Wrong.py"
    source.write_text(
        "import slicer\nfrom slicer.util import notAFunction\nfrom slicer.parameterNodeWrapper import "
        "parameterNodeWrapper\n\n@parameterNodeWrapper\nclass WrongParameterNode:\n    count: int = 1\n"
        "    ratio: float = 0.5\n\nclass W:\n    def setup(self):\n"
        "        slicer.util.setSliceViewerLayers(background=None, opacity=0.5)\n"
        "        self.ui.runButton.connect('clickd(bool)', self.setup)\n"
        "        self.ui.runButton.enable = False\n"
        "        timer = qt.QTimer()\n"
        "        timer.connect('timeout(int)', self.setup)\n"
        "        self.process = qt.QProcess()\n"
        "        self.process.readyReadStandardOut.connect(self.setup)\n")
    python_problems = missing_in(list(python_uses(source)))
    ui_problems = missing_in(list(ui_uses(module / "Resources" / "UI" / "Wrong.ui")))
    qt_problems = missing_in(list(qt_uses(source)))
    fields = parameter_fields(source)
    widgets = parse_ui(module / "Resources" / "UI" / "Wrong.ui")[0]
    count = Binding("Wrong.ui", widgets["countSpinBox"], fields["count"])
    ratio = Binding("Wrong.ui", widgets["ratioEdit"], fields["ratio"])
    assert any("notAFunction" in p for p in python_problems)
    assert any("no parameter(s) ['opacity']" in p for p in python_problems)
    assert any("txet" in p for p in ui_problems)
    assert any("sceneChanged" in p for p in ui_problems)
    assert any("clickd(bool)" in p for p in qt_problems)
    assert any("'enable'" in p for p in qt_problems)
    assert any("QTimer has no signal timeout(int)" in p for p in qt_problems)
    assert any("QProcess has no signal named readyReadStandardOut" in p for p in qt_problems)
    for tag in TAGS:
        assert "WithinRange(1, 9)" in range_problem(APIS[tag], count)
        assert "no parameterNodeWrapper GUI connector" in binding_problem(APIS[tag], ratio)


def test_int_field_on_a_double_spin_box_is_caught_for_slicer_5_8_only():
    widget = UiWidget("countSpinBox", "ctkDoubleSpinBox", "count", None, None)
    binding = Binding("x.ui", widget, Field("count", "int", {}, 1))
    assert "no parameterNodeWrapper GUI connector" in binding_problem(APIS["v5.8.1"], binding)
    assert binding_problem(APIS["v5.10.0"], binding) is None


@pytest.mark.parametrize("signature, normalized", [
    ("currentNodeChanged(vtkMRMLNode *)", "currentNodeChanged(vtkMRMLNode*)"),
    ("textChanged(const QString &)", "textChanged(QString)"),
    ("clicked( bool )", "clicked(bool)"),
])
def test_signal_signatures_are_normalized_like_qt(signature, normalized):
    assert normalize_signature(signature) == normalized
