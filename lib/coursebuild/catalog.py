"""The list of lessons, read from the lessons themselves: the site's nav and home page.

A lesson ``lessons/NN-slug.py`` declares, in its first markdown cell:

- its **title**: the first ``# `` heading (``# # Grad-CAM`` in the percent file);
- its **summary**: the paragraph that starts with ``**Summary.**`` (it may wrap over
  several lines and ends at a blank line). It shows on the lesson page, and on the home
  page after the title (first letter lower-cased unless the first word is a name such as
  *SmoothGrad*).

The build puts both in ``build-info.json``; ``mkdocs_hooks.on_config`` turns them into the
nav's *Lessons* section, and :func:`home_list` replaces the line ``<!-- lessons -->`` of
``site_assets/index.md`` (both list the lessons that have a page in ``build/docs``: under
``--only``, the executed ones and those kept from earlier builds). Adding a lesson is adding
its file: nothing else lists lessons.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- lessons -->"
SUMMARY = "**Summary.**"
_CELL = re.compile(r"^# %%")


def first_markdown(text: str) -> list[str]:
    """The lines of the first markdown cell of a percent-format file, comment marks off."""
    lines, inside = [], False
    for line in text.splitlines():
        if _CELL.match(line):
            if inside:
                break
            inside = "[markdown]" in line
            continue
        if inside:
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return lines


def describe(lesson: Path) -> dict:
    """``{"slug", "number", "title", "summary", "problems"}`` of one lesson file; a missing
    title falls back to the slug's words, a missing summary to nothing, and ``problems``
    says so (the build prints it as a warning)."""
    lesson = Path(lesson)
    lines = first_markdown(lesson.read_text(encoding="utf-8"))
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), None)
    summary = []
    for line in lines:
        if summary and not line.strip():
            break
        if summary or line.startswith(SUMMARY):
            summary.append(line.strip())
    problems = []
    if not title:
        title = lesson.stem[3:].replace("-", " ").capitalize()
        problems.append("its first markdown cell has no '# Title' heading")
    if not summary:
        problems.append(f"its first markdown cell has no paragraph starting with {SUMMARY}")
    text = " ".join(summary)[len(SUMMARY):].strip()
    return {"slug": lesson.stem, "number": int(lesson.name[:2]), "title": title,
            "summary": text, "problems": problems}


def _lower_first(text: str) -> str:
    word = text.split(" ", 1)[0]
    if word[:1].isupper() and (len(word) == 1 or word[1:].replace("-", "").islower()):
        return text[0].lower() + text[1:]
    return text


def nav_title(entry: dict) -> str:
    return f"{entry['number']}. {entry['title']}"


def home_list(entries: list[dict]) -> str:
    """The home page's numbered list: ``N. [Title](lessons/slug.ipynb): summary``."""
    return "\n".join(f"{e['number']}. [{e['title']}](lessons/{e['slug']}.ipynb)"
                     + (f": {_lower_first(e['summary'])}" if e["summary"] else "")
                     for e in entries)


def fill_home(text: str, entries: list[dict]) -> str:
    """``index.md`` with its ``<!-- lessons -->`` line replaced by :func:`home_list`."""
    return "\n".join(home_list(entries) if line.strip() == MARKER else line
                     for line in text.split("\n"))
