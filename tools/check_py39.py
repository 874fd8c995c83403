"""Checks that Python sources run on Python 3.9 (Slicer 5.8 ships 3.9).

1. Every file parses with the 3.9 grammar (``ast.parse(feature_version=(3, 9))``): catches
   ``match`` statements, parenthesised context managers, ``except*`` and other newer syntax.
2. Without ``from __future__ import annotations``, a ``X | Y`` annotation is evaluated at
   definition time and fails on 3.9: reported.
3. Even with the future import some annotations are evaluated at runtime: SQLAlchemy ``Mapped[...]``
   declarations, ``typing.get_type_hints`` users, pydantic-style models. ``X | Y`` inside a
   ``Mapped[...]`` annotation is reported everywhere.
4. ``X | Y`` outside annotations between typing constructs (e.g. ``isinstance(v, int | float)``,
   type aliases) is reported: it needs 3.10.
5. Calls needing 3.10+: ``zip(..., strict=...)``, ``dataclass(slots=...)``/``kw_only``.
6. When a ``python3.9`` interpreter is on PATH (pyenv provides one here), every file is also
   byte-compiled by it, which is the definitive syntax check.

Usage: python tools/check_py39.py DIR [DIR ...]; exit 1 with one line per problem.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

TYPING_NAMES = {"int", "float", "str", "bytes", "bool", "None", "list", "dict", "tuple", "set", "type",
                "List", "Dict", "Tuple", "Set", "Optional", "Any", "Sequence", "Mapping", "Callable", "Iterable"}


def _has_future_annotations(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names) for node in tree.body)


def _contains_union_operator(node: ast.AST) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(node))


def _looks_like_type(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in TYPING_NAMES
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Subscript):
        return _looks_like_type(node.value)
    if isinstance(node, ast.Attribute):
        return node.attr in TYPING_NAMES
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _looks_like_type(node.left) or _looks_like_type(node.right)
    return False


def _annotations(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            yield node.annotation
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                yield node.returns
            args = node.args
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    yield arg.annotation


def check_source(path: Path, source: str) -> List[str]:
    problems: List[str] = []
    try:
        tree = ast.parse(source, filename=str(path), feature_version=(3, 9))
    except SyntaxError as exc:
        return [f"{path}:{exc.lineno}: syntax not valid on Python 3.9: {exc.msg}"]
    future = _has_future_annotations(tree)
    annotation_ids = set()
    for annotation in _annotations(tree):
        annotation_ids.update(id(n) for n in ast.walk(annotation))
        if not _contains_union_operator(annotation):
            continue
        is_mapped = any(isinstance(n, ast.Subscript)
                        and getattr(n.value, "id", getattr(n.value, "attr", "")) == "Mapped"
                        for n in ast.walk(annotation))
        if not future or is_mapped:
            why = ("SQLAlchemy evaluates Mapped[...] at runtime" if is_mapped
                   else "no 'from __future__ import annotations'")
            problems.append(f"{path}:{annotation.lineno}: 'X | Y' annotation fails on Python 3.9 ({why}); "
                            "use Optional[...] / Union[...]")
    for node in ast.walk(tree):
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in annotation_ids
                and _looks_like_type(node.left) and _looks_like_type(node.right)):
            problems.append(f"{path}:{node.lineno}: runtime 'X | Y' between types needs Python 3.10; use a tuple "
                            "or Union[...]")
        if isinstance(node, ast.Call):
            func = node.func
            name = getattr(func, "id", getattr(func, "attr", ""))
            keywords = {k.arg for k in node.keywords}
            if name == "zip" and "strict" in keywords:
                problems.append(f"{path}:{node.lineno}: zip(strict=...) needs Python 3.10")
            if name == "dataclass" and keywords & {"slots", "kw_only"}:
                problems.append(f"{path}:{node.lineno}: dataclass(slots/kw_only) needs Python 3.10")
    return problems


def python_files(roots: List[str]) -> List[Path]:
    files: List[Path] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in {"__pycache__", ".venv", "build"}]
            files += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(files)


def compile_with_python39(files: List[Path]) -> List[str]:
    interpreter = shutil.which("python3.9")
    if interpreter is None:
        return []
    code = ("import sys\nbad = 0\nfor p in sys.argv[1:]:\n    try:\n"
            "        compile(open(p, encoding='utf-8').read(), p, 'exec')\n"
            "    except SyntaxError as e:\n        bad += 1\n"
            "        print(f'{p}:{e.lineno}: Python 3.9 compile: {e.msg}')\n"
            "sys.exit(1 if bad else 0)\n")
    env = dict(os.environ)
    env.setdefault("PYENV_VERSION", "3.9")
    try:
        result = subprocess.run([interpreter, "-c", code, *map(str, files)], capture_output=True, text=True,
                                env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"python3.9 could not run: {exc}"]
    if result.returncode != 0 and "command not found" in result.stderr:
        return []  # a pyenv shim without an installed 3.9: the AST checks above still ran
    return [line for line in result.stdout.splitlines() if line.strip()]


def main(argv: List[str]) -> int:
    roots = argv or ["StartNetExtension"]
    files = python_files(roots)
    problems: List[str] = []
    for path in files:
        problems += check_source(path, path.read_text(encoding="utf-8"))
    problems += compile_with_python39(files)
    for problem in problems:
        print(problem)
    print(f"python 3.9 check: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
