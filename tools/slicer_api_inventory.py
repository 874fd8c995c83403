"""Record the Slicer API names the START-NET modules may use, for one Slicer release.

Reads a Slicer source tree (a git directory plus a tag, or a checked-out folder), the CTK
revision that release builds with, and the Qt 5 widget headers, and writes one JSON file of
*names* (no code): ``Testing/slicer_api/slicer-<tag>.json``. ``Testing/unit/test_slicer_api_names.py``
checks every Slicer name the modules use against the files for each supported release.

What is recorded:

* ``python_modules``: public functions (with their parameter names), classes (with methods and
  class attributes) and constants of ``slicer.util``, ``slicer.ScriptedLoadableModule``,
  ``slicer.i18n``, ``DICOMLib.DICOMUtils``, ``SampleData`` and the public names of the
  ``slicer.parameterNodeWrapper`` package.
* ``gui_connectors``: each ``@parameterNodeGuiConnector`` class (core, SubjectHierarchy and
  Markups), in registration order, with the exact widget classes and datatypes its
  ``canRepresent`` accepts, whether it needs a ``Choice`` annotation, for which widgets it needs a
  bounded range, and whether it overwrites the widget's minimum/maximum when the field has no
  range annotation.
* ``qt_classes``: every QObject class (``Q_OBJECT``) of Slicer's MRML/QTGUI/QTCore/QTApp/module widget
  libraries, of CTK's widget/DICOM libraries and of Qt's QtWidgets (plus ``QObject``), with base
  classes, normalized signal and slot signatures, ``Q_INVOKABLE`` names and properties.
* ``mrml_layouts``: the ``vtkMRMLLayoutNode`` ``SlicerLayout*`` enum names.

Usage (a bare git mirror and tags)::

    python tools/slicer_api_inventory.py --slicer /path/Slicer.git --tag v5.8.1 \
        --ctk /path/CTK.git --qt-include /usr/include/x86_64-linux-gnu/qt5 \
        --out Testing/slicer_api/slicer-v5.8.1.json

``--ctk-commit`` defaults to the CTK ``GIT_TAG`` pinned in the release's
``SuperBuild/External_CTK.cmake``. Without ``--tag`` the paths are read as checked-out folders.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

SCHEMA_VERSION = 1

PYTHON_MODULES = {
    "slicer.util": "Base/Python/slicer/util.py",
    "slicer.ScriptedLoadableModule": "Base/Python/slicer/ScriptedLoadableModule.py",
    "slicer.i18n": "Base/Python/slicer/i18n.py",
    "DICOMLib.DICOMUtils": "Modules/Scripted/DICOMLib/DICOMUtils.py",
    "SampleData": "Modules/Scripted/SampleData/SampleData.py",
}
PARAMETER_NODE_WRAPPER_DIR = "Base/Python/slicer/parameterNodeWrapper"
# Registration order: the core connectors are imported with slicer.parameterNodeWrapper, the
# module ones when their module library is imported (Slicer's module loading order).
GUI_CONNECTOR_FILES = [
    "Base/Python/slicer/parameterNodeWrapper/guiConnectors.py",
    "Modules/Loadable/SubjectHierarchy/SubjectHierarchyLib/parameterNodeWrapper/guiConnectors.py",
    "Modules/Loadable/Markups/MarkupsLib/parameterNodeWrapper/guiConnectors.py",
]
SLICER_HEADER_DIRS = ["Libs/MRML/Widgets", "Base/QTGUI", "Base/QTCore", "Base/QTApp"]
SLICER_MODULE_WIDGET_DIR = re.compile(r"^Modules/Loadable/[^/]+/Widgets/[^/]+\.h$")
CTK_HEADER_DIRS = ["Libs/Widgets", "Libs/Visualization/VTK/Widgets", "Libs/DICOM/Widgets", "Libs/DICOM/Core",
                   "Libs/Core"]
QT_HEADER_FILES = ["QtCore/qobject.h", "QtCore/qcoreapplication.h", "QtGui/qguiapplication.h", "QtCore/qiodevice.h",
                   "QtCore/qprocess.h", "QtCore/qtimer.h", "QtCore/qthread.h"]
QT_HEADER_DIRS = ["QtWidgets"]
LAYOUT_HEADER = "Libs/MRML/Core/vtkMRMLLayoutNode.h"
CTK_CMAKE = "SuperBuild/External_CTK.cmake"


# ----------------------------------------------------------------------------------------------
# Source access: git objects at a revision, or a folder
# ----------------------------------------------------------------------------------------------
class SourceTree:
    """Files of one revision of a repository (``git cat-file``) or of a checked-out folder."""

    def __init__(self, path: Path, revision: Optional[str] = None) -> None:
        self.path = Path(path)
        self.revision = revision
        self.commit = None
        if revision is not None:
            self.commit = self._git("rev-parse", f"{revision}^{{commit}}").strip()
            listing = self._git("ls-tree", "-r", "--name-only", self.commit)
            self._files = set(listing.splitlines())

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "--git-dir", str(self._git_dir()), *args], check=True,
                              capture_output=True, text=True).stdout

    def _git_dir(self) -> Path:
        dotgit = self.path / ".git"
        return dotgit if dotgit.exists() else self.path

    def files(self, folder: str) -> List[str]:
        prefix = folder.rstrip("/") + "/"
        if self.revision is not None:
            return sorted(f for f in self._files if f.startswith(prefix))
        root = self.path / folder
        return sorted(str(p.relative_to(self.path)) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def all_files(self) -> List[str]:
        if self.revision is not None:
            return sorted(self._files)
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file())

    def exists(self, name: str) -> bool:
        if self.revision is not None:
            return name in self._files
        return (self.path / name).is_file()

    def read(self, name: str) -> str:
        if self.revision is not None:
            return self._git("show", f"{self.commit}:{name}")
        return (self.path / name).read_text(encoding="utf-8", errors="replace")

    def read_many(self, names: List[str]) -> Dict[str, str]:
        if self.revision is None:
            return {n: self.read(n) for n in names}
        request = "".join(f"{self.commit}:{n}\n" for n in names).encode()
        out = subprocess.run(["git", "--git-dir", str(self._git_dir()), "cat-file", "--batch"], input=request,
                             check=True, capture_output=True).stdout
        result: Dict[str, str] = {}
        position = 0
        for name in names:
            header_end = out.index(b"\n", position)
            header = out[position:header_end].split()
            size = int(header[2])
            body = out[header_end + 1:header_end + 1 + size]
            result[name] = body.decode("utf-8", errors="replace")
            position = header_end + 1 + size + 1
        return result


# ----------------------------------------------------------------------------------------------
# Python modules
# ----------------------------------------------------------------------------------------------
def _params(function: ast.FunctionDef, drop_self: bool) -> dict:
    args = [a.arg for a in function.args.posonlyargs + function.args.args]
    if drop_self and args and args[0] in ("self", "cls"):
        args = args[1:]
    is_static = any(getattr(d, "id", None) == "staticmethod" for d in function.decorator_list)
    if drop_self and is_static:
        args = [a.arg for a in function.args.posonlyargs + function.args.args]
    return {
        "params": args + [a.arg for a in function.args.kwonlyargs],
        "varargs": function.args.vararg is not None,
        "varkw": function.args.kwarg is not None,
    }


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def python_module_api(text: str) -> dict:
    """Public top-level functions, classes and constants of a Python module."""
    tree = ast.parse(text)
    functions: Dict[str, dict] = {}
    classes: Dict[str, dict] = {}
    constants: List[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            functions[node.name] = _params(node, drop_self=False)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            methods: Dict[str, dict] = {}
            attributes: List[str] = []
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    methods[item.name] = _params(item, drop_self=True)
                elif isinstance(item, ast.Assign):
                    attributes += [t.id for t in item.targets if isinstance(t, ast.Name)]
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    attributes.append(item.target.id)
            classes[node.name] = {"bases": [_dotted(b) for b in node.bases], "methods": methods,
                                  "attributes": sorted(set(attributes))}
        elif isinstance(node, ast.Assign):
            constants += [t.id for t in node.targets if isinstance(t, ast.Name) and not t.id.startswith("_")]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and not node.target.id.startswith("_"):
            constants.append(node.target.id)
    return {"functions": functions, "classes": classes, "constants": sorted(set(constants))}


def _literal_all(tree: ast.Module) -> Optional[List[str]]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                return [str(v) for v in ast.literal_eval(node.value)]
            except ValueError:
                return None
    return None


def package_api(tree: SourceTree, folder: str) -> dict:
    """Names a package exports: its ``__init__`` star-imports (``__all__``) and explicit imports."""
    files = [f for f in tree.files(folder) if f.endswith(".py") and f.count("/") == folder.count("/") + 1]
    texts = tree.read_many(files)
    init = ast.parse(texts[f"{folder}/__init__.py"])
    exported: Dict[str, str] = {}
    for node in init.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            source = f"{folder}/{node.module}.py"
            if node.names[0].name == "*" and source in texts:
                names = _literal_all(ast.parse(texts[source]))
                if names is None:
                    names = [n for n in python_module_api(texts[source])["functions"]]
                for name in names:
                    exported.setdefault(name, source)
            else:
                for alias in node.names:
                    exported.setdefault(alias.asname or alias.name, source)
    merged = {"functions": {}, "classes": {}, "constants": []}
    for name, source in sorted(exported.items()):
        api = python_module_api(texts[source]) if source in texts else {"functions": {}, "classes": {}}
        if name in api["functions"]:
            merged["functions"][name] = api["functions"][name]
        elif name in api["classes"]:
            merged["classes"][name] = api["classes"][name]
        else:
            merged["constants"].append(name)
    return merged


# ----------------------------------------------------------------------------------------------
# parameterNodeWrapper GUI connectors
# ----------------------------------------------------------------------------------------------
def _short(name: str) -> str:
    """``qt.QCheckBox`` -> ``QCheckBox``; ``pathlib.Path`` stays; ``enum.Enum`` stays."""
    for prefix in ("qt.", "ctk.", "slicer."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _names_in(node: ast.AST) -> List[str]:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [_short(_dotted(e)) for e in node.elts]
    return [_short(_dotted(node))]


def _is_call_to(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] == name


def _can_represent(function: ast.FunctionDef) -> Tuple[List[str], List[str]]:
    widgets: List[str] = []
    datatypes: List[str] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, op, right = node.left, node.ops[0], node.comparators[0]
            if _is_call_to(left, "type") and isinstance(op, (ast.Eq, ast.In)):
                widgets += _names_in(right)
            elif _is_call_to(left, "unannotatedType") and isinstance(op, (ast.Eq, ast.In)):
                datatypes += _names_in(right)
        elif _is_call_to(node, "isNodeOrUnionOfNodes"):
            datatypes.append("node")
        elif _is_call_to(node, "issubclass") and _dotted(node.args[1]) == "enum.Enum":
            datatypes.append("enum")
        elif _is_call_to(node, "isParameterPack"):
            datatypes.append("parameterPack")
    return sorted(set(widgets)) or ["*"], sorted(set(datatypes))


def _references(node: ast.AST, names: Tuple[str, ...]) -> List[str]:
    found = set()
    for child in ast.walk(node):
        dotted = _dotted(child) if isinstance(child, (ast.Attribute, ast.Name)) else ""
        last = dotted.split(".")[-1]
        if last in names:
            found.add(last)
    return sorted(found)


def _resets_range(node: ast.AST) -> bool:
    """The connector writes an unbounded minimum/maximum when the field has no range annotation."""
    for child in ast.walk(node):
        if _is_call_to(child, "float") and child.args and isinstance(child.args[0], ast.Constant) \
                and str(child.args[0].value) in ("-inf", "inf"):
            return True
        if isinstance(child, ast.BinOp) and isinstance(child.op, ast.Pow) \
                and isinstance(child.left, ast.Constant) and child.left.value == 2:
            return True
    return False


def _bounded_required_widgets(node: ast.AST) -> List[str]:
    """Widgets for which an unbounded field raises (``if <widget test> and not isBounded: raise``)."""
    widgets = set()
    for child in ast.walk(node):
        if not (isinstance(child, ast.If) and any(isinstance(s, ast.Raise) for s in child.body)):
            continue
        test = child.test
        if not (isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)):
            continue
        if not any(isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.Not) and _dotted(v.operand) == "isBounded"
                   for v in test.values):
            continue
        for value in test.values:
            if _is_call_to(value, "isinstance"):
                widgets.update(_names_in(value.args[1]))
            elif isinstance(value, ast.Compare) and _is_call_to(value.left, "type"):
                widgets.update(_names_in(value.comparators[0]))
    return sorted(widgets)


def _raise_messages(node: ast.AST) -> List[str]:
    messages = []
    for child in ast.walk(node):
        if isinstance(child, ast.Raise) and isinstance(child.exc, ast.Call) and child.exc.args:
            argument = child.exc.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                messages.append(argument.value)
            elif isinstance(argument, ast.BinOp):
                parts = [n.value for n in ast.walk(argument) if isinstance(n, ast.Constant)]
                messages.append("".join(p for p in parts if isinstance(p, str)))
    return messages


ANNOTATION_NAMES = ("WithinRange", "Minimum", "Maximum", "Choice", "Decimals", "SingleStep", "RangeBounds", "Default")


def gui_connectors(text: str, path: str) -> List[dict]:
    result = []
    for node in ast.parse(text).body:
        if not isinstance(node, ast.ClassDef):
            continue
        if not any(_dotted(d).split(".")[-1] == "parameterNodeGuiConnector" for d in node.decorator_list):
            continue
        methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
        widgets, datatypes = _can_represent(methods["canRepresent"])
        create = methods.get("create")
        init = methods.get("__init__")
        result.append({
            "name": node.name,
            "file": path,
            "widgets": widgets,
            "datatypes": datatypes,
            "annotations_read": _references(node, ANNOTATION_NAMES),
            "requires_choice": bool(create is not None and "Choice" in _references(create, ("Choice",))),
            "bounded_required_widgets": _bounded_required_widgets(init) if init is not None else [],
            "resets_range_without_annotation": bool(init is not None and _resets_range(init)),
            "errors": _raise_messages(node),
        })
    return result


# ----------------------------------------------------------------------------------------------
# C++ headers: QObject classes, signals, slots, properties
# ----------------------------------------------------------------------------------------------
STANDALONE_MACROS = (
    "Q_PROPERTY", "Q_PRIVATE_PROPERTY", "Q_ENUM", "Q_ENUMS", "Q_FLAG", "Q_FLAGS", "Q_DECLARE_PRIVATE",
    "Q_DECLARE_PRIVATE_D", "Q_DECLARE_PUBLIC", "Q_DISABLE_COPY", "Q_DISABLE_COPY_MOVE", "Q_PRIVATE_SLOT",
    "Q_CLASSINFO", "Q_INTERFACES", "Q_DECLARE_FLAGS", "Q_REVISION", "Q_DECL_DEPRECATED_X", "QT_DEPRECATED_X",
    "QT_DEPRECATED_VERSION_X", "QT_DEPRECATED_VERSION_X_5_13", "QT_DEPRECATED_VERSION_X_5_14",
    "QT_DEPRECATED_VERSION_X_5_15", "Q_MOC_INCLUDE", "QVTK_OBJECT_ADD_CONNECTION",
)
WORD_MACROS = (
    "Q_OBJECT", "Q_GADGET", "Q_INVOKABLE", "Q_SCRIPTABLE", "Q_DECL_OVERRIDE", "Q_DECL_FINAL", "Q_REQUIRED_RESULT",
    "Q_DECL_CONSTEXPR", "Q_DECL_NOTHROW", "Q_DECL_NOEXCEPT", "QT_DEPRECATED", "Q_DECL_DEPRECATED", "QVTK_OBJECT",
    "Q_SLOT", "Q_SIGNAL", "Q_DECL_CONST_FUNCTION", "Q_ALWAYS_INLINE", "Q_DECL_RELAXED_CONSTEXPR",
    "QT_DEPRECATED_VERSION_5_15", "QT_DEPRECATED_VERSION_5_14", "QT_DEPRECATED_VERSION_5_13",
)
UNSIGNED = {"unsigned int": "uint", "unsigned": "uint", "unsigned long": "ulong", "unsigned short": "ushort",
            "unsigned char": "uchar"}


def _strip_comments_and_preprocessor(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    lines = []
    continued = False
    for line in text.splitlines():
        is_directive = continued or line.lstrip().startswith("#")
        continued = is_directive and line.rstrip().endswith("\\")
        lines.append("" if is_directive else line)
    return "\n".join(lines)


def _matching(text: str, start: int, open_char: str, close_char: str) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == open_char:
            depth += 1
        elif text[index] == close_char:
            depth -= 1
            if depth == 0:
                return index
    return len(text) - 1


def _split_top_level(text: str, separator: str = ",") -> List[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char in "<([{":
            depth += 1
        elif char in ">)]}":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


QUALIFIERS = {"const", "unsigned", "signed", "volatile", "struct", "enum", "class", "typename"}
BUILTIN_TYPES = {"long", "short", "int", "char", "double", "float", "bool"}


def _drop_parameter_name(text: str) -> str:
    """``const QString &name`` -> ``const QString &``; ``unsigned int`` and ``long long`` are left alone."""
    match = re.match(r"^(.*[\s*&>])([A-Za-z_]\w*)(\s*\[\s*\])?$", text)
    if not match:
        return text
    prefix, name = match.group(1).strip(), match.group(2)
    words = re.findall(r"[A-Za-z_]\w*", prefix)
    if not words or all(w in QUALIFIERS for w in words):
        return text
    builtin_only = all(w in QUALIFIERS | BUILTIN_TYPES for w in words)
    if name in BUILTIN_TYPES and builtin_only and not prefix.endswith(("*", "&")):
        return text
    return prefix


def normalize_type(declaration: str) -> str:
    """Qt-style normalized parameter type of one declared parameter (name and default removed)."""
    text = re.sub(r"\s+", " ", _split_top_level(declaration, "=")[0]).strip()
    text = _drop_parameter_name(text)
    text = re.sub(r"\s*([*&<>,])\s*", r"\1", text)
    text = re.sub(r"\b(struct|enum|class|typename) ", "", text)
    if text.startswith("const ") and text.endswith("&") and not text.endswith("*&"):
        text = text[len("const "):-1]
    elif text.startswith("const ") and "*" not in text and "&" not in text:
        text = text[len("const "):]
    return UNSIGNED.get(text, text)


def normalize_signature(signature: str) -> str:
    """``currentNodeChanged(vtkMRMLNode * node)`` -> ``currentNodeChanged(vtkMRMLNode*)``."""
    name, _, rest = signature.partition("(")
    inner = rest[:rest.rfind(")")] if ")" in rest else rest
    params = [normalize_type(p) for p in _split_top_level(inner) if p.strip() and p.strip() != "void"]
    return f"{name.strip()}({','.join(params)})"


def _function_signatures(statement: str) -> Tuple[Optional[str], List[str]]:
    """Name and the normalized signatures (one per trailing default argument) of a declaration."""
    match = re.search(r"([A-Za-z_~]\w*)\s*\(", statement)
    if not match or match.group(1) in ("operator",):
        return None, []
    name = match.group(1)
    open_index = match.end() - 1
    close_index = _matching(statement, open_index, "(", ")")
    params = [p for p in _split_top_level(statement[open_index + 1:close_index]) if p.strip() and p.strip() != "void"]
    params = [p for p in params if normalize_type(p) != "QPrivateSignal"]
    types = [normalize_type(p) for p in params]
    signatures = [f"{name}({','.join(types)})"]
    for index in range(len(params) - 1, -1, -1):
        if len(_split_top_level(params[index], "=")) < 2:
            break
        signatures.append(f"{name}({','.join(types[:index])})")
    return name, signatures


def _class_bodies(text: str) -> Iterator[Tuple[str, List[str], str]]:
    for match in re.finditer(r"\bclass\s+([A-Za-z_][\w\s]*?)\s*(:[^{;()]*)?\{", text):
        words = [w for w in match.group(1).split() if w != "final"]
        if not words:
            continue
        prefix = text[max(0, match.start() - 200):match.start()]
        if re.search(r"template\s*<[^;{}]*>\s*$", prefix):
            continue
        name = words[-1]
        bases = []
        if match.group(2):
            for base in _split_top_level(match.group(2)[1:]):
                base = re.sub(r"\b(public|protected|private|virtual)\b", "", base).strip()
                if base:
                    bases.append(base)
        open_index = match.end() - 1
        close_index = _matching(text, open_index, "{", "}")
        yield name, bases, text[open_index + 1:close_index]


def _remove_macros(body: str, properties: List[Tuple[str, bool]]) -> str:
    for macro in STANDALONE_MACROS:
        while True:
            match = re.search(rf"\b{macro}\s*\(", body)
            if not match:
                break
            close_index = _matching(body, match.end() - 1, "(", ")")
            if macro == "Q_PROPERTY":
                words = body[match.end():close_index].split()
                for keyword in ("READ", "MEMBER"):
                    if keyword in words and words.index(keyword) > 0:
                        name = words[words.index(keyword) - 1].lstrip("*&")
                        properties.append((name, "WRITE" in words or "MEMBER" in words))
                        break
            body = body[:match.start()] + " " + body[close_index + 1:]
    return re.sub(r"\b(" + "|".join(WORD_MACROS) + r")\b", " ", body)


ACCESS = re.compile(r"^\s*(public|protected|private|Q_SIGNALS|signals|Q_SLOTS|slots)"
                    r"(\s+(?:Q_SLOTS|slots))?\s*:(?!:)")


def _statements(body: str) -> Iterator[Tuple[str, str]]:
    """(section, statement) pairs at the top level of a class body."""
    section = "private"
    depth = 0
    current: List[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if depth == 0 and not "".join(current).strip():
            match = ACCESS.match(body[index:])
            if match:
                label, slots = match.group(1), match.group(2)
                if label in ("Q_SIGNALS", "signals"):
                    section = "signals"
                elif label in ("Q_SLOTS", "slots"):
                    section = "public slots"
                else:
                    section = f"{label} slots" if slots else label
                index += match.end()
                current = []
                continue
        if char == "{":
            if depth == 0:
                statement = "".join(current).strip()
                close_index = _matching(body, index, "{", "}")
                if statement:
                    yield section, statement
                current = []
                index = close_index + 1
                if index < len(body) and body[index] == ";":
                    index += 1
                continue
            depth += 1
        elif char in "([":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == ";" and depth == 0:
            statement = "".join(current).strip()
            if statement:
                yield section, statement
            current = []
        else:
            current.append(char)
        index += 1


def qobject_classes(text: str, source: str, header: str) -> Dict[str, dict]:
    classes: Dict[str, dict] = {}
    clean = _strip_comments_and_preprocessor(text)
    for name, bases, body in _class_bodies(clean):
        if not re.search(r"\bQ_OBJECT\b", body):
            continue
        properties: List[Tuple[str, bool]] = []
        invokables = set(m.group(1) for m in re.finditer(r"\bQ_INVOKABLE\b[^;{(]*?\b(\w+)\s*\(", body))
        stripped = _remove_macros(body, properties)
        signals: List[str] = []
        slots: List[str] = []
        for section, statement in _statements(stripped):
            if section in ("signals", "public slots", "protected slots"):
                if "(" not in statement or statement.startswith(("friend", "typedef", "using", "enum", "class",
                                                                  "struct")):
                    continue
                function_name, signatures = _function_signatures(statement)
                if function_name is None or function_name == name or function_name.startswith("~"):
                    continue
                (signals if section == "signals" else slots).extend(signatures)
        classes[name] = {
            "source": source,
            "header": header,
            "bases": bases,
            "signals": sorted(set(signals)),
            "slots": sorted(set(slots)),
            "invokables": sorted(invokables),
            "properties": sorted(p for p, _ in set(properties)),
            "readonly_properties": sorted(p for p, writable in set(properties) if not writable),
        }
    return classes


def slicer_headers(tree: SourceTree) -> List[str]:
    headers = []
    for folder in SLICER_HEADER_DIRS:
        headers += [f for f in tree.files(folder) if f.endswith(".h") and "/Testing/" not in f
                    and f.count("/") == folder.count("/") + 1]
    headers += [f for f in tree.files("Modules/Loadable") if SLICER_MODULE_WIDGET_DIR.match(f)]
    return sorted(set(headers))


def ctk_headers(tree: SourceTree) -> List[str]:
    headers = []
    for folder in CTK_HEADER_DIRS:
        headers += [f for f in tree.files(folder) if f.endswith(".h") and not f.endswith("_p.h")
                    and f.count("/") == folder.count("/") + 1]
    return sorted(set(headers))


def qt_classes(include_dir: Path) -> Tuple[Dict[str, dict], str]:
    classes: Dict[str, dict] = {}
    files = [include_dir / f for f in QT_HEADER_FILES]
    for folder in QT_HEADER_DIRS:
        files += sorted(p for p in (include_dir / folder).glob("q*.h") if not p.name.endswith("_p.h"))
    for path in files:
        relative = str(path.relative_to(include_dir))
        classes.update(qobject_classes(path.read_text(encoding="utf-8", errors="replace"), "qt", relative))
    version_match = re.search(r'QT_VERSION_STR\s+"([^"]+)"', (include_dir / "QtCore/qconfig.h").read_text()) \
        if (include_dir / "QtCore/qconfig.h").exists() else None
    if version_match is None:
        version_match = re.search(r'QT_VERSION_STR\s+"([^"]+)"', (include_dir / "QtCore/qtcore-config.h").read_text())
    return classes, version_match.group(1)


def ctk_commit_for(slicer: SourceTree) -> str:
    text = slicer.read(CTK_CMAKE)
    match = re.search(r"Slicer_\$\{proj\}_GIT_TAG\s*\n\s*\"([0-9a-f]{40})\"", text)
    if not match:
        raise SystemExit(f"no CTK GIT_TAG found in {CTK_CMAKE}")
    return match.group(1)


def mrml_layouts(text: str) -> List[str]:
    return sorted(set(re.findall(r"\b(SlicerLayout\w+)\s*=", text)))


# ----------------------------------------------------------------------------------------------
def build_inventory(slicer: SourceTree, ctk: SourceTree, qt_include: Path, tag: str) -> dict:
    python_modules = {}
    for module, path in PYTHON_MODULES.items():
        if slicer.exists(path):
            python_modules[module] = dict(python_module_api(slicer.read(path)), file=path)
    python_modules["slicer.parameterNodeWrapper"] = dict(package_api(slicer, PARAMETER_NODE_WRAPPER_DIR),
                                                         file=PARAMETER_NODE_WRAPPER_DIR)
    connectors = []
    for path in GUI_CONNECTOR_FILES:
        if slicer.exists(path):
            connectors += gui_connectors(slicer.read(path), path)

    classes: Dict[str, dict] = {}
    qt, qt_version = qt_classes(qt_include)
    classes.update(qt)
    for name, text in ctk.read_many(ctk_headers(ctk)).items():
        classes.update(qobject_classes(text, "ctk", name))
    for name, text in slicer.read_many(slicer_headers(slicer)).items():
        classes.update(qobject_classes(text, "slicer", name))

    return {
        "schema_version": SCHEMA_VERSION,
        "slicer_tag": tag,
        "slicer_commit": slicer.commit,
        "ctk_commit": ctk.commit,
        "qt_version": qt_version,
        "note": ("Names only, extracted by tools/slicer_api_inventory.py from the Slicer and CTK sources of this tag "
                 "and from Qt 5.15 headers (Slicer 5.8 and 5.10 are built with Qt 5.15; signals of the QtWidgets "
                 "classes do not change between 5.15 patch releases)."),
        "sources": {
            "python_modules": {m: v["file"] for m, v in python_modules.items()},
            "gui_connectors": [p for p in GUI_CONNECTOR_FILES if slicer.exists(p)],
            "slicer_headers": SLICER_HEADER_DIRS + ["Modules/Loadable/*/Widgets"],
            "ctk_headers": CTK_HEADER_DIRS,
            "ctk_commit_from": CTK_CMAKE,
            "qt_headers": QT_HEADER_FILES + [f"{d}/q*.h" for d in QT_HEADER_DIRS],
            "mrml_layouts": LAYOUT_HEADER,
        },
        "python_modules": python_modules,
        "gui_connectors": connectors,
        "qt_classes": dict(sorted(classes.items())),
        "mrml_layouts": mrml_layouts(slicer.read(LAYOUT_HEADER)),
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slicer", required=True, type=Path, help="Slicer git directory or source folder")
    parser.add_argument("--tag", help="Slicer tag (read from git); without it --slicer is a checked-out folder")
    parser.add_argument("--ctk", required=True, type=Path, help="CTK git directory or source folder")
    parser.add_argument("--ctk-commit", help="CTK revision (default: the one pinned by the Slicer tag)")
    parser.add_argument("--qt-include", required=True, type=Path, help="Qt 5 include folder (QtCore, QtWidgets)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    slicer = SourceTree(args.slicer, args.tag)
    ctk_revision = args.ctk_commit or (ctk_commit_for(slicer) if args.tag else None)
    ctk = SourceTree(args.ctk, ctk_revision)
    tag = args.tag or slicer.path.name
    inventory = build_inventory(slicer, ctk, args.qt_include, tag)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(inventory, indent=1, sort_keys=False) + "\n")
    print(f"{args.out}: {len(inventory['qt_classes'])} Qt classes, {len(inventory['gui_connectors'])} connectors, "
          f"{len(inventory['python_modules']['slicer.util']['functions'])} slicer.util functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
