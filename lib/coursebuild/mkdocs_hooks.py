"""MkDocs hooks (see ``hooks:`` in mkdocs.yml).

- The footer names the installed convlens version, so the site says which library computed
  its figures.
- The nav's ``Lessons`` section is made from ``build-info.json`` in ``docs_dir`` (written by
  ``python -m coursebuild``): one entry per lesson, ``N. Title`` from the lesson's first
  heading, in course order. mkdocs.yml holds only a placeholder for it, so adding a lesson
  file is the only edit a new lesson needs.
- Under ``mkdocs serve`` the lesson pipeline runs before every build (:mod:`coursebuild.serve`):
  edits to ``lessons/``, ``site_assets/`` or ``lib/`` reach the page.
- nbconvert's MathJax 2 configuration script is removed from lesson pages: the site runs
  MathJax 3 (``javascripts/mathjax.js``), and Material's instant navigation re-runs inline
  scripts, where that one fails on ``MathJax.Hub`` ("Cannot read properties of undefined").
- Lesson pages: the table of contents takes each heading's id and text from the page
  (mkdocs-jupyter makes the two separately, and a heading with inline code, such as
  "Copying weights under `no_grad`", got an id in its table of contents that the page
  lacks); nbconvert's stylesheets (about 590 kB, the same on every lesson page) move from
  the page into one cached file, ``assets/stylesheets/notebook.<hash>.css``.
- Lesson pages are slimmed (:mod:`coursebuild.slimhtml`): the same code in lighter markup.
- autorefs' anchors (``[](){#ref-...}`` on the References page) become ``<span id>``: an
  empty ``<a href="">`` is a link without a name to a screen reader (axe-core: link-name).
- Accessibility of the theme's and nbconvert's markup: Material's search dialog gets a name
  (``aria-label``), and nbconvert's ``tabindex="0"`` on every cell (a tab stop per cell,
  markdown included) is dropped; a code box that scrolls is made reachable by
  ``javascripts/scroll-boxes.js`` instead.
- A lesson page's figures and downloads are files in the folder of its URL
  (:mod:`coursebuild.lessonpage`), so ``use_directory_urls`` must stay on.
- Lessons and the Library reference link each other (:mod:`coursebuild.libref`): on a
  lesson page, inline code and code that name a documented function link to its entry,
  and a closing box lists every library function the lesson uses; under each entry of a
  Library page, the lessons that use it. Every anchor linked to is checked at the end of
  the build (a missing one is a warning, so ``mkdocs build --strict`` fails).
"""

import hashlib
import html as html_lib
import importlib.metadata
import json
import logging
import re
from pathlib import Path

from mkdocs.utils import get_relative_url

from coursebuild import libref, slimhtml

MATHJAX2_CONFIG = re.compile(r'<script type="text/x-mathjax-config">.*?</script>\s*', re.S)
HEADING = re.compile(r'<h([1-6])\b[^>]*\bid="([^"]*)"[^>]*>(.*?)</h\1>', re.S)
ANCHOR_LINK = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', re.S)
STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)
SEARCH_DIALOG = re.compile(r'(<div class="md-search" [^>]*role="dialog")(?![^>]*aria-label)')
CELL_TABSTOP = re.compile(r'(<div class="jp-Cell-inputWrapper") tabindex="0"')
EMPTY_ANCHOR = re.compile(r'<a href="" id="([^"]+)"></a>')  # autorefs' [](){#id}

SECTION = "Lessons"
LIB = Path(__file__).resolve().parents[1]  # lib/: convlens and convlens_course, read, not imported
log = logging.getLogger("mkdocs.plugins.convlens")

# per build: the catalog, each lesson's uses, the anchors linked to and those found
_state: dict = {}


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


def on_startup(command, dirty):
    from coursebuild import serve

    serve.start(command)


def on_serve(server, config, builder):
    from coursebuild import serve

    serve.on_serve(server, config)
    return server


def on_config(config):
    from coursebuild import serve

    if not config.get("use_directory_urls", True):
        raise RuntimeError("mkdocs.yml: use_directory_urls must be true: a lesson page's "
                           "figures and downloads sit in the folder of its URL")
    serve.rebuild(config)  # when serving: the lessons first, then the nav made from them
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
    _state.clear()
    config_file = config.get("config_file_path")
    lessons_dir = Path(config_file).parent / "lessons" if config_file else None
    _state.update(references(config["docs_dir"], lessons_dir), linked={}, found={})
    return config


def references(docs_dir, lessons_dir=None) -> dict:
    """The catalog of documented names, and per lesson page (``lessons/SLUG.ipynb``) its
    number, title, import bindings and the documented names its source (``lessons_dir``,
    the repository's ``lessons/``, by default the copy in ``docs_dir``) uses."""
    docs_dir = Path(docs_dir)
    lessons_dir = Path(lessons_dir) if lessons_dir else docs_dir / "lessons"
    known = libref.catalog(docs_dir, LIB)
    info = json.loads((docs_dir / "build-info.json").read_text(encoding="utf-8"))
    lessons = {}
    for r in info["lessons"]:
        source = lessons_dir / f"{r['slug']}.py"
        if not (source.is_file() and (docs_dir / "lessons" / f"{r['slug']}.ipynb").is_file()):
            continue
        tree = libref.parse_lesson(source.read_text(encoding="utf-8"))
        lessons[f"lessons/{r['slug']}.ipynb"] = {
            "number": r["number"], "title": r["title"],
            "names": libref.bindings(tree), "uses": libref.lesson_uses(tree, known)}
    return {"catalog": known, "lessons": lessons}


def _href(name: str, page, files) -> str:
    """The relative link from ``page`` to the entry of ``name``; remembered for the check."""
    src = _state["catalog"].pages[name]
    _state["linked"].setdefault((src, name), page.file.src_uri)
    return get_relative_url(files.get_file_from_path(src).url, page.url) + "#" + name


def _lesson_links(output: str, page, files, lesson: dict) -> str:
    known = _state["catalog"]
    names = {p: p for p in libref.PACKAGES} | lesson["names"]

    def prose(dotted: str, bare: bool):
        if bare and dotted not in lesson["names"]:
            return None
        full = known.resolve(libref.expand(dotted, names))
        if not full or (bare and full in known.modules):
            return None
        return _href(full, page, files)

    def code(dotted: str, bare: bool):
        if dotted.split(".")[0] not in lesson["names"]:
            return None
        full = known.resolve(libref.expand(dotted, lesson["names"]))
        return _href(full, page, files) if full and full not in known.modules else None

    output = libref.link_code(libref.link_prose(output, prose), code)
    used = [n for n in lesson["uses"] if n.startswith("convlens.")]  # the library, not the runtime
    if used:
        items = ", ".join(f'<a href="{_href(n, page, files)}"><code>{html_lib.escape(n)}</code></a>'
                          for n in used)
        output += ('<div class="admonition info convlens-library-used">'
                   '<p class="admonition-title">The library functions this lesson uses</p>'
                   f"<p>{items}</p></div>")
    return output


def _taught_in(output: str, page, files) -> str:
    """Under each entry of a Library page, the lessons whose code uses it."""
    users: dict[str, list] = {}
    for src, lesson in _state["lessons"].items():
        for name in lesson["uses"]:
            users.setdefault(name, []).append((src, lesson))
    blocks = {}
    for name, found in users.items():
        if (_state["catalog"].pages.get(name) != page.file.src_uri
                or not name.startswith("convlens.")):  # every lesson calls the runtime
            continue
        links = [f'<a href="{get_relative_url(files.get_file_from_path(src).url, page.url)}">'
                 f"{lesson['number']}. {html_lib.escape(lesson['title'])}</a>" for src, lesson in found]
        text = f"<strong>Taught in</strong> {links[0]}"  # the first lesson that uses it
        if links[1:]:
            text += "; also used in " + ", ".join(links[1:])
        blocks[name] = f'<p class="convlens-taught">{text}</p>'
    return libref.add_after_headings(output, blocks)



def _flatten(items):
    for item in items:
        yield item
        yield from _flatten(item.children)


def lesson_toc(html, page) -> None:
    """A lesson's table of contents: each entry gets the id and text of its heading on the
    page (headings of markdown cells, those with nbconvert's anchor link, in order)."""
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


def on_page_content(output, page, config, files):
    if is_lesson(page):
        lesson_toc(output, page)
    src = page.file.src_uri
    if not _state:
        return output
    if src in _state["lessons"]:
        return _lesson_links(output, page, files, _state["lessons"][src])
    if src.startswith(libref.LIBRARY_DIR + "/"):
        output = _taught_in(libref.strip_roles(output), page, files)
        _state["found"][src] = libref.ids(output)
    return output


def on_post_build(config):
    """Every Library anchor a lesson links to exists (checked on the pages this build wrote)."""
    for (src, name), lesson in sorted(_state.get("linked", {}).items()):
        if src in _state["found"] and name not in _state["found"][src]:
            log.warning(f"{lesson} links to {src}#{name}, which that page does not have")


def notebook_css(output: str, page, config) -> tuple[str, str]:
    """nbconvert's ``<style>`` blocks of a lesson page, as one shared stylesheet file linked
    in their place (the broken copy mkdocs-jupyter adds, a Python list's text, is dropped):
    the page, and the stylesheet's text ("" when the page has none)."""
    article = ARTICLE.search(output)
    if not article:
        return output, ""
    blocks = [m.group(1) for m in STYLE.finditer(article.group())]
    css = "\n".join(b for b in blocks if not b.strip().startswith("["))
    if not css:
        return output, ""
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

    page_html = output[:article.start()] + STYLE.sub(swap, article.group()) + output[article.end():]
    return page_html, css


def on_post_template(output, template_name, config):
    """Pages made from a theme template alone (``404.html``): the same search dialog."""
    return SEARCH_DIALOG.sub(r'\1 aria-label="Search"', output)


def on_post_page(output, page, config):
    output = MATHJAX2_CONFIG.sub("", output)
    output = SEARCH_DIALOG.sub(r'\1 aria-label="Search"', output)
    output = EMPTY_ANCHOR.sub(r'<span id="\1"></span>', output)
    if not is_lesson(page):
        return output
    output, css = notebook_css(output, page, config)
    return slimhtml.slim_lesson(CELL_TABSTOP.sub(r"\1", output), css)
