"""The built site in a real browser (Debian's headless Chromium through playwright).

Two sites are checked the same way: a tiny one built from two throwaway lessons with the
real mkdocs.yml settings and site assets (always), and the course site that the site build
produced in ``site/`` (``nox -s site``; skipped when there is none: this module never builds
the course). Every page: loads without console errors or failed requests, every image
decodes and has alt text, math is typeset where there is math, every table fits the content
column at 1280 px, axe-core (vendored from PyPI, no CDN) finds no serious or critical
violation, at 375 px the page does not scroll sideways (wide content scrolls in its own
box), it weighs under 3 MB with its figures, and a lesson page's HTML under 300 KB. Search
finds "Grad-CAM" and a word of one lesson's prose, and math is typeset again after an
instant (no reload) navigation.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from coursebuild import sitecheck

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_PAGE_BYTES = 3 * 1024 * 1024
MAX_LESSON_HTML = 300 * 1024  # a lesson page's HTML: its figures and data are files
ENV = dict(os.environ, NO_MKDOCS_2_WARNING="1", PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")

TINY_LESSONS = {
    "01-hello": '''\
# %% [markdown]
# # Hello
# Inline math $y = \\sum_i w_i x_i$, escaped \\(a^2\\), and a display:
# $$ \\frac{\\partial y^c}{\\partial A^k_{ij}} $$

# %%
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [2, 0, 1])
plt.show()
''',
    "02-grad-cam": '''\
# %% [markdown]
# # Grad-CAM
# Grad-CAM weights each channel by $\\alpha_k^c$, the spatial mean of its gradients.
# A word no other page holds, for the search test: quincunx.

# %%
print("no model here")
''',
}


def needs_browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium): browser test skipped")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def run(*args, cwd=ROOT, **env):
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=dict(ENV, **env),
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@contextmanager
def serve(directory: Path, port: int = 0):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def has_math(html: str) -> bool:
    """Whether a page holds math: arithmatex spans, or dollars in notebook markdown."""
    if 'class="arithmatex"' in html:
        return True
    cells = re.findall(r'jp-RenderedMarkdown[^>]*>(.*?)</div>', html, re.S)
    return any(re.search(r"\$[^$]+\$|\\\(", cell) for cell in cells)


def build_and_check(site: Path, mkdocs_args: list[str], cwd: Path) -> None:
    """Serve ``site``, build it there for that address, and check it in Chromium. Material's
    instant navigation only follows links in sitemap.xml, which must name the right port."""
    from playwright.sync_api import sync_playwright

    with serve(site) as base:
        result = run("-m", "mkdocs", "build", "--strict", *mkdocs_args, "-d", str(site),
                     cwd=cwd, SITE_URL=base)
        assert "WARNING" not in result.stderr
        with sync_playwright() as pw:
            check_site(pw, site, base)


def check_site(pw, site: Path, base: str, instant: bool = True) -> None:
    """Every page (:func:`check_page`), search, and (``instant``) instant navigation."""
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert "index.html" in pages and len(pages) > 3
    problems: list[str] = []
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    try:
        for rel in pages:
            check_page(browser, base, site, rel, problems)
        check_search(browser, base, problems)
        check_search_finds_a_lesson(browser, base, site, problems)
        if instant:
            check_instant_navigation(browser, base, site, problems)
    finally:
        browser.close()
    assert not problems, "\n".join(problems)


def check_built_site(site: Path) -> None:
    """Check a site as built, without rebuilding it. Instant navigation follows only the
    links of sitemap.xml, which name the address the site was built for: when that is a
    loopback address, the site is served there; otherwise on any port, without that check."""
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright

    address = urlsplit(sitecheck.site_address(site) or "")
    loopback = address.hostname in ("127.0.0.1", "localhost") and address.path in ("", "/")
    port = (address.port or 80) if loopback else 0
    try:
        server = serve(site, port)
        base = server.__enter__()
    except OSError:  # the port is taken (mkdocs serve?): any port, no instant navigation
        loopback, server = False, serve(site)
        base = server.__enter__()
    try:
        with sync_playwright() as pw:
            check_site(pw, site, base, instant=loopback)
    finally:
        server.__exit__(None, None, None)


def check_page(browser, base: str, site: Path, rel: str, problems: list[str]) -> None:
    html = (site / rel).read_text(encoding="utf-8")
    url = base + (rel[: -len("index.html")] if rel.endswith("index.html") else rel)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url}"))
    try:
        page.goto(url, wait_until="networkidle")
        # Scroll through the page so lazily loaded images load, then wait for all of them.
        page.evaluate("""async () => {
            for (let y = 0; y < document.body.scrollHeight; y += 600) {
                window.scrollTo(0, y); await new Promise(r => setTimeout(r, 20));
            }
            await Promise.all(Array.from(document.images).map(
                img => img.decode().catch(() => null)));
        }""")
        broken = page.evaluate("""Array.from(document.images)
            .filter(img => !(img.complete && img.naturalWidth > 0))
            .map(img => img.src.slice(0, 80))""")
        errors += [f"image not decoded: {src}" for src in broken]
        if has_math(html):
            page.wait_for_selector("mjx-container", state="attached", timeout=15000)
            if page.locator("mjx-merror, [data-mjx-error]").count():
                errors.append("MathJax reports a TeX error")
        wide = page.evaluate("""Array.from(document.querySelectorAll('article table'))
            .map(t => [t.scrollWidth, (t.closest('.md-typeset__scrollwrap') || t.parentElement)
                       .clientWidth])
            .filter(([table, column]) => table > column + 1)""")
        errors += [f"a table is {t} px wide in a {c}-px column" for t, c in wide]
        size, weight = sitecheck.weight(site, rel)
        if weight > MAX_PAGE_BYTES:
            errors.append(f"page weighs {weight / 1e6:.1f} MB (HTML, images, explorer data)")
        if rel.startswith("lessons/") and size > MAX_LESSON_HTML:
            errors.append(f"its HTML weighs {size / 1024:.0f} KB (at most "
                          f"{MAX_LESSON_HTML // 1024} KB: figures and data belong in files)")
        # every copy button names an element whose text is the code of its cell
        errors += [f"copy button for {target!r} copies nothing" for target in page.evaluate(
            """Array.from(document.querySelectorAll('clipboard-copy[for]'))
                .map(b => b.getAttribute('for'))
                .filter(id => {
                    const n = document.getElementById(id);
                    if (!n) return true;
                    const cell = n.closest('.jp-Cell'), pre = cell && cell.querySelector('pre');
                    return n.textContent.trim() === '' && !!pre && pre.textContent.trim() !== '';
                })""")]
        errors += [f"image without alt text: {src}" for src in page.evaluate(
            "Array.from(document.images).filter(i => !i.hasAttribute('alt')).map(i => i.src)")]
        errors += [f"axe-core, {v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['nodes'][:3])}"
                   for v in axe_violations(page) if v["impact"] in AXE_SERIOUS]
        page.set_viewport_size({"width": 375, "height": 800})
        page.wait_for_timeout(300)
        narrow = sideways_scroll(page)
        if narrow["scrolled"] or narrow["culprits"]:
            errors.append(f"at 375 px the page scrolls sideways by {narrow['scrolled']} px; "
                          f"sticking out: {', '.join(narrow['culprits']) or 'nothing'}")
    except Exception as exc:  # a timeout or a navigation error
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        page.close()
    problems += [f"{rel}: {e}" for e in errors]


def check_search(browser, base: str, problems: list[str]) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(base, wait_until="networkidle")
        page.click(".md-search__input")
        page.keyboard.type("Grad-CAM", delay=30)
        page.wait_for_selector(".md-search-result__item", timeout=15000)
        results = page.locator(".md-search-result__list").inner_text()
        if "Grad-CAM" not in results:
            problems.append(f"search for Grad-CAM: unexpected results {results[:200]!r}")
    except Exception as exc:
        problems.append(f"search for Grad-CAM found nothing ({type(exc).__name__})")
    finally:
        page.close()


def word_of_one_lesson(site: Path) -> tuple[str, str] | None:
    """A word (letters only, at least 8) that the search index holds in exactly one lesson
    page and on no other page: ``(word, "lessons/<slug>/")``."""
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    separator = re.compile(index["config"]["separator"])
    where: dict[str, set[str]] = {}
    for doc in index["docs"]:
        text = re.sub(r"<[^>]+>", " ", doc["title"] + " " + doc["text"]).lower()
        for token in separator.split(text):
            where.setdefault(token.strip(".,;:()!?\"'"), set()).add(doc["location"].split("#")[0])
    single = sorted((word, pages.pop()) for word, pages in where.items()
                    if len(pages) == 1 and len(word) >= 8 and word.isalpha())
    lessons = [(word, page) for word, page in single if page.startswith("lessons/")]
    return lessons[len(lessons) // 2] if lessons else None


def check_search_finds_a_lesson(browser, base: str, site: Path, problems: list[str]) -> None:
    """Offline search across lessons: a word of one lesson's prose, typed into Material's
    search box, lists that lesson's page."""
    found = word_of_one_lesson(site)
    if found is None:
        problems.append("search: no word is found in exactly one lesson page")
        return
    word, location = found
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(base, wait_until="networkidle")
        page.click(".md-search__input")
        page.keyboard.type(word, delay=20)
        page.wait_for_selector(".md-search-result__item", timeout=15000)
        hrefs = page.eval_on_selector_all(".md-search-result__link",
                                          "links => links.map(a => a.href)")
        if not any(location in href for href in hrefs):
            problems.append(f"search for {word!r}: {location} not among {hrefs[:5]}")
    except Exception as exc:
        problems.append(f"search for {word!r} (only in {location}) found nothing "
                        f"({type(exc).__name__})")
    finally:
        page.close()


def check_instant_navigation(browser, base: str, site: Path, problems: list[str]) -> None:
    """From the home page, follow its link to the first lesson with math: Material swaps the
    content without a reload, and the new page's math must be typeset all the same."""
    target = next((p for p in sorted(site.glob("lessons/*/index.html"))
                   if has_math(p.read_text(encoding="utf-8"))), None)
    if target is None:
        return
    href = target.parent.relative_to(site).as_posix() + "/"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []  # scripts the swapped-in page runs (Material re-runs inline ones)
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    try:
        page.goto(base, wait_until="networkidle")
        page.evaluate("window.__same_document = true")
        page.locator(f'article a[href$="{href}"]').first.click()
        page.wait_for_url(f"**/{href}", timeout=10000)
        page.wait_for_selector("article mjx-container", state="attached", timeout=15000)
        if not page.evaluate("window.__same_document === true"):
            problems.append("navigation.instant is off: the page was reloaded")
        page.wait_for_timeout(300)  # let the swapped-in page's scripts finish
        problems += [f"instant navigation to {href}: {e}" for e in errors]
    except Exception as exc:
        problems.append(f"instant navigation to {href}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]}")
    finally:
        page.close()


AXE_SERIOUS = ("serious", "critical")


def axe_source() -> str:
    """axe-core's ``axe.min.js``, vendored from PyPI: the ``axe-playwright-python`` wheel
    (pinned in pyproject's test extra) ships it; only that file is used, no CDN."""
    from importlib.resources import files

    try:
        return (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("axe-core not installed (pip install -e '.[test]' brings "
                    "axe-playwright-python, which ships axe.min.js)")


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the loaded ``page``: ``{"id", "impact", "help", "nodes":
    [CSS selector, ...]}`` per rule (every rule axe runs by default)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source())
    return page.evaluate("""async () => {
        // judge the settled page: math typeset, the page's own scripts done reacting to it
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            await MathJax.startup.promise;
        }
        await new Promise(r => setTimeout(r, 400));
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(" "))}));
    }""")


def sideways_scroll(page) -> dict:
    """At the current viewport: how far the page itself scrolls sideways (px), and the
    visible elements that reach past its right edge without a box of their own that
    scrolls (cut off by the page, or widening it). Content that scrolls inside its own box
    (a wide table, a code block) is fine."""
    return page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        window.scrollTo(100000, window.scrollY);
        const scrolled = window.scrollX;
        window.scrollTo(0, window.scrollY);
        const culprits = [];
        for (const el of document.querySelectorAll("article *, .md-header *, .md-footer *")) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0 || r.right <= width + 1) continue;
            const style = getComputedStyle(el);
            if (style.visibility === "hidden" || style.position === "fixed") continue;
            let box = el.parentElement, scrolls = false;
            while (box && box !== document.body) {
                const s = getComputedStyle(box);
                if (["auto", "scroll"].includes(s.overflowX) &&
                        box.getBoundingClientRect().right <= width + 1) { scrolls = true; break; }
                box = box.parentElement;
            }
            if (scrolls) continue;
            const name = el.tagName.toLowerCase() + (typeof el.className === "string" &&
                el.className.trim() ? "." + el.className.trim().split(/\\s+/).join(".") : "");
            if (!culprits.some(c => c.startsWith(name + " "))) culprits.push(
                name + " (right edge at " + Math.round(r.right) + " px)");
            if (culprits.length >= 6) break;
        }
        return {scrolled: scrolled, culprits: culprits};
    }""")


class ConfigLoader(yaml.SafeLoader):
    """Reads mkdocs.yml; ``!ENV [NAME, default]`` becomes its default."""


ConfigLoader.add_constructor(
    "!ENV", lambda loader, node: loader.construct_sequence(node)[-1]
    if isinstance(node, yaml.SequenceNode) else None)


def read_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=ConfigLoader)


def tiny_project(root: Path, lessons: dict[str, str] = TINY_LESSONS) -> Path:
    """Throwaway lessons (slug -> percent-format text; by default two), the real site
    assets (but a home page that links only to them), and the real mkdocs.yml with its
    generated Lessons nav. Returns the config path."""
    (root / "lessons").mkdir(parents=True)
    for slug, text in lessons.items():
        (root / "lessons" / f"{slug}.py").write_text(text)
    shutil.copytree(ROOT / "site_assets", root / "site_assets")
    first, last = sorted(lessons)[0], sorted(lessons)[-1]
    (root / "site_assets" / "index.md").write_text(
        f"# Home\n\nStart with [the first lesson](lessons/{first}.ipynb), then "
        f"[the last](lessons/{last}.ipynb) (source: [{last}.py]"
        f"(lessons/{last}/{last}.py)). Some math: $e^{{i\\pi}} + 1 = 0$.\n")
    config = read_config()
    config["hooks"] = [str(ROOT / hook) for hook in config.get("hooks", [])]
    config["watch"] = [str(ROOT / path) for path in config.get("watch", [])]  # serve only
    for name in ("site_url", "repo_url"):  # the !ENV tags are lost on reading: written below
        config.pop(name, None)
    (root / "mkdocs.yml").write_text('site_url: !ENV [SITE_URL, "http://127.0.0.1:8000/"]\n'
                                     "repo_url: !ENV [REPO_URL, null]\n"
                                     + yaml.safe_dump(config, sort_keys=False))
    return root / "mkdocs.yml"


@pytest.mark.browser
def test_tiny_site_in_browser(tmp_path):
    needs_browser()
    config = tiny_project(tmp_path)
    run("-m", "coursebuild", "--device", "cpu", cwd=tmp_path)
    build_and_check(tmp_path / "site", ["-f", str(config)], cwd=tmp_path)


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """validation: in mkdocs.yml makes a broken link a warning, and --strict fails on it."""
    config = tiny_project(tmp_path)
    run("-m", "coursebuild", "--device", "cpu", cwd=tmp_path)
    (tmp_path / "build" / "docs" / "references.md").write_text("[gone](lessons/99-gone.ipynb)\n")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                             str(config), "-d", str(tmp_path / "site")],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert result.returncode != 0
    assert "99-gone.ipynb" in result.stderr


def built_site() -> Path:
    """The course site the site build produced (``nox -s site`` writes ``site/``; set
    ``CONVLENS_SITE`` to check another folder); skipped when there is none, and a failure
    when it does not hold this checkout's lessons (a stale site)."""
    site = Path(os.environ.get("CONVLENS_SITE") or ROOT / "site")
    if not (site / "index.html").is_file():
        pytest.skip(f"no built site in {site}: run `nox -s site` first (this test checks the "
                    "site that the site build produced, it does not build one)")
    lessons = {p.stem for p in (ROOT / "lessons").glob("[0-9][0-9]-*.py")}
    pages = {p.parent.name for p in site.glob("lessons/*/index.html")}
    assert pages == lessons, (f"{site} is not built from this checkout's lessons (pages "
                              f"{sorted(pages ^ lessons)} differ): rebuild with `nox -s site`")
    return site


@pytest.mark.browser
@pytest.mark.slow
def test_course_site_in_browser():
    """The real course as built: every page in Chromium (axe-core, 375 px, images, math,
    weight), search across lessons, instant navigation."""
    needs_browser()
    check_built_site(built_site())


@pytest.mark.slow
def test_course_site_links_resolve():
    """Every internal link and anchor of the built course site, without a browser."""
    from coursebuild import sitecheck

    assert sitecheck.check_links(built_site()) == []
