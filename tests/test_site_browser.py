"""The built site in a real browser (Debian's headless Chromium through playwright).

Two sites are checked the same way: a tiny one built from two throwaway lessons with the
real mkdocs.yml settings and site assets (always), and the course itself, built fresh from
``lessons/`` (when all its lessons exist; cheap once ``nox -s site`` has warmed the cache).
Every page: loads without console errors or failed requests, every image decodes, math is
typeset where there is math, every table fits the content column at 1280 px, and it
weighs under 3 MB. Search finds "Grad-CAM", and math is
typeset again after an instant (no reload) navigation.
"""

from __future__ import annotations

import functools
import http.server
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

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_PAGE_BYTES = 3 * 1024 * 1024
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
def serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
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


def check_site(pw, site: Path, base: str) -> None:
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert "index.html" in pages and len(pages) > 3
    problems: list[str] = []
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    try:
        for rel in pages:
            check_page(browser, base, site, rel, problems)
        check_search(browser, base, problems)
        check_instant_navigation(browser, base, site, problems)
    finally:
        browser.close()
    assert not problems, "\n".join(problems)


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
        weight = len(html.encode())
        for src in page.evaluate("Array.from(document.images).map(img => img.src)"):
            if src.startswith(base):
                weight += (site / src[len(base):].split("#")[0].split("?")[0]).stat().st_size
        if weight > MAX_PAGE_BYTES:
            errors.append(f"page weighs {weight / 1e6:.1f} MB (HTML and images)")
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


class ConfigLoader(yaml.SafeLoader):
    """Reads mkdocs.yml; ``!ENV [NAME, default]`` becomes its default."""


ConfigLoader.add_constructor(
    "!ENV", lambda loader, node: loader.construct_sequence(node)[-1]
    if isinstance(node, yaml.SequenceNode) else None)


def read_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=ConfigLoader)


def tiny_project(root: Path) -> Path:
    """Two throwaway lessons, the real site assets (but a home page that links only to
    them), and the real mkdocs.yml with the nav pointed at them. Returns the config path."""
    (root / "lessons").mkdir(parents=True)
    for slug, text in TINY_LESSONS.items():
        (root / "lessons" / f"{slug}.py").write_text(text)
    shutil.copytree(ROOT / "site_assets", root / "site_assets")
    (root / "site_assets" / "index.md").write_text(
        "# Home\n\nStart with [Hello](lessons/01-hello.ipynb), then "
        "[Grad-CAM](lessons/02-grad-cam.ipynb) (source: [02-grad-cam.py]"
        "(lessons/02-grad-cam.py)). Some math: $e^{i\\pi} + 1 = 0$.\n")
    config = read_config()
    config["hooks"] = [str(ROOT / hook) for hook in config.get("hooks", [])]
    library = [item for item in config["nav"] if isinstance(item, dict) and "Library" in item]
    config["nav"] = [{"Home": "index.md"},
                     {"Lessons": [{"Hello": "lessons/01-hello.ipynb"},
                                  {"Grad-CAM": "lessons/02-grad-cam.ipynb"}]},
                     *library,  # the reference pages of site_assets/library (mkdocstrings)
                     {"References": "references.md"}, {"Build": "build.md"}]
    config.pop("site_url", None)  # the !ENV tag is lost on reading: write it back as text
    (root / "mkdocs.yml").write_text('site_url: !ENV [SITE_URL, "http://127.0.0.1:8000/"]\n'
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


@pytest.mark.browser
@pytest.mark.slow
def test_course_site_in_browser(tmp_path):
    """The real course, built fresh: coursebuild (a no-op on a warm cache) then mkdocs."""
    needs_browser()
    # The nav's Lessons section is generated from lessons/ (mkdocs_hooks, coursebuild.catalog).
    run("-m", "coursebuild")
    build_and_check(tmp_path / "site", [], cwd=ROOT)
