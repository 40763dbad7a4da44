"""The two-way links between lessons and the Library pages (coursebuild.libref and the
mkdocs hook that applies them): what the catalog holds, what a lesson uses, and the HTML
the hook writes. The built site's links are checked by mkdocs_hooks.on_post_build (a
missing anchor fails ``mkdocs build --strict``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from coursebuild import keys, libref, mkdocs_hooks

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path):
    lib, docs = tmp_path / "lib", tmp_path / "docs"
    write(lib / "convlens" / "__init__.py", '_FUNCTIONS = {"gradcam": "cam"}\n')
    write(lib / "convlens" / "cam.py", '__all__ = ["gradcam", "guided_gradcam"]\n')
    write(lib / "convlens" / "plot.py", '__all__ = ("heatmap",)\n')
    write(lib / "convlens" / "hooks.py", '__all__ = ["capture"]\n')
    write(lib / "convlens_course" / "lesson.py", '__all__ = ["setup", "show", "DPI"]\n')
    write(docs / "library" / "attribution.md", "# A\n\n::: convlens.cam\n")
    write(docs / "library" / "misc.md", "# M\n\n::: convlens.plot\n\n::: convlens.hooks\n")
    write(docs / "library" / "runtime.md",
          "::: convlens_course.lesson\n    options:\n      members: [setup, show]\n")
    return SimpleNamespace(lib=lib, docs=docs, known=libref.catalog(docs, lib))


def test_catalog_holds_each_modules_public_names_on_its_page(project):
    known = project.known
    assert known.pages["convlens.cam.gradcam"] == "library/attribution.md"
    assert known.pages["convlens.plot.heatmap"] == "library/misc.md"
    assert known.resolve("convlens.gradcam") == "convlens.cam.gradcam"  # the lazy name
    assert known.resolve("convlens.cam.private") is None
    assert known.resolve_prefix("convlens.cam.gradcam.__doc__") == "convlens.cam.gradcam"
    assert "convlens.cam" in known.modules
    # only the members a page renders
    assert "convlens_course.lesson.setup" in known.pages
    assert "convlens_course.lesson.DPI" not in known.pages


def test_a_documented_module_without_all_is_refused(project):
    write(project.lib / "convlens" / "bare.py", "def f(): pass\n")
    write(project.docs / "library" / "bare.md", "::: convlens.bare\n")
    with pytest.raises(ValueError, match=r"convlens.bare, which has no __all__"):
        libref.catalog(project.docs, project.lib)


LESSON = '''\
# %% [markdown]
# # A lesson: `convlens.cam.gradcam` is named here, in a comment, and does not count

# %%
import convlens
from convlens import plot
from convlens.hooks import capture as grab
from convlens_course import lesson
import convlens.cam as cams

ctx = lesson.setup()
heat = plot.heatmap(convlens.gradcam(model, x, 0, "layer"))
with grab(model, "layer") as records:
    pass
ctx.layers["middle"]  # not ours
cams.guided_gradcam
convlens.plot  # a module: not a function it uses

# %%
%matplotlib inline
'''


def test_lesson_uses_follow_every_kind_of_import_in_order_of_first_use(project):
    assert libref.lesson_uses(LESSON, project.known) == [
        "convlens_course.lesson.setup", "convlens.plot.heatmap", "convlens.cam.gradcam",
        "convlens.hooks.capture", "convlens.cam.guided_gradcam"]


def test_prose_and_code_link_to_entries(project):
    names = libref.bindings(libref.parse_lesson(LESSON))

    def resolve(dotted, bare):
        full = project.known.resolve(libref.expand(dotted, {"convlens": "convlens"} | names))
        return f"ref#{full}" if full and not (bare and full in project.known.modules) else None

    html = ('<p><code>convlens.gradcam(model, x, target, layer)</code> and '
            '<code>grab</code>, not <code>ctx.layers</code> nor <code>plot</code>; '
            '<a href="x"><code>convlens.gradcam</code></a> is already a link.</p>'
            '<pre><code>convlens.gradcam</code></pre>')
    linked = libref.link_prose(html, resolve)
    assert '<a href="ref#convlens.cam.gradcam"><code>convlens.gradcam(model' in linked
    assert '<a href="ref#convlens.hooks.capture"><code>grab</code></a>' in linked
    assert "<code>ctx.layers</code>" in linked and "<code>plot</code>;" in linked
    assert linked.count("ref#") == 2  # nothing inside <a> or <pre> changed

    code = ('<pre><span class="n">heat</span> <span class="o">=</span> '
            '<span class="n">plot</span><span class="o">.</span><span class="n">heatmap</span>'
            '<span class="p">(</span><span class="n">ctx</span><span class="o">.</span>'
            '<span class="n">image</span></pre>')
    linked = libref.link_code(code, resolve)
    assert ('<a href="ref#convlens.plot.heatmap" class="convlens-ref"><span class="n">plot'
            '</span><span class="o">.</span><span class="n">heatmap</span></a>') in linked
    assert linked.count("<a ") == 1


def test_blocks_after_headings_ids_and_roles():
    html = ('<h2 id="convlens.cam" class="doc">cam</h2><h3 id="convlens.cam.gradcam">'
            'g</h3><p>:func:<code>setup</code> and :class:<code>X</code></p>')
    out = libref.add_after_headings(html, {"convlens.cam.gradcam": "<p>TAUGHT</p>"})
    assert out.index("<p>TAUGHT</p>") == out.index("</h3>") + len("</h3>")
    assert libref.ids(out) == {"convlens.cam", "convlens.cam.gradcam"}
    assert libref.strip_roles(out).endswith("<p><code>setup</code> and <code>X</code></p>")


class Files:
    def __init__(self, urls):
        self.urls = urls

    def get_file_from_path(self, src):
        return SimpleNamespace(url=self.urls[src])


def page(src, url):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src), url=url, toc=[])  # no headings


def test_the_hook_links_lessons_and_entries_both_ways_and_checks_anchors(project, monkeypatch,
                                                                          caplog):
    write(project.docs / "build-info.json",
          '{"lessons": [{"slug": "08-cam", "number": 8, "title": "Grad-CAM"}]}')
    write(project.docs / "lessons" / "08-cam.py", LESSON)
    write(project.docs / "lessons" / "08-cam.ipynb", "{}")
    monkeypatch.setattr(mkdocs_hooks, "LIB", project.lib)
    mkdocs_hooks._state.clear()
    mkdocs_hooks._state.update(mkdocs_hooks.references(project.docs), linked={}, found={})
    files = Files({"lessons/08-cam.ipynb": "lessons/08-cam/",
                   "library/attribution.md": "library/attribution/",
                   "library/misc.md": "library/misc/", "library/runtime.md": "library/runtime/"})

    lesson_html = mkdocs_hooks.on_page_content("<p><code>convlens.gradcam</code></p>",
                                               page("lessons/08-cam.ipynb", "lessons/08-cam/"),
                                               {}, files)
    assert ('<a href="../../library/attribution/#convlens.cam.gradcam"><code>convlens.gradcam'
            in lesson_html)
    box = lesson_html[lesson_html.index("convlens-library-used"):]
    assert "#convlens.plot.heatmap" in box and "#convlens.hooks.capture" in box
    assert "convlens_course" not in box  # the runtime is not the library

    entry = mkdocs_hooks.on_page_content(
        '<h3 id="convlens.cam.gradcam">gradcam</h3>',
        page("library/attribution.md", "library/attribution/"), {}, files)
    assert ('<p class="convlens-taught"><strong>Taught in</strong> '
            '<a href="../../lessons/08-cam/">8. Grad-CAM</a></p>') in entry

    # the lesson linked to #convlens.cam.guided_gradcam, which this page lacks
    with caplog.at_level("WARNING"):
        mkdocs_hooks.on_post_build({})
    assert "library/attribution.md#convlens.cam.guided_gradcam" in caplog.text
    mkdocs_hooks._state.clear()


def test_the_course_lessons_use_documented_library_functions():
    """Against the real lessons and Library pages: every lesson's code reaches at least one
    documented convlens function, so each lesson page gets its list of links."""
    known = libref.catalog(ROOT / "site_assets", ROOT / "lib")
    for lesson in keys.find_lessons(ROOT / "lessons"):
        uses = libref.lesson_uses(lesson.read_text(encoding="utf-8"), known)
        assert any(name.startswith("convlens.") for name in uses), lesson.name
