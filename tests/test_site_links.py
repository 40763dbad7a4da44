"""Links between lessons, recorded text in markdown, and the built-site link check: small
hand-made notebooks and pages, no kernel, no mkdocs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from convlens_course.protocol import FIGURE_METADATA
from coursebuild import inline, links, prose, sitecheck

# --- recorded text, written for where its placeholder lands ---------------------------------


def fill(source: str, **records) -> tuple[str, list[str]]:
    return inline.fill_cell(source, prose.PLACEHOLDER, records.get)


def test_recorded_markdown_in_an_html_block_is_written_as_html():
    """Lesson 08's slip: a text recorded with backticks, inside an admonition <div>, showed
    its backticks; there it becomes <code>, and HTML specials are escaped."""
    source = ('<div class="admonition warning"><p>on this page {{ layer }}, the model\'s '
              "<code>last_spatial</code> role</p>\n<p>{{ other }}</p></div>")
    text, problems = fill(source, layer="`bn2`", other="**a** *b* & <c> [d](e.html)")
    assert problems == []
    assert "on this page <code>bn2</code>, the model's" in text
    assert "<p><strong>a</strong> <em>b</em> &amp; &lt;c&gt; <a href=\"e.html\">d</a></p>" in text
    assert "`" not in text


def test_recorded_text_in_markdown_and_code_goes_in_as_it_is():
    source = "In code `{{ name }}`, in prose {{ case }}\n\n```\n{{ case }}\n```\n"
    text, problems = fill(source, name="blocks.6.0", case="Here that is `bn2`, $k\\times k$.")
    assert problems == []
    assert text == ("In code `blocks.6.0`, in prose Here that is `bn2`, $k\\times k$.\n\n```\n"
                    "Here that is `bn2`, $k\\times k$.\n```\n")


def test_an_html_block_ends_at_a_blank_line():
    text, _ = fill("<div>{{ a }}</div>\n\nafter {{ a }}", a="`x`")
    assert text == "<div><code>x</code></div>\n\nafter `x`"


def test_recorded_backticks_inside_inline_code_are_an_error_naming_the_placeholder():
    _, problems = fill("the layer `{{ layer }}` here", layer="`bn2`")
    assert len(problems) == 1 and "{{ layer }} is inside inline code" in problems[0]


def test_a_placeholder_in_an_attribute_is_escaped():
    text, _ = fill('<a title="{{ t }}">x</a>', t='say "hi" <b>')
    assert text == '<a title="say &quot;hi&quot; &lt;b&gt;">x</a>'


def test_prose_fill_reports_the_cell_of_a_bad_insertion():
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_markdown_cell("`{{ a }}`")])
    errors = prose.fill(nb, {"a": "`x`"})
    assert len(errors) == 1 and errors[0].startswith("markdown cell 2: {{ a }}")


# --- links between lessons ------------------------------------------------------------------


def figure_output(number: int) -> dict:
    return new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "f"},
                      metadata={FIGURE_METADATA: {"number": number, "caption": f"c{number}"}})


def lesson(*markdown: str, figures: int = 0) -> nbformat.NotebookNode:
    cells = [new_markdown_cell(m) for m in markdown]
    cells.append(new_code_cell("show()", outputs=[figure_output(n + 1) for n in range(figures)]))
    return new_notebook(cells=cells)


@pytest.fixture
def course(tmp_path):
    one = lesson("# One\n\nSee [the pitfall](02-two.ipynb#copying-weights-under-no_grad-and-"
                 "training-afterwards), [Figure 2](02-two.ipynb#figure-2), "
                 "[mine](#figure-1) and <a href=\"02-two.ipynb\">two</a>, "
                 "[web](https://example.org/x.ipynb) and `[code](99-no.ipynb)`.", figures=1)
    two = lesson("# Two", "## Copying weights under `no_grad`, and training afterwards\n\n"
                 "Back to [one](01-one.ipynb#one) and [Jupyter's form](#Two).", figures=2)
    sources = {}
    for slug in ("01-one", "02-two"):
        sources[slug] = tmp_path / f"{slug}.py"
        sources[slug].write_text("# %% [markdown]\n# # placeholder\n")
    notebooks = {"01-one": one, "02-two": two}
    return notebooks, sources, {s: links.anchors(nb) for s, nb in notebooks.items()}


def test_heading_anchors_follow_the_site_and_jupyter(course):
    _, _, index = course
    assert index["02-two"].headings == {
        "two": "Two",
        "copying-weights-under-no_grad-and-training-afterwards":
            "Copying-weights-under-no_grad,-and-training-afterwards"}
    assert index["02-two"].figures == {1, 2}


def test_valid_links_pass_and_are_rewritten_for_the_page_and_the_notebook(course):
    notebooks, sources, index = course
    for slug, nb in notebooks.items():
        assert links.check(sources[slug], slug, nb, index) == []
    page, download = (copy.deepcopy(notebooks["01-one"]) for _ in range(2))
    links.rewrite(page, "01-one", index, site=True)
    links.rewrite(download, "01-one", index, site=False)
    assert re.findall(r"\]\(([^)]*)\)|href=\"([^\"]*)\"", page.cells[0].source) == [
        ("../02-two/#copying-weights-under-no_grad-and-training-afterwards", ""),
        ("../02-two/#figure-2", ""), ("#figure-1", ""), ("", "../02-two/"),
        ("https://example.org/x.ipynb", ""), ("99-no.ipynb", "")]
    assert "(02-two.ipynb#Copying-weights-under-no_grad,-and-training-afterwards)" in \
        download.cells[0].source
    assert "`[code](99-no.ipynb)`" in page.cells[0].source  # code is left alone
    two = copy.deepcopy(notebooks["02-two"])
    links.rewrite(two, "02-two", index, site=True)
    assert "[Jupyter's form](#two)" in two.cells[1].source


@pytest.mark.parametrize("url, message", [
    ("03-three.ipynb", "there is no lesson 03-three"),
    ("02-two.ipynb#nowhere", "02-two has no heading or figure #nowhere"),
    ("02-two.ipynb#figure-3", "02-two has no heading or figure #figure-3"),
    ("#figure-9", "01-one has no heading or figure #figure-9"),
    ("../references.md", "'../references.md' is not a lesson"),
])
def test_a_broken_link_names_the_lesson_cell_line_and_link(course, url, message):
    notebooks, sources, index = course
    sources["01-one"].write_text("# %% [markdown]\n# # One\n#\n# [bad](" + url + ")\n")
    nb = lesson("# One", f"text [bad]({url})", figures=1)
    errors = links.check(sources["01-one"], "01-one", nb, index)
    assert len(errors) == 1
    assert errors[0].startswith(f"{sources['01-one']}: markdown cell 2, line 4: link {url!r}: ")
    assert message in errors[0]


def test_figures_of_a_lesson_known_only_from_its_source_are_not_checked(course):
    _, _, index = course
    index["02-two"].figures_known = False
    assert index["02-two"].site("figure-7") == "figure-7"
    assert index["02-two"].site("nowhere") is None


# --- the built-site link check --------------------------------------------------------------


def page(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><body>{body}</body></html>")


def test_sitecheck_finds_missing_files_and_anchors_and_follows_nothing_external(tmp_path):
    page(tmp_path / "index.html",
         '<a href="lessons/one/">ok</a><a href="lessons/one/#part">ok</a>'
         '<a href="lessons/one/#gone">bad anchor</a><a href="lessons/two/">bad page</a>'
         '<img src="logo.png"><a href="https://elsewhere.org/x">external</a>'
         '<a href="mailto:a@b.c">mail</a><a href="#top" id="top">self</a>'
         '<link rel="canonical" href="https://example.org/site/lessons/one/">')
    page(tmp_path / "lessons/one/index.html",
         '<h2 id="part">Part</h2><a href="../../">home</a><img src="figure-1.png">'
         '<a href="one.ipynb">download</a><div data-convlens-src="explorer-1.json"></div>')
    (tmp_path / "lessons/one/figure-1.png").write_bytes(b"x")
    (tmp_path / "lessons/one/one.ipynb").write_text("{}")
    problems = sitecheck.check_links(tmp_path, site_url="https://example.org/site/")
    assert problems == [
        'index.html: <a href="lessons/one/#gone">: lessons/one/index.html has no id "gone"',
        'index.html: <a href="lessons/two/">: no file lessons/two/index.html',
        'index.html: <img src="logo.png">: no file logo.png',
        'lessons/one/index.html: <div data-convlens-src="explorer-1.json">: no file '
        'lessons/one/explorer-1.json',
    ]
    (tmp_path / "lessons/one/explorer-1.json").write_text("{}")
    html, total = sitecheck.weight(tmp_path, "lessons/one/index.html")
    assert total == html + 1 + 2  # the figure and the explorer data, not the download
