"""MkDocs hooks (see ``hooks:`` in mkdocs.yml).

- The footer names the installed convlens version, so the site says which library computed
  its figures.
- The nav's ``Lessons`` section is made from ``build-info.json`` in ``docs_dir`` (written by
  ``python -m coursebuild``): one entry per lesson, ``N. Title`` from the lesson's first
  heading, in course order. mkdocs.yml holds only a placeholder for it, so adding a lesson
  file is the only edit a new lesson needs.
- nbconvert's MathJax 2 configuration script is removed from lesson pages: the site runs
  MathJax 3 (``javascripts/mathjax.js``), and Material's instant navigation re-runs inline
  scripts, where that one fails on ``MathJax.Hub`` ("Cannot read properties of undefined").
- Lesson pages: the table of contents takes each heading's id and text from the page
  (mkdocs-jupyter makes the two separately, and a heading with inline code, such as
  "Copying weights under `no_grad`", got an id in its table of contents that the page
  lacks); nbconvert's stylesheets (about 590 kB, the same on every lesson page) move from
  the page into one cached file, ``assets/stylesheets/notebook.<hash>.css``.
- Accessibility of the theme's and nbconvert's markup: Material's search dialog gets a name
  (``aria-label``), and nbconvert's ``tabindex="0"`` on every cell (a tab stop per cell,
  markdown included) is dropped; a code box that scrolls is made reachable by
  ``javascripts/scroll-boxes.js`` instead.
- A lesson page's figures and downloads are files in the folder of its URL
  (:mod:`coursebuild.lessonpage`), so ``use_directory_urls`` must stay on.
"""

import hashlib
import html as html_lib
import importlib.metadata
import json
import re
from pathlib import Path

MATHJAX2_CONFIG = re.compile(r'<script type="text/x-mathjax-config">.*?</script>\s*', re.S)
HEADING = re.compile(r'<h([1-6])\b[^>]*\bid="([^"]*)"[^>]*>(.*?)</h\1>', re.S)
ANCHOR_LINK = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', re.S)
STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)
SEARCH_DIALOG = re.compile(r'(<div class="md-search" [^>]*role="dialog")(?![^>]*aria-label)')
CELL_TABSTOP = re.compile(r'(<div class="jp-Cell-inputWrapper") tabindex="0"')

SECTION = "Lessons"


def lesson_nav(docs_dir) -> list[dict]:
    path = Path(docs_dir) / "build-info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path} is missing or unreadable ({error}): run "
                           "`python -m coursebuild` before mkdocs") from None
    return [{f"{r['number']}. {r['title']}": f"lessons/{r['slug']}.ipynb"}
            for r in info["lessons"] if (Path(docs_dir) / "lessons" / f"{r['slug']}.ipynb").is_file()]


def is_lesson(page) -> bool:
    return page.file.src_uri.startswith("lessons/") and page.file.src_uri.endswith(".ipynb")


def on_config(config):
    if not config.get("use_directory_urls", True):
        raise RuntimeError("mkdocs.yml: use_directory_urls must be true: a lesson page's "
                           "figures and downloads sit in the folder of its URL")
    try:
        version = importlib.metadata.version("convlens")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    config["copyright"] = f"convlens {version}"
    nav = config["nav"] or []
    for item in nav:
        if isinstance(item, dict) and SECTION in item:
            item[SECTION] = lesson_nav(config["docs_dir"])
            break
    else:
        raise RuntimeError(f"mkdocs.yml's nav has no '{SECTION}' entry for the lessons")
    return config


def _flatten(items):
    for item in items:
        yield item
        yield from _flatten(item.children)


def on_page_content(html, page, config, files):
    """A lesson's table of contents: each entry gets the id and text of its heading on the
    page (headings of markdown cells, those with nbconvert's anchor link, in order)."""
    if not is_lesson(page):
        return html
    headings = [(int(level), anchor, ANCHOR_LINK.sub("", inner).strip())
                for level, anchor, inner in HEADING.findall(html) if "anchor-link" in inner]
    at = 0
    for item in _flatten(page.toc):
        while at < len(headings) and headings[at][0] != item.level:
            at += 1
        if at == len(headings):
            raise RuntimeError(f"{page.file.src_uri}: the table of contents lists "
                               f"{item.title!r}, which matches no heading of the page")
        item.id, item.title = headings[at][1], headings[at][2]
        at += 1
    return html


def notebook_css(output: str, page, config) -> str:
    """nbconvert's ``<style>`` blocks of a lesson page, as one shared stylesheet file linked
    in their place (the broken copy mkdocs-jupyter adds, a Python list's text, is dropped)."""
    article = ARTICLE.search(output)
    if not article:
        return output
    blocks = [m.group(1) for m in STYLE.finditer(article.group())]
    css = "\n".join(b for b in blocks if not b.strip().startswith("["))
    if not css:
        return output
    from mkdocs.utils import get_relative_url

    name = f"assets/stylesheets/notebook.{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
    target = Path(config["site_dir"]) / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(css, encoding="utf-8")
    link = f'<link rel="stylesheet" href="{html_lib.escape(get_relative_url(name, page.url))}">'
    first = [True]

    def swap(match):
        keep, first[0] = first[0], False
        return link + "\n" if keep else ""

    return output[:article.start()] + STYLE.sub(swap, article.group()) + output[article.end():]


def on_post_template(output, template_name, config):
    """Pages made from a theme template alone (``404.html``): the same search dialog."""
    return SEARCH_DIALOG.sub(r'\1 aria-label="Search"', output)


def on_post_page(output, page, config):
    output = MATHJAX2_CONFIG.sub("", output)
    output = SEARCH_DIALOG.sub(r'\1 aria-label="Search"', output)
    if not is_lesson(page):
        return output
    return CELL_TABSTOP.sub(r"\1", notebook_css(output, page, config))
