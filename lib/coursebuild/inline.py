"""How a recorded text goes into the markdown around its ``{{ name }}`` placeholder.

A recorded text is markdown (``lesson.record("case", "Here that is `bn2`.")``), but the
place it lands decides how it must be written, since nbconvert (and Jupyter) render
markdown cells with these rules:

- **markdown** (a paragraph, a list, a heading): the text goes in as it is.
- **inline code or a fenced code block** (`` `{{ layer }}` ``): nothing inside is rendered,
  so the text goes in as it is, and must not contain the backticks that would close the
  span (an error names the placeholder).
- **an HTML block** (a paragraph that starts with a tag, such as
  ``<div class="admonition">``): markdown is *not* rendered there, so a recorded
  `` `bn2` `` would show its backticks. The text's inline markdown is written as HTML
  (code spans, ``**strong**``, ``*emphasis*``, links) and ``&``, ``<``, ``>`` are escaped;
  math (``$...$``) is left to MathJax.
- **inside a tag** (an attribute value, ``<a title="{{ name }}">``): the text is escaped
  as an attribute value, without markdown.

:func:`fill_cell` does the insertion for one markdown cell; :mod:`coursebuild.prose` calls
it for every cell of a lesson.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HTML_BLOCK = re.compile(r"^ {0,3}</?[A-Za-z][A-Za-z0-9-]*(\s|/?>|$)")
BACKTICKS = re.compile(r"`+")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
EMPHASIS = re.compile(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def contexts(text: str) -> list[str]:
    """The context of every character of a markdown cell: ``"markdown"``, ``"code"`` (an
    inline code span), ``"fence"`` (a fenced code block), ``"html"`` (an HTML block) or
    ``"tag"`` (between ``<`` and ``>`` of an HTML tag)."""
    kinds = ["markdown"] * len(text)
    offset, fence, block = 0, None, None  # block: "html" until a blank line
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        opening = FENCE.match(line)
        if fence:
            kind = "fence"
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
        elif opening:
            fence, kind = opening.group(1), "fence"
        else:
            if not stripped:
                block = None
            elif block is None and HTML_BLOCK.match(line):
                block = "html"
            kind = block or "markdown"
        for i in range(len(line)):
            kinds[offset + i] = kind
        offset += len(line)
    _mark_code_spans(text, kinds)
    _mark_tags(text, kinds)
    return kinds


def _mark_code_spans(text: str, kinds: list[str]) -> None:
    """Inline code spans outside code blocks and HTML blocks: a run of n backticks up to
    the next run of exactly n (CommonMark)."""
    runs = [m for m in BACKTICKS.finditer(text) if kinds[m.start()] == "markdown"]
    i = 0
    while i < len(runs):
        closing = next((j for j in range(i + 1, len(runs))
                        if len(runs[j].group()) == len(runs[i].group())), None)
        if closing is None:
            i += 1
            continue
        for k in range(runs[i].start(), runs[closing].end()):
            kinds[k] = "code"
        i = closing + 1


def _mark_tags(text: str, kinds: list[str]) -> None:
    for match in re.finditer(r"</?[A-Za-z][^<>]*>", text):
        if kinds[match.start()] not in ("code", "fence"):
            for k in range(match.start(), match.end()):
                kinds[k] = "tag"


def as_html(text: str) -> str:
    """A recorded text's inline markdown as HTML, for an HTML block: code spans, strong,
    emphasis and links; everything else escaped. Math is left as it is."""
    pieces, last = [], 0
    for match in CODE_SPAN.finditer(text):
        pieces.append(_inline_html(text[last:match.start()]))
        pieces.append(f"<code>{html.escape(match.group(2).strip(), quote=False)}</code>")
        last = match.end()
    pieces.append(_inline_html(text[last:]))
    return "".join(pieces)


def _inline_html(text: str) -> str:
    text = html.escape(text, quote=False)
    text = LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', text)
    text = STRONG.sub(r"<strong>\1</strong>", text)
    return EMPHASIS.sub(r"<em>\1</em>", text)


def fill_cell(source: str, pattern: re.Pattern, value: Callable[[str], str]
              ) -> tuple[str, list[str]]:
    """``source`` with every match of ``pattern`` (group 1: the name) replaced by
    ``value(name)`` written for its context; also the problems found (a text that cannot
    go where its placeholder is)."""
    kinds = contexts(source)
    out, problems, last = [], [], 0
    for match in pattern.finditer(source):
        name, text = match.group(1), value(match.group(1))
        kind = kinds[match.start()]
        if kind == "code" and "`" in text:
            problems.append(f"{{{{ {name} }}}} is inside inline code, but its text {text!r} "
                            "has backticks, which would end the code span: record the plain "
                            "value and keep the backticks in the markdown")
        elif kind == "html":
            text = as_html(text)
        elif kind == "tag":
            text = html.escape(text, quote=True)
        out += [source[last:match.start()], text]
        last = match.end()
    out.append(source[last:])
    return "".join(out), problems

