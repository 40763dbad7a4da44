"""Which files of the ``convlens`` package a lesson can run, read from the source alone.

A lesson's cache key holds the bytes of these files, not of the whole package, so editing
``occlusion.py`` re-runs the occlusion lesson and leaves the Grad-CAM lesson cached.

The analysis is static and errs on the side of re-running:

- the lesson's references to the package are found with :mod:`ast`: ``import convlens``
  (any alias) followed by ``convlens.NAME``, ``from convlens import NAME``,
  ``from convlens.MODULE import ...`` and ``import convlens.MODULE``; a public ``NAME`` is
  mapped to its module through the ``from .MODULE import NAME`` lines of ``__init__.py``;
- each referenced module brings the modules it imports (``from .x import``,
  ``from . import x``), transitively;
- ``__init__.py`` and every non-Python file (data) always count;
- anything it cannot resolve (a syntax error, ``getattr(convlens, name)``, the package
  object passed around, an unknown name) makes the whole package count.

``__init__.py`` imports every module to build the flat namespace; those imports are not
followed, since running a lesson only executes the modules it calls into (module-level
side effects of the others are not part of a figure).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "convlens"


class _Unresolved(Exception):
    """The lesson uses the package in a way the analysis cannot follow."""


def _module_imports(tree: ast.AST, modules: set[str]) -> dict[str, str]:
    """``{bound name: module}`` for the package-relative imports of one module's AST."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import a, b
                target = node.module.split(".")[0]
                for alias in node.names:
                    bound[alias.asname or alias.name] = target
            elif node.level == 1:  # from . import x, y
                for alias in node.names:
                    if alias.name in modules:
                        bound[alias.asname or alias.name] = alias.name
            elif node.level == 0 and (node.module or "").startswith(PACKAGE + "."):
                target = node.module.split(".")[1]
                for alias in node.names:
                    bound[alias.asname or alias.name] = target
    return bound


def _package_graph(library: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Module import edges, and public names of ``__init__`` mapped to their module."""
    modules = {p.stem: p for p in library.glob("*.py")}
    names = set(modules)
    edges = {}
    for name, path in modules.items():
        if name == "__init__":
            continue
        edges[name] = set(_module_imports(ast.parse(path.read_bytes()), names).values())
    exports = {}
    if "__init__" in modules:
        exports = _module_imports(ast.parse(modules["__init__"].read_bytes()), names)
    return edges, exports


def _lesson_references(source: bytes, modules: set[str], exports: dict[str, str]) -> set[str]:
    """The package modules a lesson's code names directly."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise _Unresolved(f"not parseable: {error}") from None

    def resolve(name: str) -> str:
        if name in exports:
            return exports[name]
        if name in modules:
            return name
        if name.startswith("__") and name.endswith("__"):  # __version__ and friends
            return "__init__"
        raise _Unresolved(f"{PACKAGE}.{name}")

    aliases, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != PACKAGE:
                    continue
                if len(parts) > 1:
                    used.add(resolve(parts[1]))
                aliases.add(alias.asname or PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != PACKAGE:
                continue
            if len(parts) > 1:
                used.add(resolve(parts[1]))
            else:
                used.update(resolve(alias.name) for alias in node.names)
    if not aliases:
        return used
    # every use of the package object must be an attribute access: package.NAME
    attribute_bases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases:
            used.add(resolve(node.attr))
            attribute_bases.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases and id(node) not in attribute_bases \
                and isinstance(node.ctx, ast.Load):
            raise _Unresolved(f"the package object {node.id!r} is used directly")
    return used


def lesson_library_files(source: bytes, library: Path) -> list[Path]:
    """The files of the package at ``library`` that a lesson with ``source`` can run."""
    library = Path(library)
    every = sorted(p for p in library.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in {".pyc", ".pyo"})
    try:
        edges, exports = _package_graph(library)
        modules = set(edges) | {"__init__"}
        wanted = _lesson_references(source, modules, exports) | {"__init__"}
    except (_Unresolved, SyntaxError):
        return every
    todo = list(wanted)
    while todo:
        for dependency in edges.get(todo.pop(), ()):
            if dependency not in wanted:
                wanted.add(dependency)
                todo.append(dependency)
    return [p for p in every
            if p.suffix != ".py" or p.parent != library or p.stem in wanted]


def lesson_library_digest(source: bytes, library: Path) -> str:
    """sha256 over the relative paths and bytes of :func:`lesson_library_files`."""
    library = Path(library)
    digest = hashlib.sha256()
    for path in lesson_library_files(source, library):
        data = path.read_bytes()
        relative = path.relative_to(library).as_posix().encode()
        digest.update(b"%d:%s%d:" % (len(relative), relative, len(data)))
        digest.update(data)
    return digest.hexdigest()
