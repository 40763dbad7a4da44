"""The layout's promises: the library never imports the course runtime or the build, and
``import convlens`` is cheap (lazy, no IPython, no pyplot, no environment read)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
COURSE_SIDE = ("convlens_course", "coursebuild")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module an ``import`` statement in ``path`` names (relative
    imports resolved against the file's package)."""
    package = ".".join(path.relative_to(LIB).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def edges(package: str) -> list[tuple[str, str]]:
    return [(str(path.relative_to(LIB)), name)
            for path in sorted((LIB / package).rglob("*.py"))
            for name in sorted(imported_modules(path))]


def test_the_library_never_imports_the_course_side():
    bad = [(file, name) for file, name in edges("convlens")
           if name.split(".")[0] in COURSE_SIDE]
    assert not bad, f"library modules import the course runtime or the build: {bad}"


def test_the_runtime_never_imports_the_build():
    bad = [(file, name) for file, name in edges("convlens_course")
           if name.split(".")[0] == "coursebuild"]
    assert not bad, bad


def test_the_import_walker_sees_relative_and_absolute_imports(tmp_path, monkeypatch):
    """The check above would pass on any tree if the walker missed imports: show it finds
    both forms."""
    folder = LIB / "convlens"
    names = imported_modules(folder / "cam.py")
    assert "convlens.hooks" in names or "convlens._checks" in names
    assert "torch" in names


def test_import_convlens_is_lazy_and_quiet():
    code = (
        "import os, sys\n"
        "seen = []\n"
        "class Env(dict):\n"
        "    def get(self, k, d=None):\n"
        "        seen.append(k); return super().get(k, d)\n"
        "    def __getitem__(self, k):\n"
        "        seen.append(k); return super().__getitem__(k)\n"
        "os.environ = Env(os.environ)\n"
        "import convlens\n"
        "heavy = [m for m in ('torch', 'torchvision', 'IPython', 'matplotlib.pyplot', "
        "'convlens_course') if m in sys.modules]\n"
        "print(heavy, [k for k in seen if k.startswith('CONVLENS')])\n"
        "print(type(convlens.gradcam).__name__, type(convlens.evaluate).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[] []", out
    assert out[1] == "function module"


@pytest.mark.parametrize("name", __import__("convlens").__all__)
def test_no_public_name_is_both_a_module_and_a_function(name):
    import importlib

    import convlens

    value = getattr(convlens, name)
    try:
        importlib.import_module(f"convlens.{name}")
    except ModuleNotFoundError:
        return  # a function or class with no module of its name
    # importing a submodule of that name must not have replaced the function
    assert getattr(convlens, name) is value
    if not isinstance(value, type(convlens)):
        pytest.fail(f"convlens.{name} is a {type(value).__name__} and also a module")
