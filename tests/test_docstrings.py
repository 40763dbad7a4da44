"""The Library reference's contract with the docstrings (the site's Library pages are made
from them by mkdocstrings).

- Every module of ``convlens`` lists its public names in ``__all__`` and is documented on a
  page of ``site_assets/library/`` (a ``::: convlens.module`` line): nothing public is left
  out of the reference, nothing private gets in.
- Every public function, method and class has a docstring that names each argument
  (``Args:``, no more and no fewer than the signature has), what it returns (``Returns:``
  or ``Yields:``, with a shape when it returns a tensor), its errors (``Raises:``, or the
  sentence "Raises no exception of its own."), and an example (``Examples:`` with ``>>>``
  lines).
- Every example runs (doctest) and prints what it shows: the examples are checked here, in
  the fast tier, on tiny models, so none can rot.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import matplotlib
import pytest
import torch

import convlens

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_PAGES = ROOT / "site_assets" / "library"
SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*)(?:\s*\([^)]*\))?\s*:")
SHAPE = re.compile(r"\[[^\]]*\]|shape")
NO_ERRORS = "Raises no exception of its own"  # a function with no error to name says so


def public_modules() -> list[str]:
    """Every module of the package that is not private (``_checks``), packages included."""
    return sorted(f"convlens.{m.name}" for m in pkgutil.iter_modules(convlens.__path__)
                  if not m.name.startswith("_"))


def documented_modules() -> dict[str, str]:
    found = {}
    for page in sorted(LIBRARY_PAGES.glob("*.md")):
        for name in re.findall(r"^:::\s+([\w.]+)\s*$", page.read_text(), flags=re.M):
            found[name] = page.name
    return found


def public_objects():
    """(qualified name, object) of every public function, class and public method, once."""
    seen, found = set(), []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            found.append((f"{module_name}.{name}", obj))
            if inspect.isclass(obj):
                found += [(f"{module_name}.{name}.{m}", f) for m, f in own_methods(obj)]
    return found


def own_methods(cls) -> list:
    """Public methods a class adds (not those it overrides, such as ``forward``)."""
    bases = [b for b in cls.__mro__[1:] if b is not object]
    methods = []
    for name, value in vars(cls).items():
        if name.startswith("_") or any(hasattr(b, name) for b in bases):
            continue
        function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if inspect.isfunction(function):
            methods.append((name, function))
    return methods


def sections(doc: str) -> dict[str, list[str]]:
    """A Google-style docstring's sections: title -> its (dedented) lines."""
    result, current = {"": []}, ""
    for line in doc.splitlines():
        match = SECTION.match(line)
        if match:
            current = match.group(1)
            result[current] = []
        elif current and line.strip() and not line.startswith(" "):
            current = ""  # back to description text
            result[""].append(line)
        else:
            result[current].append(line[4:] if current else line)
    return result


def entries(lines: list[str]) -> list[str]:
    """The names an ``Args:``/``Attributes:``/``Raises:`` section describes (its unindented
    ``name:`` or ``name (type):`` lines)."""
    return [m.group(1).lstrip("*") for line in lines if not line.startswith(" ")
            for m in [ENTRY.match(line)] if m]


def parameters(function) -> list[str]:
    return [p for p in inspect.signature(function).parameters
            if p not in ("self", "cls") and not p.startswith("_")]  # `_report`: private


def fields(cls) -> list[str]:
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return list(getattr(cls, "_fields", ()))


def constants() -> list[tuple[str, str]]:
    """(module, name) of every public name that is neither a function, a class nor a module."""
    found = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj)):
                found.append((module_name, name))
    return found


def attribute_docstring(path: Path, name: str) -> str | None:
    """The string right after the module-level assignment of ``name`` (its docstring, as
    mkdocstrings reads it); None when there is none."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for node, after in zip(body, body[1:] + [None]):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                return after.value.value
            return None
    return None


OBJECTS = public_objects()
IDS = [name for name, _ in OBJECTS]


def test_every_module_lists_its_public_names_and_has_a_library_page():
    documented = documented_modules()
    for name in public_modules():
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), (list, tuple)), \
            f"{name} has no __all__: list its public names (the reference documents only those)"
        for public in module.__all__:
            assert hasattr(module, public), f"{name}.__all__ names {public!r}, which it lacks"
        assert name in documented, f"{name} is on no page of site_assets/library/ (::: {name})"
    assert len(OBJECTS) > 40  # the collection itself found the library


@pytest.mark.parametrize("module_name, name", constants(), ids=lambda v: v)
def test_every_public_constant_has_a_docstring(module_name, name):
    """An undocumented name would be left off its page (mkdocstrings shows documented
    members only, so that a class's inherited overrides such as ``forward`` stay off)."""
    path = Path(importlib.import_module(module_name).__file__)
    files = [path] + (sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [])
    defined = [f for f in files  # a package re-exports it from one of its modules
               if re.search(rf"^{name}\b[^=\n]*=", f.read_text(encoding="utf-8"), flags=re.M)]
    assert defined, f"cannot find where {module_name}.{name} is assigned"
    assert attribute_docstring(defined[0], name), \
        f"{module_name}.{name} has no docstring: put a string on the line after its assignment"


@pytest.mark.parametrize("name, obj", OBJECTS, ids=IDS)
def test_docstring_names_arguments_return_errors_and_example(name, obj):
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"{name} has no docstring"
    parts = sections(doc)
    problems = []
    if inspect.isclass(obj):
        listed = entries(parts.get("Attributes", [])) + entries(parts.get("Args", []))
        init = obj.__dict__.get("__init__")
        wanted = fields(obj) or (parameters(init) if inspect.isfunction(init) else [])
        missing = [f for f in wanted if f not in listed and not f.startswith("_")
                   and f not in ("args", "kwargs")]
        if missing:
            problems.append(f"Attributes/Args do not describe {missing}")
    else:
        wanted = parameters(obj)
        listed = entries(parts.get("Args", []))
        if sorted(listed) != sorted(wanted):
            problems.append(f"Args describe {sorted(listed)}, the signature has {sorted(wanted)}")
        returns = parts.get("Returns", []) + parts.get("Yields", [])
        annotation = inspect.signature(obj).return_annotation
        if annotation not in (None, "None") and not any(line.strip() for line in returns):
            problems.append("no Returns: (or Yields:) section")
        if "Tensor" in str(annotation) and not SHAPE.search(" ".join(returns)):
            problems.append("Returns: gives no shape ([N, C, H, W], 'shape of x') for a tensor")
        if not entries(parts.get("Raises", [])) and NO_ERRORS not in doc:
            problems.append(f"no Raises: section naming an exception type (or '{NO_ERRORS}')")
        if ">>>" not in "\n".join(parts.get("Examples", [])):
            problems.append("no Examples: section with a >>> example")
    for title in ("Args", "Attributes", "Raises"):  # as mkdocstrings (griffe) reads them
        for line in parts.get(title, []):
            if line.strip() and not line.startswith(" ") and not ENTRY.match(line):
                problems.append(f"{title}: {line.strip()!r} is neither 'name: description' "
                                "nor an indented continuation")
    assert not problems, f"{name}: " + "; ".join(problems)


def _examples():
    finder = doctest.DocTestFinder(recurse=False)
    found = []
    for name, obj in OBJECTS:
        for test in finder.find(obj, name, globs={}):
            if test.examples:
                found.append(test)
    return found


EXAMPLES = _examples()


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_examples_run(test, single_thread):
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    try:
        result = runner.run(test, out=report.append)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    assert result.failed == 0, "".join(report)
