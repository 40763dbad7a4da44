"""Checks of a built site (``site/``) that need no browser: links, images, weight.

    python -m coursebuild.sitecheck [site] [--site-url URL] [--weights]

- **Links.** Every ``a[href]``, ``img[src]``, ``link[href]``, ``script[src]`` and
  ``[data-convlens-src]`` of every HTML page that points inside the site must name a file
  that exists; a fragment (``#figure-3``) must be an ``id`` (or an ``a[name]``) of the page
  it points to. URLs on other hosts (and ``mailto:``, ``data:``) are not followed: the site
  is checked offline. An absolute URL under ``--site-url`` (the canonical links) counts as
  internal, and so does an absolute path under its path (``/convlens/...``: the 404 page's
  links, which must work at any depth). By default that address is read from the home
  page's canonical link.
- **Weight.** For each lesson page, the bytes of its HTML, and of the HTML plus everything
  it loads from its own folder (figures, explorer data): ``--weights`` prints the table.

Exit status 1 when a link is broken (each named with its page), else 0.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

# (tag, attribute) pairs whose URL must resolve.
CHECKED = {("a", "href"), ("img", "src"), ("link", "href"), ("script", "src"),
           ("source", "src"), (None, "data-convlens-src")}
EXTERNAL_SCHEMES = ("mailto", "data", "javascript", "tel")


@dataclass
class Page:
    """What one HTML file holds: its ids and the URLs it points to (tag, attribute, URL)."""

    ids: set[str] = field(default_factory=set)
    links: list[tuple[str, str, str]] = field(default_factory=list)
    images: list[dict[str, str | None]] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = Page()

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("id"):
            self.page.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.page.ids.add(values["name"])
        if tag == "img":
            self.page.images.append(values)
        for name, value in attrs:
            if value is not None and ((tag, name) in CHECKED or (None, name) in CHECKED):
                self.page.links.append((tag, name, value))

    handle_startendtag = handle_starttag


def read_page(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8", errors="replace"))
    reader.close()
    return reader.page


def page_url(rel: str) -> str:
    """The site-relative URL a page is served at: ``lessons/x/index.html`` -> ``/lessons/x/``."""
    return "/" + (rel[: -len("index.html")] if rel.endswith("index.html") else rel)


def resolve(site: Path, rel: str, url: str, site_url: str | None = None
            ) -> tuple[Path, str] | None:
    """``(file, fragment)`` that ``url`` on page ``rel`` points to, or ``None`` when it
    leaves the site. A folder URL means its ``index.html``."""
    prefix = urlsplit(site_url).path if site_url else "/"
    if site_url and url.startswith(site_url):
        url = "/" + url[len(site_url):].lstrip("/")
    elif url.startswith(prefix) and prefix != "/":  # 404.html links from the site's root
        url = "/" + url[len(prefix):]
    parts = urlsplit(url)
    if parts.scheme in EXTERNAL_SCHEMES or parts.scheme and parts.scheme not in ("http", "https"):
        return None
    if parts.scheme or parts.netloc:
        return None  # another host: not followed offline
    target = urljoin(page_url(rel), parts.path) if parts.path else page_url(rel)
    path = site / unquote(target).lstrip("/")
    if target.endswith("/") or path.is_dir():
        path = path / "index.html"
    return path, unquote(parts.fragment)


def site_address(site: Path) -> str | None:
    """The address the site was built for (``site_url``): the home page's canonical link."""
    try:
        text = (Path(site) / "index.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'<link rel="canonical" href="([^"]+)"', text)
    return found.group(1) if found else None


def check_links(site: Path, site_url: str | None = None) -> list[str]:
    """Every broken internal link of the site, as ``page: <tag attr="url">: why``;
    ``site_url`` defaults to the address the site was built for (:func:`site_address`)."""
    site = Path(site)
    site_url = site_url or site_address(site)
    pages = {p.relative_to(site).as_posix(): read_page(p) for p in sorted(site.rglob("*.html"))}
    problems = []
    for rel, page in pages.items():
        for tag, attribute, url in page.links:
            where = f"{rel}: <{tag} {attribute}=\"{url}\">"
            found = resolve(site, rel, url, site_url)
            if found is None:
                continue
            path, fragment = found
            if not path.is_file():
                problems.append(f"{where}: no file {path.relative_to(site).as_posix()}")
                continue
            if not fragment or path.suffix != ".html":
                continue
            target = pages.get(path.relative_to(site).as_posix())
            if target is not None and fragment not in target.ids:
                problems.append(f"{where}: {path.relative_to(site).as_posix()} has no "
                                f"id \"{fragment}\"")
    return problems


def lesson_pages(site: Path) -> list[str]:
    """The lesson pages: ``lessons/<slug>/index.html``."""
    return sorted(p.relative_to(site).as_posix() for p in Path(site).glob("lessons/*/index.html"))


def weight(site: Path, rel: str) -> tuple[int, int]:
    """``(html bytes, html + images and data it loads from the site)`` of one page; files
    shared by every page (stylesheets, scripts) are not counted: the browser caches them."""
    site = Path(site)
    html = (site / rel).stat().st_size
    loaded = set()
    for tag, attribute, url in read_page(site / rel).links:
        if (tag, attribute) in (("img", "src"), (tag, "data-convlens-src")):
            found = resolve(site, rel, url)
            if found and found[0].is_file():
                loaded.add(found[0])
    return html, html + sum(p.stat().st_size for p in loaded)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursebuild.sitecheck",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("site", nargs="?", default="site")
    parser.add_argument("--site-url", default=None,
                        help="the site's public address: absolute links under it are internal "
                        "(default: the home page's canonical link)")
    parser.add_argument("--weights", action="store_true",
                        help="print each lesson page's HTML and total weight")
    args = parser.parse_args(argv)
    site = Path(args.site)
    if not (site / "index.html").is_file():
        print(f"sitecheck: no {site / 'index.html'}: build the site first", file=sys.stderr)
        return 2
    if args.weights:
        print(f"{'page':<48} {'HTML kB':>8} {'total kB':>9}")
        for rel in lesson_pages(site):
            html, total = weight(site, rel)
            print(f"{rel:<48} {html / 1000:>8.0f} {total / 1000:>9.0f}")
    problems = check_links(site, args.site_url)
    for problem in problems:
        print(problem)
    pages = len(list(site.rglob("*.html")))
    print(f"sitecheck: {pages} pages, {len(problems)} broken link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
