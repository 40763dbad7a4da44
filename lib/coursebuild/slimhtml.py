"""Lighter lesson pages: the same code, drawn the same way, with less markup.

nbconvert highlights a lesson's code with Pygments, one ``<span class="...">`` per token, and
gives every code cell its own copy of the copy button's icon. On a long lesson that markup is
several times the code it wraps (lesson 9: 50 kB of code in 260 kB of HTML).
:func:`slim_lesson` rewrites it so that every character is drawn exactly as before, reading
the rules from the page's own notebook stylesheet (the ``.highlight-ipynb .<class>`` rules
that nbconvert writes into the page):

- a span whose class has no rule (plain names, ``n``; builtins, ``nb``; ...) or that holds
  only whitespace is replaced by its text;
- classes with identical rules become one (``s2``, ``si``, ``sa``: all "string colour"; ``mi``
  and ``mf``: "number colour"), and spans of one class with nothing but spaces between them
  merge, so that an f-string's text is one span instead of five;
- the copy button's icon is one ``<symbol>`` in the page that every button ``<use>``-s
  (through ``xlink:href``: Material's instant navigation rewrites every ``[href]`` of a new
  page, and a ``<use>`` element's ``href`` cannot be assigned);
- each copy button copies the text of its highlighted block (the element its ``for`` names)
  instead of a hidden second copy of the code (nearly half of a lesson's markup), wherever the
  two texts are the same;
- the cells' empty collapser boxes, which the stylesheet hides (``display:none``), are left
  out, and runs of blank space between tags become one line break (not inside ``<pre>``,
  ``<textarea>``, ``<script>`` or ``<style>``, where blank space is content).

Two things are drawn differently, on purpose: punctuation (``p``) and the dot of an attribute
(an ``o`` span holding only ``.``) take the code's own colour, as in most editors' themes,
instead of JupyterLab's blue for brackets and bold purple for ``torch.nn.functional``'s dots.
Those are a third of a lesson's spans.

Only the markup inside code blocks and of the copy icons changes: every character of code a
reader sees or copies stays the same (``tests/test_slimhtml.py`` checks it).
"""

from __future__ import annotations

import html as html_module
import re

__all__ = ["code_classes", "slim_lesson"]

CODE_BLOCK = re.compile(r'(<div class="highlight-ipynb[^"]*"><pre>)(.*?)(</pre>)', re.S)
SPAN = re.compile(r'<span class="(\w+)">([^<]*)</span>')
# two spans of one class, with at most spaces between them (whitespace draws no colour)
SAME_CLASS = re.compile(r'<span class="(\w+)">([^<]*)</span>([ \t]*)<span class="\1">([^<]*)</span>')
RULE = re.compile(r"\.highlight-ipynb\s+\.(\w+)\s*\{([^}]*)\}")
COPY_ICON = re.compile(
    r'<svg aria-hidden="true" class="clipboard-copy-icon"[^>]*>(.*?)</svg>', re.S)
ICON_ID = "convlens-copy-icon"
COLLAPSER = re.compile(r'<div class="jp-Collapser[^"]*">\s*</div>\s*')
HIDDEN_COLLAPSER = re.compile(r"\.jp-Collapser\b[^{]*\{\s*display\s*:\s*none")
VERBATIM = re.compile(r"(<(pre|textarea|script|style)\b.*?</\2>)", re.S)
# blank space between two tags (a text part's ends touch a verbatim element's tags)
BLANK_BETWEEN_TAGS = re.compile(r"(?:(?<=>)|^)\s{2,}(?=<|$)")
# the copy button's text: a hidden copy of the cell's code, after its highlighted block
COPY_TEXT = re.compile(r'<div (?:class="clipboard-copy-txt" id="([^"]+)"|id="([^"]+)" '
                       r'class="clipboard-copy-txt")>(.*?)</div>', re.S)
PRE_OPEN = re.compile(r'<div class="highlight-ipynb[^"]*"><pre>')
TAG = re.compile(r"<[^>]+>")
PLAIN = ("p",)  # drawn in the code's own colour (see the module docstring)
DOT = re.compile(r'<span class="o">\.</span>')


def code_classes(css: str) -> dict[str, str]:
    """``{class: the class that draws it}`` from the ``.highlight-ipynb .<class>`` rules of
    ``css``: classes whose declarations are identical map to one of them (the shortest name).
    A class missing from the result has no rule: its text draws as plain code."""
    rules: dict[str, str] = {}
    for name, body in RULE.findall(css):
        declarations = ";".join(sorted(d.strip() for d in body.split(";") if d.strip()))
        rules[name] = ";".join(filter(None, (rules.get(name), declarations)))
    canonical: dict[str, str] = {}
    for name, body in sorted(rules.items(), key=lambda item: (len(item[0]), item[0])):
        canonical.setdefault(body, name)
    return {name: canonical[body] for name, body in rules.items()}


def _slim_code(code: str, classes: dict[str, str]) -> str:
    def respan(match):
        name, text = classes.get(match.group(1)), match.group(2)
        return text if name is None or not text.strip() else f'<span class="{name}">{text}</span>'

    code = SPAN.sub(respan, DOT.sub(".", code))
    while True:
        merged = SAME_CLASS.sub(r'<span class="\1">\2\3\4</span>', code)
        if merged == code:
            return code
        code = merged


def _squeeze_blanks(html: str) -> str:
    parts = VERBATIM.split(html)  # [text, verbatim, its tag name, text, ...]
    return "".join(BLANK_BETWEEN_TAGS.sub("\n", part) if i % 3 == 0 else part
                   for i, part in enumerate(parts) if i % 3 != 2)


def _copy_from_code(html: str) -> str:
    """Point each copy button at its highlighted ``<pre>`` (the button copies the target's
    text) instead of a hidden second copy of the code, where the two texts agree."""
    for match in reversed(list(COPY_TEXT.finditer(html))):
        target = match.group(1) or match.group(2)
        openings = list(PRE_OPEN.finditer(html, 0, match.start()))
        if not openings:
            continue
        opening = openings[-1]
        end = html.find("</pre>", opening.end())
        shown = html_module.unescape(TAG.sub("", html[opening.end():end]))
        if shown.rstrip("\n") != html_module.unescape(match.group(3)).rstrip("\n"):
            continue  # not the same code: keep the hidden copy
        html = (html[:opening.end() - 1] + f' id="{target}">' + html[opening.end():match.start()]
                + html[match.end():])
    return html


def slim_lesson(html: str, css: str) -> str:
    """``html``, a lesson page whose notebook stylesheet is ``css``, with its code blocks and
    copy icons in lighter markup (see the module docstring). Without a
    ``.highlight-ipynb`` rule in ``css`` the code is left as it is."""
    classes = {name: drawn for name, drawn in code_classes(css).items()
               if name not in PLAIN and drawn not in PLAIN}
    if classes:
        html = CODE_BLOCK.sub(
            lambda m: m.group(1) + _slim_code(m.group(2), classes) + m.group(3), html)
    html = _copy_from_code(html)
    if HIDDEN_COLLAPSER.search(css):
        html = COLLAPSER.sub("", html)
    html = _squeeze_blanks(html)
    icons = list(COPY_ICON.finditer(html))
    if not icons:
        return html
    symbol = (f'<svg aria-hidden="true" style="display:none"><symbol id="{ICON_ID}" '
              f'viewBox="0 0 16 16">{icons[0].group(1)}</symbol></svg>')
    use = (f'<svg aria-hidden="true" class="clipboard-copy-icon" width="20" height="20">'
           f'<use xlink:href="#{ICON_ID}"></use></svg>')  # not href: see the docstring
    html = COPY_ICON.sub(use, html)
    at = html.find("<article")
    at = html.find(">", at) + 1 if at >= 0 else 0
    return html[:at] + symbol + html[at:]
