"""The shape of the code a newcomer reads: no function in ``lib/`` over 80 lines of code (its
docstring, which the Library reference renders, is not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
LONGEST = 80


def long_functions(root: Path, limit: int) -> list[str]:
    """``file:line name (n lines)`` for every function or method under ``root`` longer than
    ``limit`` lines, its decorators and signature counted, its docstring not."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = node.end_lineno - first + 1
                doc = node.body[0]
                if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) \
                        and isinstance(doc.value.value, str):
                    lines -= doc.end_lineno - doc.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} "
                                 f"({lines} lines)")
    return found


def test_no_function_in_lib_is_over_80_lines():
    too_long = long_functions(LIB, LONGEST)
    assert not too_long, f"split these by meaning: {too_long}"


def test_the_length_check_sees_functions_and_methods(tmp_path):
    """The check above would pass on any tree if it missed functions: show it finds a long
    method and a long decorated function, and passes a short one and one whose docstring is long."""
    body = "\n".join(f"    x{i} = {i}" for i in range(LONGEST))
    docstring = "line\n" * 2 * LONGEST
    (tmp_path / "m.py").write_text(
        f"class A:\n  def long(self):\n{body}\n\n@staticmethod\ndef decorated():\n{body}\n\n"
        "def short():\n    return 1\n\n"
        f'def documented():\n    """{docstring}    """\n    return 1\n',
        encoding="utf-8")
    found = long_functions(tmp_path, LONGEST)
    assert sorted(f.split()[1] for f in found) == ["decorated", "long"]

