"""A tiny course site, built as the real one is (coursebuild, then mkdocs with the real
mkdocs.yml and hooks), checked without a browser: every link and anchor resolves, figures
are files with alt text, size and an anchor, downloads are there and valid, recorded text
renders, canonical URLs and the sitemap follow SITE_URL, search indexes lesson prose, and a
broken link in a lesson fails the build naming it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
import pytest

from coursebuild import sitecheck

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_site_browser import ENV, run, tiny_project  # noqa: E402

pytestmark = pytest.mark.slow
SITE_URL = "https://example.org/convlens/"
REPO_URL = "https://github.com/example/convlens"
MAX_LESSON_HTML = 300 * 1024

HELLO = '''\
# %% [markdown]
# # Hello
#
# **Summary.** A tiny lesson with one figure and one interactive figure.
#
# The line in [Figure 1](#figure-1) zigzags; [the other lesson](02-more.ipynb#copying-weights-under-no_grad-and-training-afterwards)
# has a heading with code.
#
# <div class="admonition note"><p class="admonition-title">Recorded</p>
# <p>The layer on this page is {{ layer }}.</p></div>

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from convlens_course import explore, lesson

fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [2, 0, 1])
lesson.show(fig, "A zigzag line on white")
lesson.record("layer", "`bn2`");

# %%
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
x = torch.randn(1, 3, 16, 16)
explore.receptive_field_explorer(model, x, ((x[0].permute(1, 2, 0) + 2) / 4).clamp(0, 1).numpy(),
                                 ["0", "2"])
'''

MORE = '''\
# %% [markdown]
# # More
#
# **Summary.** A second lesson to link to.
#
# ## Copying weights under `no_grad`, and training afterwards
#
# Back to [the figure of lesson 1](01-hello.ipynb#figure-1). A rare word: zygomorphic.

# %%
print("no figure here")
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-course")
    config = tiny_project(root, {"01-hello": HELLO, "02-more": MORE})
    run("-m", "coursebuild", "--device", "cpu", cwd=root)
    run("-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(root / "site"),
        cwd=root, SITE_URL=SITE_URL, REPO_URL=REPO_URL)
    return root


@pytest.fixture(scope="module")
def site(project):
    return project / "site"


def lesson_page(site: Path, slug: str) -> str:
    return (site / "lessons" / slug / "index.html").read_text(encoding="utf-8")


def test_every_link_and_anchor_resolves(site):
    assert sitecheck.check_links(site, SITE_URL) == []
    html = lesson_page(site, "01-hello")
    # the lesson link went through the build, and the table of contents has the heading's id
    assert 'href="../02-more/#copying-weights-under-no_grad-and-training-afterwards"' in html
    more = lesson_page(site, "02-more")
    assert 'href="#copying-weights-under-no_grad-and-training-afterwards"' in more
    assert re.search(r'class="md-nav__link">\s*<span class="md-ellipsis">\s*Copying weights '
                     r"under <code>no_grad</code>, and training afterwards", more)


def test_figures_are_files_with_alt_text_size_and_an_anchor(site):
    from PIL import Image

    html = lesson_page(site, "01-hello")
    assert 'src="data:' not in html
    figure = re.search(r'<figure class="convlens-figure" id="figure-1"><img ([^>]*)>.*?'
                       r"<figcaption[^>]*>(.*?)</figcaption>", html, re.S)
    assert figure, "no <figure id=figure-1>"
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', figure.group(1)))
    assert attrs["alt"] == "A zigzag line on white"
    assert attrs["loading"] == "lazy"
    with Image.open(site / "lessons" / "01-hello" / attrs["src"]) as image:
        assert (int(attrs["width"]), int(attrs["height"])) == image.size
    assert '<a class="convlens-figure-number" href="#figure-1"><strong>Figure 1.</strong></a>' \
        in figure.group(2)
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all(re.search(r'\balt="[^"]+"', img) for img in images), images


def test_explorer_data_is_a_file_and_the_page_stays_small(site):
    html = lesson_page(site, "01-hello")
    src = re.findall(r'data-convlens-pending="receptive-field"\s+data-convlens-src="([^"]+)"',
                     html)
    assert src == ["explorer-1.json"]
    data = json.loads((site / "lessons" / "01-hello" / src[0]).read_text())
    assert data["kind"] == "receptive-field"
    assert "data-convlens-data" not in html
    for slug in ("01-hello", "02-more"):
        size, total = sitecheck.weight(site, f"lessons/{slug}/index.html")
        assert size <= MAX_LESSON_HTML, (slug, size)
    # nbconvert's stylesheets are one shared file, not in every page
    css = re.findall(r'<link rel="stylesheet" href="([^"]*notebook\.[0-9a-f]+\.css)">', html)
    assert len(css) == 1 and "<style" not in re.search(r"<article.*</article>", html, re.S).group()


def test_downloads_are_there_valid_and_self_contained(project, site):
    html = lesson_page(site, "01-hello")
    box = re.search(r'<div [^>]*class="convlens-downloads".*?</div>', html, re.S).group()
    buttons = re.findall(r"<a ([^>]*)>([^<]+)</a>", box)
    hrefs = {unescape(text): dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))
             for attrs, text in buttons}
    assert all("download" in a and "md-button" in a["class"] for a in hrefs.values())
    hrefs = {text: a["href"] for text, a in hrefs.items()}
    assert hrefs == {"Download notebook": "01-hello.ipynb", "Download source": "01-hello.py"}
    assert "placeholders" in box and "filled in only in the executed notebook" in box
    folder = site / "lessons" / "01-hello"
    assert (folder / "01-hello.py").read_bytes() == (project / "lessons" / "01-hello.py").read_bytes()
    nb = nbformat.read(folder / "01-hello.ipynb", as_version=4)
    nbformat.validate(nb)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # embedded, not a file
    text = json.dumps(nb.cells)
    assert "{{" not in text and "figure-1.png" not in text and "data-convlens-data" in text
    assert "(02-more.ipynb#Copying-weights-under-no_grad,-and-training-afterwards)" in \
        nb.cells[0].source  # the lesson link, written for Jupyter


def test_recorded_code_inside_an_html_block_renders_as_code(site):
    html = lesson_page(site, "01-hello")
    assert "The layer on this page is <code>bn2</code>." in html
    assert "is `bn2`" not in html


def test_site_url_gives_canonical_links_and_the_sitemap(site):
    html = lesson_page(site, "01-hello")
    assert f'<link rel="canonical" href="{SITE_URL}lessons/01-hello/">' in html
    locs = re.findall(r"<loc>([^<]+)</loc>", (site / "sitemap.xml").read_text())
    assert f"{SITE_URL}lessons/01-hello/" in locs and f"{SITE_URL}lessons/02-more/" in locs
    assert all(loc.startswith(SITE_URL) for loc in locs)
    assert re.search(rf'<a href="{REPO_URL}" title="Go to repository" class="md-source"', html)


def test_the_search_index_finds_a_lesson_by_a_word_of_its_prose(site):
    """As Material's search does: text split on the index's separator (whitespace and
    dashes), lower-cased, a query word matching the start of a token (Material appends a
    wildcard to each word); the word is in lesson 02's prose only."""
    index = json.loads((site / "search" / "search_index.json").read_text())
    separator = re.compile(index["config"]["separator"])

    def tokens(doc):
        return separator.split(re.sub(r"<[^>]+>", " ", doc["title"] + " " + doc["text"]).lower())

    found = {doc["location"].split("#")[0] for doc in index["docs"]
             if any(token.startswith("zygomorphic") for token in tokens(doc))}
    assert found == {"lessons/02-more/"}


def test_a_broken_lesson_link_fails_the_build_naming_lesson_cell_line_and_link(project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("site"))
    lesson = copy / "lessons" / "02-more.py"
    lesson.write_text(lesson.read_text().replace("01-hello.ipynb#figure-1",
                                                 "01-hello.ipynb#figure-7"))
    result = subprocess.run([sys.executable, "-m", "coursebuild", "--device", "cpu"], cwd=copy,
                            env=ENV, capture_output=True, text=True)
    assert result.returncode == 1
    assert ("lessons/02-more.py: markdown cell 1, line 8: link '01-hello.ipynb#figure-7': "
            "01-hello has no heading or figure #figure-7") in result.stderr
