"""Links in lessons: one form for the site and for the downloaded notebook, checked at build.

**The form authors write** (in a markdown cell, as a markdown link or an HTML ``<a href>``):

- another lesson: ``[Grad-CAM](08-grad-cam.ipynb)``, or a heading or figure in it:
  ``[which layer](08-grad-cam.ipynb#which-layer)``,
  ``[its Figure 2](06-saliency-and-smoothgrad.ipynb#figure-2)``;
- a heading or figure of the same lesson: ``[below](#the-bias-pitfall)``, ``[Figure 3](#figure-3)``.

A heading's anchor is the one the site shows in the address bar when you click the heading's
``¶``: its text in lower case, punctuation dropped, spaces as ``-`` (Jupyter's own anchor,
the text with spaces as ``-``, is accepted too). A figure's anchor is ``#figure-N``, N as
its caption numbers it.

**What the build writes.** On the site page, ``08-grad-cam.ipynb#x`` becomes
``../08-grad-cam/#x`` (the lesson's page). In the downloaded notebook the file link stays,
so it opens the sibling notebook in Jupyter when the notebooks sit in one folder, and a
heading anchor becomes Jupyter's form of it (``#Which-layer?``).

**Checks.** A link to a lesson that does not exist, to a heading or figure a lesson does not
have, or any other relative link (a lesson page has no files of its own to link to) is an
error naming the lesson file, the markdown cell, its line and the link; the build fails.
Links with a scheme (``https:``, ``mailto:``) are left alone.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from convlens_course.protocol import FIGURE_METADATA
from coursebuild import inline

LESSON_FILE = re.compile(r"^(\d\d-[a-z0-9]+(?:-[a-z0-9]+)*)\.ipynb$")
MARKDOWN_LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*(["'])(.*?)\1""", re.I | re.S)
HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1>", re.S)
TAGS = re.compile(r"<[^>]+>")
ANCHOR_LINK = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', re.S)
FIGURE_ID = re.compile(r"^figure-(\d+)$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class LinkError(Exception):
    """A lesson links to a lesson, heading or figure that does not exist."""


def slugify(text: str) -> str:
    """A heading's anchor on the site (mkdocs-jupyter's rule): ASCII, lower case, only
    letters, digits, ``_`` and ``-``, runs of spaces and dashes as one ``-``."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def jupyter_id(text: str) -> str:
    """A heading's anchor in Jupyter and nbconvert: its text, spaces as ``-``."""
    return quote(text.replace(" ", "-"), safe="?/:@!$&'()*+,;=")


def heading_texts(markdown: str) -> list[tuple[int, str]]:
    """``(level, text)`` of each heading of a markdown cell, as the reader sees the text
    (rendered by nbconvert: code without backticks, math as written)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    rendered = markdown2html_mistune(markdown)
    found = []
    for match in HEADING.finditer(rendered):
        inner = ANCHOR_LINK.sub("", match.group(2))
        found.append((int(match.group(1)), html.unescape(TAGS.sub("", inner))))
    return found


@dataclass
class Anchors:
    """What a lesson can be linked to: its headings (site anchor -> Jupyter anchor) and the
    numbers of its figures."""

    headings: dict[str, str] = field(default_factory=dict)
    figures: set[int] = field(default_factory=set)
    figures_known: bool = True  # False for a lesson read from its source, not executed

    def site(self, anchor: str) -> str | None:
        """The site's form of ``anchor`` (either form accepted), or ``None`` if unknown."""
        figure = FIGURE_ID.match(anchor)
        if anchor in self.headings or figure and (
                int(figure.group(1)) in self.figures or not self.figures_known):
            return anchor
        for site, jupyter in self.headings.items():
            if unquote(anchor) in (jupyter, unquote(jupyter)):
                return site
        return None

    def describe(self) -> str:
        names = [f"#{a}" for a in self.headings] + [f"#figure-{n}" for n in sorted(self.figures)]
        return ", ".join(names) or "none"


def anchors(nb) -> Anchors:
    """The headings of ``nb``'s markdown cells and the figures :func:`show` numbered."""
    found = Anchors()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for _, text in heading_texts(cell.source):
                found.headings.setdefault(slugify(text), jupyter_id(text))
        for output in cell.get("outputs", []) if cell.cell_type == "code" else ():
            about = output.get("metadata", {}).get(FIGURE_METADATA)
            if about and about.get("role") != "caption":
                found.figures.add(int(about["number"]))
    return found


def find_links(source: str) -> list[tuple[int, int, str]]:
    """``(start, end, url)`` of every markdown link and ``<a href>`` of a markdown cell,
    outside code; ``start:end`` is the URL itself."""
    kinds = inline.contexts(source)
    found = [(m.start(1), m.end(1), m.group(1)) for m in MARKDOWN_LINK.finditer(source)]
    found += [(m.start(2), m.end(2), m.group(2)) for m in HTML_LINK.finditer(source)]
    return sorted((s, e, url) for s, e, url in found if kinds[s] not in ("code", "fence"))


def resolve(url: str, slug: str, index: dict[str, Anchors]
            ) -> tuple[str | None, str | None, str | None]:
    """``(lesson, anchor, error)`` that ``url`` in lesson ``slug`` points to: the anchor in
    the site's form; ``(None, None, None)`` for a link the build leaves alone."""
    if SCHEME.match(url) or url.startswith("//"):
        return None, None, None
    path, _, fragment = url.partition("#")
    target = slug
    if path:
        lesson = LESSON_FILE.match(Path(path).name if path.startswith("./") else path)
        if not lesson:
            return None, None, (f"{path!r} is not a lesson: link another lesson as "
                                "NN-slug.ipynb or NN-slug.ipynb#anchor (a full https:// "
                                "address for anything else)")
        target = lesson.group(1)
        if target not in index:
            return None, None, (f"there is no lesson {target} (lessons: "
                                f"{', '.join(sorted(index))})")
    if not fragment:
        return target, None, None
    anchor = index[target].site(fragment)
    if anchor is None:
        return None, None, (f"{target} has no heading or figure #{fragment} (it has: "
                            f"{index[target].describe()})")
    return target, anchor, None


def check(lesson: Path, slug: str, nb, index: dict[str, Anchors]) -> list[str]:
    """Every broken link of ``nb`` (lesson ``slug``), naming the file, cell, line, link."""
    text = Path(lesson).read_text(encoding="utf-8") if Path(lesson).is_file() else ""
    errors = []
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "markdown":
            continue
        for _, _, url in find_links(cell.source):
            _, _, error = resolve(url, slug, index)
            if error:
                at = text.find(url)
                line = f", line {text.count(chr(10), 0, at) + 1}" if at >= 0 else ""
                errors.append(f"{lesson}: markdown cell {number}{line}: link {url!r}: {error}")
    return errors


def rewrite(nb, slug: str, index: dict[str, Anchors], *, site: bool) -> None:
    """Write every lesson link of ``nb`` for the site page (``site=True``: from the page
    ``lessons/<slug>/``) or for the downloaded notebook; links must have been checked."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        pieces, last = [], 0
        for start, end, url in find_links(cell.source):
            target, anchor, error = resolve(url, slug, index)
            if target is None or error:
                continue
            if site:
                new = ("" if target == slug else f"../{target}/") + (f"#{anchor}" if anchor else "")
            else:
                jupyter = index[target].headings.get(anchor, anchor) if anchor else None
                new = ("" if target == slug and not url.partition("#")[0] else f"{target}.ipynb") \
                    + (f"#{jupyter}" if jupyter else "")
            pieces += [cell.source[last:start], new or "#"]
            last = end
        cell.source = "".join(pieces) + cell.source[last:]
