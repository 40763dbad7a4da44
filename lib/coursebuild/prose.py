"""Values and claims in a lesson's prose, read from its executed notebook.

A lesson's code cells call ``convlens_course.lesson.record(name, value, fmt)`` and
``convlens_course.lesson.expect(condition, claim, value)``; each call leaves one display output
with a private MIME type (below). After execution, :func:`finish`:

- collects the recorded values (a name recorded twice with different texts is an error,
  naming both cells);
- replaces every ``{{ name }}`` in the markdown cells with its text, written for where it
  lands (:mod:`coursebuild.inline`: as markdown, inside code, or as HTML in an HTML block);
  a name no code cell recorded is an error naming the markdown cell and the placeholder;
- collects the checks: a claim that did not hold in lenient mode is a *note* (its cell
  keeps the warning box ``expect`` displayed); a strict failure never gets here, because
  ``expect`` raised in its cell;
- removes the private outputs, so the notebook holds only what a reader should see.

The notebook is changed in place; the result goes into the cache entry's manifest.
"""

from __future__ import annotations

import re

# The runtime's constants, from the one module that defines them (it imports no torch).
from convlens_course.protocol import EXPECT_MIME, NONDETERMINISTIC_MIME, RECORD_MIME
from coursebuild import inline

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class ProseError(Exception):
    """The prose refers to a value the code did not record, or a value is ambiguous."""


def _data(output) -> dict:
    return output.get("data", {}) if output.get("output_type") in (
        "display_data", "execute_result") else {}


def collect(nb) -> tuple[dict[str, str], list[dict], int, list[str]]:
    """``(records, notes, checks, errors)`` from the private outputs of ``nb``; cell
    numbers are 1-based, as in the build's other messages."""
    records: dict[str, tuple[str, int]] = {}
    notes, checks, errors = [], 0, []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else ():
            data = _data(output)
            if RECORD_MIME in data:
                name, text = data[RECORD_MIME]["name"], data[RECORD_MIME]["text"]
                if name in records and records[name][0] != text:
                    errors.append(f"{{{{ {name} }}}} is recorded twice with different values: "
                                  f"{records[name][0]!r} (cell {records[name][1]}) and "
                                  f"{text!r} (cell {index + 1})")
                records.setdefault(name, (text, index + 1))
            if EXPECT_MIME in data:
                checks += 1
                check = data[EXPECT_MIME]
                if not check["holds"]:
                    notes.append({"cell": index + 1, "claim": check["claim"],
                                  "value": check["value"], "model": check["model"],
                                  "device": check["device"]})
    return {name: text for name, (text, _) in records.items()}, notes, checks, errors


def timings(nb) -> list[str]:
    """The names recorded with ``timing=True`` (values that depend on the machine's speed),
    sorted: two builds agree on every other recorded value."""
    return sorted({_data(output)[RECORD_MIME]["name"]
                   for cell in nb.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", [])
                   if _data(output).get(RECORD_MIME, {}).get("timing")})


def nondeterministic(nb) -> list[str]:
    """The operations the lesson ran without a deterministic kernel (on CUDA: the runtime
    reports each once), in the order they first ran."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else ():
            operation = _data(output).get(NONDETERMINISTIC_MIME, {}).get("operation")
            if operation and operation not in found:
                found.append(operation)
    return found


def fill(nb, records: dict[str, str]) -> list[str]:
    """Replace the placeholders of the markdown cells of ``nb``; return the errors."""
    errors = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        unknown = [name for name in PLACEHOLDER.findall(cell.source) if name not in records]
        for name in dict.fromkeys(unknown):
            known = ", ".join(sorted(records)) or "none"
            errors.append(f"markdown cell {index + 1} uses {{{{ {name} }}}}, which no code cell "
                          f"records (recorded: {known})")
        if not unknown:  # written for where it lands: markdown, code, an HTML block (inline)
            cell.source, problems = inline.fill_cell(cell.source, PLACEHOLDER, records.get)
            errors += [f"markdown cell {index + 1}: {problem}" for problem in problems]
    return errors


def strip(nb) -> None:
    """Drop the private outputs: a record or a check that held disappears; a note keeps
    its warning box (``text/html``) and plain text."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = _data(output)
            if RECORD_MIME in data or NONDETERMINISTIC_MIME in data:
                continue
            if EXPECT_MIME in data:
                if data[EXPECT_MIME]["holds"]:
                    continue
                del data[EXPECT_MIME]
            kept.append(output)
        cell.outputs = kept


def _raise(lesson, errors: list[str]) -> None:
    if errors:
        raise ProseError("\n".join([f"{lesson}: the prose does not match the code",
                                    *(f"  {e}" for e in errors)]))


def check_fill(lesson, nb, records: dict[str, str]) -> None:
    """Fill the placeholders of ``nb`` from ``records`` (a cache entry's: the build refills a
    lesson whose markdown alone changed); raise :class:`ProseError` as :func:`finish` does."""
    _raise(lesson, fill(nb, records))


def finish(lesson, nb) -> dict:
    """Fill, check and strip ``nb`` (executed from ``lesson``); return the manifest part
    ``{"records": {...}, "checks": n, "notes": [...], "nondeterministic": [...],
    "timings": [...]}``; raise
    :class:`ProseError`."""
    records, notes, checks, errors = collect(nb)
    _raise(lesson, errors + fill(nb, records))
    operations, timed = nondeterministic(nb), timings(nb)
    strip(nb)
    return {"records": records, "checks": checks, "notes": notes,
            "nondeterministic": operations, "timings": timed}
