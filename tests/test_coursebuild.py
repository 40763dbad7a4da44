"""The lesson pipeline (coursebuild) on tiny throwaway lessons: no model, a second a kernel.

Every test builds into its own tmp folder with its own cache. The ``convlens`` source tree
is replaced by a fake one (so editing it is safe) and the weights identity by a constant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from convlens_course.protocol import EXPLORER_SCHEMA
from coursebuild import catalog, execute, keys, mkdocs_hooks, prose
from coursebuild import pipeline as cb
from coursebuild.pipeline import BuildFailed, build, main

ROOT = Path(__file__).resolve().parents[1]

HELLO = '''\
# %% [markdown]
# # Hello
# Inline math $a^2 + b^2$ and a display:
# $$ y = \\sum_i w_i x_i $$

# %%
import os, sys
print("hello from", sys.executable)
print(os.environ["CONVLENS_MODEL"], os.environ["CONVLENS_DEVICE"], os.environ["CONVLENS_SEED"])

# %%
import matplotlib
import matplotlib.pyplot as plt
print("backend", matplotlib.get_backend())
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [1, 0])
plt.show()
'''

SECOND = '''\
# %% [markdown]
# # Grad-CAM, in miniature
# Nothing to compute: $\\alpha_k^c$ is a mean of gradients.

# %%
answer = 6 * 7
answer
'''

BOOM = '''\
# %% [markdown]
# # Boom

# %%
x = 1

# %%
y = x / 0  # the failing line
z = 2
'''


class Project:
    """A throwaway course: lessons/, a fake convlens/, site_assets/, cache and output."""

    def __init__(self, root: Path):
        self.root = root
        self.lessons = root / "lessons"
        self.lib = root / "fakelib" / "convlens"
        self.assets = root / "site_assets"
        self.cache = root / ".cache" / "lessons"
        self.out = root / "build" / "docs"
        self.lessons.mkdir()
        self.lib.mkdir(parents=True)
        (self.lib / "__init__.py").write_text('"""fake convlens"""\n')
        (self.assets / "javascripts").mkdir(parents=True)
        (self.assets / "index.md").write_text("# Home\n\n[Hello](lessons/01-hello.ipynb)\n")
        (self.assets / "references.md").write_text("# References\n")
        (self.assets / "javascripts" / "mathjax.js").write_text("// config\n")
        self.write("01-hello", HELLO)
        self.write("02-grad-cam", SECOND)
        self.runs: list[str] = []  # lessons whose kernel was started, in order

    def write(self, slug: str, text: str) -> Path:
        path = self.lessons / f"{slug}.py"
        path.write_text(text)
        return path

    def build(self, **options):
        options = {"lessons_dir": self.lessons, "out": self.out, "cache": self.cache,
                   "assets": self.assets, "device": "cpu", "log": lambda *a, **k: None,
                   **options}
        return {r.slug: r.cache for r in build(**options)}

    def entries(self, slug: str) -> list[Path]:
        folder = self.cache / slug
        return sorted(folder.iterdir()) if folder.is_dir() else []


def isolate(p: Project, monkeypatch) -> Project:
    """Key on ``p``'s fake library and a fixed identity of the registry weights (a
    ``weights`` file is still hashed); count kernel starts."""
    monkeypatch.setattr(keys, "source_trees", lambda: {
        "convlens": p.lib, "coursebuild": ROOT / "lib" / "coursebuild"})
    monkeypatch.setattr(keys, "weights_identity", lambda model, weights, digest, memo=None:
                        keys.file_digest(weights) if weights else "w-" + model)
    real_run = execute.run_notebook

    def counting_run(lesson, nb, **kwargs):
        p.runs.append(Path(lesson).stem)
        return real_run(lesson, nb, **kwargs)

    monkeypatch.setattr(execute, "run_notebook", counting_run)
    return p


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project with an empty cache."""
    return isolate(Project(tmp_path), monkeypatch)


@pytest.fixture(scope="module")
def template_cache(tmp_path_factory):
    """The cache of one full build of the two standard lessons, made once. The key depends
    on the library's relative paths and bytes, not its location, so every project hits it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        p = isolate(Project(tmp_path_factory.mktemp("template")), monkeypatch)
        p.build()
    return p.cache


@pytest.fixture
def warm(project, template_cache):
    """A project whose cache already holds both lessons, and a first build that hit it."""
    shutil.copytree(template_cache, project.cache)
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit"}
    assert project.runs == []
    return project


def text(output: dict) -> str:
    value = output.get("text", "")
    return "".join(value) if isinstance(value, list) else value


def outputs(notebook: Path) -> list[dict]:
    nb = json.loads(notebook.read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]


def test_first_run_executes_second_run_hits_without_a_kernel(project):
    assert project.build() == {"01-hello": "miss", "02-grad-cam": "miss"}
    assert project.runs == ["01-hello", "02-grad-cam"]

    [entry] = project.entries("01-hello")
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["key"] == entry.name and manifest["cells"] == 3
    assert manifest["device"] == "cpu" and manifest["seconds"] > 0
    assert manifest["inputs"]["weights"] == "w-efficientnet_lite0"

    docs = project.out
    for rel in ("index.md", "references.md", "javascripts/mathjax.js", "build.md",
                "build-info.json", "lessons/01-hello.ipynb", "lessons/01-hello/01-hello.py",
                "lessons/01-hello/01-hello.ipynb", "lessons/02-grad-cam.ipynb",
                "lessons/02-grad-cam/02-grad-cam.py", "lessons/02-grad-cam/02-grad-cam.ipynb",
                "javascripts/vendor/mathjax/tex-svg-full.js"):
        assert (docs / rel).is_file(), rel
    assert (docs / "lessons/01-hello/01-hello.py").read_text() == HELLO
    assert (docs / "javascripts/explorers/schema.json").read_bytes() == EXPLORER_SCHEMA.read_bytes()
    info = json.loads((docs / "build-info.json").read_text())
    assert [r["cache"] for r in info["lessons"]] == ["miss", "miss"]
    assert info["device"] == "cpu"

    # The kernel is this interpreter, gets the build's settings and the inline backend.
    texts = "".join(text(o) for o in outputs(docs / "lessons/01-hello.ipynb"))
    assert f"hello from {sys.executable}\n" in texts
    assert "efficientnet_lite0 cpu 0\n" in texts
    assert "backend_inline" in texts
    # the figure: embedded in the download, a file beside the page
    assert any("image/png" in o.get("data", {})
               for o in outputs(docs / "lessons/01-hello/01-hello.ipynb"))
    page = json.dumps(outputs(docs / "lessons/01-hello.ipynb"))
    assert '<img src=\\"cell-3-1.png\\"' in page and "image/png" not in page
    assert (docs / "lessons/01-hello/cell-3-1.png").is_file()

    page = (docs / "build.md").read_bytes()
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit"}
    assert project.runs == ["01-hello", "02-grad-cam"]  # no kernel started
    info = json.loads((docs / "build-info.json").read_text())
    assert [r["cache"] for r in info["lessons"]] == ["hit", "hit"]
    assert (docs / "build.md").read_bytes() == page  # the page holds only cache-stable facts


def test_editing_one_lesson_reruns_only_that_one(warm):
    project = warm
    project.write("02-grad-cam", SECOND + "\n# %%\nprint('edited')\n")
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "miss"}
    assert project.runs == ["02-grad-cam"]
    assert "edited" in json.dumps(outputs(project.out / "lessons/02-grad-cam.ipynb"))


def test_library_change_reruns_every_lesson(warm):
    project = warm
    (project.lib / "__init__.py").write_text('"""fake convlens, edited"""\n')
    assert project.build() == {"01-hello": "miss", "02-grad-cam": "miss"}


def test_any_library_file_is_in_every_key(warm):
    """The whole package is hashed: a module no lesson imports still re-runs them all."""
    (warm.lib / "unused.py").write_text("import convlens.other\n")
    assert warm.build() == {"01-hello": "miss", "02-grad-cam": "miss"}


def test_force_reruns_all_and_only_restricts(warm):
    project = warm
    assert project.build(force=True) == {"01-hello": "miss", "02-grad-cam": "miss"}
    assert project.build(force=True, only=["02"]) == {"01-hello": "hit", "02-grad-cam": "miss"}
    assert project.runs == ["01-hello", "02-grad-cam", "02-grad-cam"]
    with pytest.raises(ValueError, match="matches no lesson"):
        project.build(only=["99-nothing"])


def test_only_leaves_other_lessons_alone(project):
    assert project.build(only=["hello"]) == {"01-hello": "miss", "02-grad-cam": "skipped"}
    assert not (project.out / "lessons/02-grad-cam.ipynb").exists()
    project.build()
    project.write("02-grad-cam", SECOND + "\n# %%\n1\n")  # changed, but not selected
    assert project.build(only=["01-hello"]) == {"01-hello": "hit", "02-grad-cam": "skipped"}
    assert (project.out / "lessons/02-grad-cam.ipynb").exists()  # kept, not deleted


def test_key_ignores_mtimes(warm):
    project = warm
    for path in [*project.lessons.iterdir(), *project.lib.rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit"}


def test_failing_lesson_names_file_and_cell_and_caches_nothing(warm, capsys):
    project = warm
    project.write("03-boom", BOOM)
    with pytest.raises(BuildFailed) as failure:
        project.build()
    message = str(failure.value)
    assert "03-boom.py: cell 3, line 8 failed" in message
    assert "| y = x / 0  # the failing line" in message
    assert "ZeroDivisionError: division by zero" in message
    assert len(message.splitlines()) < 15  # a short report, not a traceback
    context = [line for line in message.splitlines() if line.startswith("  . ")]
    assert context and all(len(line) > 6 for line in context)  # whole lines of the traceback
    assert project.entries("03-boom") == []  # no entry, no leftover temporary folder
    assert not (project.out / "lessons/03-boom.ipynb").exists()
    info = json.loads((project.out / "build-info.json").read_text())
    assert [r["cache"] for r in info["lessons"]] == ["hit", "hit", "failed"]

    # The command line exits non-zero with the same short report on stderr.
    argv = ["--lessons-dir", str(project.lessons), "--out", str(project.out),
            "--cache", str(project.cache), "--assets", str(project.assets), "--device", "cpu"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "03-boom.py: cell 3, line 8 failed" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "01-hello     hit" in captured.out  # the summary table


def test_failure_removes_stale_output_of_that_lesson(warm):
    project = warm
    project.write("02-grad-cam", BOOM)
    with pytest.raises(BuildFailed, match="02-grad-cam.py: cell 3"):
        project.build()
    assert not (project.out / "lessons/02-grad-cam.ipynb").exists()  # no stale figures
    assert (project.out / "lessons/01-hello.ipynb").exists()


def test_interrupted_write_leaves_no_entry(project, monkeypatch):
    import nbformat

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nbformat, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        project.build(only=["01"])
    assert project.entries("01-hello") == []
    monkeypatch.undo()


def test_stale_docs_are_removed(warm):
    project = warm
    (project.out / "lessons/09-gone.ipynb").write_text("{}")
    (project.out / "old" / "page.md").parent.mkdir()
    (project.out / "old" / "page.md").write_text("# old\n")
    (project.lessons / "02-grad-cam.py").unlink()
    (project.assets / "references.md").unlink()
    assert project.build() == {"01-hello": "hit"}
    left = sorted(p.relative_to(project.out).as_posix() for p in project.out.rglob("*"))
    assert left == ["build-info.json", "build.md", "index.md", "javascripts",
                    "javascripts/explorers", "javascripts/explorers/schema.json",
                    "javascripts/mathjax.js", "javascripts/vendor",
                    "javascripts/vendor/mathjax", "javascripts/vendor/mathjax/tex-svg-full.js",
                    "lessons", "lessons/01-hello", "lessons/01-hello.ipynb",
                    "lessons/01-hello/01-hello.ipynb", "lessons/01-hello/01-hello.py",
                    "lessons/01-hello/cell-3-1.png"]


def test_parallel_jobs(project):
    assert project.build(jobs=2) == {"01-hello": "miss", "02-grad-cam": "miss"}
    assert sorted(project.runs) == ["01-hello", "02-grad-cam"]


@pytest.mark.slow
def test_show_png_is_byte_identical_across_runs(project):
    """The documented figure path (convlens_course.lesson.show) gives the same bytes twice."""
    pytest.importorskip("convlens_course.lesson")
    project.write("03-figure", textwrap.dedent('''\
        # %%
        import numpy as np
        import matplotlib.pyplot as plt
        from convlens_course import lesson
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.imshow(np.random.default_rng(0).random((8, 8)), cmap="viridis")
        ax.set_title("noise")
        lesson.show(fig, "random pixels")
        '''))
    files = ("lessons/03-figure.ipynb", "lessons/03-figure/03-figure.ipynb",
             "lessons/03-figure/figure-1.png")
    project.build(only=["03"])
    first = [(project.out / f).read_bytes() for f in files]
    project.build(only=["03"], force=True)
    assert project.runs == ["03-figure", "03-figure"]
    assert [(project.out / f).read_bytes() for f in files] == first
    pngs = [o["data"]["image/png"] for o in outputs(project.out / files[1])
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and base64.b64decode(pngs[0]) == first[2]


COMMON = {"trees": {"convlens": "a", "coursebuild": "b"}, "model": "m", "weights": "w",
          "device": "cpu", "seed": 0, "versions": {"torch": "2"}}


def test_key_inputs():
    common = {"trees": {"convlens": "a", "coursebuild": "b"}, "model": "m", "weights": "w",
              "device": "cpu", "seed": 0, "versions": {"torch": "2"}}
    base = keys.cache_key({"lesson": "01-a.py", "source": "s", **common})
    for field, value in [("model", "vgg16"), ("weights", "w2"), ("device", "cuda"),
                         ("seed", 1), ("versions", {"torch": "3"}),
                         ("trees", {"convlens": "a2", "coursebuild": "b"})]:
        changed = keys.cache_key({"lesson": "01-a.py", "source": "s", **common, field: value})
        assert changed != base, field
    assert keys.cache_key({"lesson": "01-a.py", "source": "s", **common}) == base


def test_tree_digest_covers_paths_and_bytes_not_mtimes(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    first = keys.tree_digest(tmp_path / "pkg")
    os.utime(tmp_path / "pkg" / "a.py", (0, 0))
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert keys.tree_digest(tmp_path / "pkg") == first
    (tmp_path / "pkg" / "a.py").rename(tmp_path / "pkg" / "b.py")
    assert keys.tree_digest(tmp_path / "pkg") != first


def test_lessons_are_found_in_course_order(tmp_path):
    for name in ("10-last.py", "02-b.py", "01-a.py", "notes.py", "1-bad.py", "03-c.ipynb"):
        (tmp_path / name).write_text("")
    assert [p.name for p in keys.find_lessons(tmp_path)] == ["01-a.py", "02-b.py", "10-last.py"]


def test_weights_identity_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"1234")
    calls = []
    fake = types.ModuleType("convlens.models")
    fake.weights_path = lambda name: weights
    fake.weights_identity = lambda name, chosen=None: calls.append(name) or f"h{weights.read_bytes()}"
    monkeypatch.setitem(sys.modules, "convlens", types.ModuleType("convlens"))
    monkeypatch.setitem(sys.modules, "convlens.models", fake)
    monkeypatch.delenv("CONVLENS_WEIGHTS", raising=False)
    memo = tmp_path / "memo.json"
    first = keys.weights_identity("m", None, "digest", memo)
    assert keys.weights_identity("m", None, "digest", memo) == first and calls == ["m"]
    keys.weights_identity("m", None, "other library", memo)  # library changed: asked again
    weights.write_bytes(b"123456")  # new file: asked again, new answer
    assert keys.weights_identity("m", None, "digest", memo) != first
    assert len(calls) == 3
    # A --weights file is hashed here, without the library; remembered until it changes.
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"abc")
    assert keys.weights_identity("m", str(mine), "digest", memo) == hashlib.sha256(
        b"abc").hexdigest()
    mine.write_bytes(b"abcd")
    assert keys.weights_identity("m", str(mine), "digest", memo) == hashlib.sha256(
        b"abcd").hexdigest()
    assert len(calls) == 3


def test_cli_help_runs_without_the_library():
    result = subprocess.run([sys.executable, "-m", "coursebuild", "--help"],
                            capture_output=True, text=True, check=True)
    for option in ("--model", "--device", "--seed", "--force", "--only", "--timeout",
                   "--jobs", "--lessons-dir", "--out"):
        assert option in result.stdout


def test_default_jobs():
    assert cb.default_jobs("cuda") == 1
    assert cb.default_jobs("cpu") >= 1


def test_interrupting_a_running_lesson_stops_its_kernel_and_caches_nothing(project):
    project.write("03-slow", "# %%\nimport time\ntime.sleep(120)\n")
    timer = threading.Timer(4.0, execute.STOP.set)  # what Ctrl-C does with --jobs > 1
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            project.build(only=["03"])
    finally:
        timer.cancel()
        execute.STOP.clear()
    assert time.monotonic() - start < 60
    assert project.entries("03-slow") == []


def test_old_entries_are_pruned(warm):
    project = warm
    for seed in range(1, 4):
        project.build(only=["02"], seed=seed)
    assert len(project.entries("02-grad-cam")) == 4  # seeds 0..3
    execute.prune(project.cache, "02-grad-cam", project.entries("02-grad-cam")[0].name, keep=2)
    assert len(project.entries("02-grad-cam")) == 2


def test_huge_text_output_is_reported(project):
    project.write("03-bytes", "# %%\nb'x' * 60_000\n")
    lines = []
    project.build(only=["03"], log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert any("03-bytes.py: cell 1 outputs" in line for line in lines)


# ---------------------------------------------------------------------------------------
# Values and claims in prose: convlens_course.lesson.record / expect, filled in by the build

CLAIMS = '''\
# %% [markdown]
# # Claims
# **Summary.** A lesson whose text states a number and a comparison.
#
# The ratio is {{ ratio }} and the count is {{count}}.

# %%
from convlens_course import lesson
ratio = lesson.record("ratio", 0.3312, "{:.1%}")
count = lesson.record("count", 12)

# %% [markdown]
# Batching is about as fast as one photo at a time (a ratio close to 1).

# %%
lesson.expect(abs(ratio - 1) < 0.2, "batching is about as fast as one photo at a time", ratio)
print("after the check")
'''


def notebook_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_a_failed_claim_breaks_the_default_build_with_lesson_cell_claim_and_value(project):
    project.write("03-claims", CLAIMS)
    with pytest.raises(BuildFailed) as failure:
        project.build(only=["03"])
    message = str(failure.value)
    assert "03-claims.py: cell 4, line 16 failed" in message
    assert "ClaimFailed" in message
    assert "'batching is about as fast as one photo at a time'" in message
    assert "model efficientnet_lite0, device cpu: measured 0.3312" in message
    assert project.entries("03-claims") == []


def test_a_failed_claim_is_a_note_on_another_model_and_the_build_lists_it(project):
    project.write("03-claims", CLAIMS)
    lines = []
    assert project.build(only=["03"], model="alexnet",
                         log=lambda *a, **k: lines.append(" ".join(map(str, a))))["03-claims"] \
        == "miss"
    cells = notebook_cells(project.out / "lessons/03-claims/03-claims.ipynb")  # the download
    html = [o["data"]["text/html"] for o in cells[3]["outputs"] if "text/html" in o.get("data", {})]
    [box] = html
    box = "".join(box)
    assert '<div class="admonition warning' in box
    assert "batching is about as fast as one photo at a time" in box
    assert "does not hold for this model (model alexnet, device cpu): measured 0.3312" in box
    assert "after the check" in json.dumps(cells[3]["outputs"])  # the cell went on
    assert prose.EXPECT_MIME not in json.dumps(cells)  # private outputs stripped
    # The summary ends with the note; build-info.json and the Build page list it.
    lines = "\n".join(lines).splitlines()
    assert lines[-1] == ("  03-claims, cell 4: batching is about as fast as one photo at a "
                         "time (measured 0.3312)")
    assert lines[-2].startswith("notes: 1 statement(s) of the text do not hold for model alexnet")
    info = json.loads((project.out / "build-info.json").read_text())
    [lesson] = [r for r in info["lessons"] if r["slug"] == "03-claims"]
    assert lesson["checks"] == 1 and lesson["records"] == 2
    assert lesson["notes"] == [{"cell": 4, "claim": "batching is about as fast as one photo "
                                "at a time", "value": "0.3312", "model": "alexnet",
                                "device": "cpu"}]
    assert "| [03-claims](lessons/03-claims.ipynb) | 4 | batching is about as fast" in \
        (project.out / "build.md").read_text()
    # A cache hit reports the same note.
    again = []
    assert project.build(only=["03"], model="alexnet", log=lambda *a, **k: again.append(
        " ".join(map(str, a))))["03-claims"] == "hit"
    assert again[-1].splitlines()[-1].startswith("  03-claims, cell 4:")


def test_placeholders_are_filled_in_the_notebook_and_records_removed(project):
    project.write("03-claims", CLAIMS.replace("abs(ratio - 1) < 0.2", "ratio < 1"))
    project.build(only=["03"])
    cells = notebook_cells(project.out / "lessons/03-claims/03-claims.ipynb")  # the download
    first = "".join(cells[0]["source"])
    assert "The ratio is 33.1% and the count is 12." in first
    assert "{{" not in json.dumps(cells)
    assert cells[1]["outputs"] == []  # the two records leave no output
    assert [text(o) for o in cells[3]["outputs"]] == ["after the check\n"]
    # the source download keeps the placeholders; the notebook download has them filled in
    assert "{{ ratio }}" in (project.out / "lessons/03-claims/03-claims.py").read_text()
    page = notebook_cells(project.out / "lessons/03-claims.ipynb")
    assert "The ratio is 33.1% and the count is 12." in "".join(page[0]["source"])
    manifest = json.loads((project.entries("03-claims")[0] / "manifest.json").read_text())
    assert manifest["records"] == {"ratio": "33.1%", "count": "12"}
    assert manifest["checks"] == 1 and manifest["notes"] == []


def test_an_unknown_placeholder_fails_naming_the_lesson_and_the_name(project):
    project.write("03-claims", CLAIMS.replace("{{count}}", "{{ counts }}"))
    with pytest.raises(BuildFailed) as failure:
        project.build(only=["03"], model="alexnet")
    message = str(failure.value)
    assert "03-claims.py: the prose does not match the code" in message
    assert "markdown cell 1 uses {{ counts }}, which no code cell records " \
        "(recorded: count, ratio)" in message
    assert project.entries("03-claims") == []


def test_a_name_recorded_twice_with_different_values_fails(project):
    project.write("03-twice", "# %%\nfrom convlens_course import lesson\nlesson.record('n', 1)\n"
                  "lesson.record('n', 1)\n\n# %%\nlesson.record('n', 2)\n")
    with pytest.raises(BuildFailed, match=r"\{\{ n \}\} is recorded twice with different "
                       r"values: '1' \(cell 1\) and '2' \(cell 2\)"):
        project.build(only=["03"])


# ---------------------------------------------------------------------------------------
# One list of lessons: nav and home page from lessons/


def test_a_new_lesson_file_appears_in_the_nav_and_on_the_home_page(warm):
    project = warm
    (project.assets / "index.md").write_text("# Home\n\n<!-- lessons -->\n\nThe end.\n")
    project.write("03-new-thing", "# %% [markdown]\n# # A new thing\n#\n"
                  "# **Summary.** What the new thing computes, and\n# why it matters.\n#\n"
                  "# Text.\n\n# %%\n1\n")
    project.build()
    home = (project.out / "index.md").read_text()
    assert home == ("# Home\n\n1. [Hello](lessons/01-hello.ipynb)\n"
                    "2. [Grad-CAM, in miniature](lessons/02-grad-cam.ipynb)\n"
                    "3. [A new thing](lessons/03-new-thing.ipynb): what the new thing "
                    "computes, and why it matters.\n\nThe end.\n")
    config = {"docs_dir": str(project.out), "nav": [
        {"Home": "index.md"}, {"Lessons": "build-info.json"}, {"Build": "build.md"}]}
    nav = mkdocs_hooks.on_config(config)["nav"]
    assert nav[1] == {"Lessons": [{"1. Hello": "lessons/01-hello.ipynb"},
                                  {"2. Grad-CAM, in miniature": "lessons/02-grad-cam.ipynb"},
                                  {"3. A new thing": "lessons/03-new-thing.ipynb"}]}
    assert nav[0] == {"Home": "index.md"} and nav[2] == {"Build": "build.md"}


def test_every_course_lesson_declares_title_and_summary():
    for lesson in keys.find_lessons(ROOT / "lessons"):
        about = catalog.describe(lesson)
        assert about["problems"] == [], lesson
        assert about["summary"].endswith(".") and len(about["summary"]) < 200, lesson


def test_summary_case_on_the_home_page():
    entry = {"number": 6, "slug": "06-s", "title": "S"}
    assert catalog.home_list([{**entry, "summary": "The gradient."}]) == \
        "6. [S](lessons/06-s.ipynb): the gradient."
    assert catalog.home_list([{**entry, "summary": "A map."}]).endswith(": a map.")
    assert catalog.home_list([{**entry, "summary": "SmoothGrad works."}]).endswith(
        ": SmoothGrad works.")
    assert catalog.home_list([{**entry, "summary": "Grad-CAM maps."}]).endswith(
        ": Grad-CAM maps.")


# ---------------------------------------------------------------------------------------
# The model settings: --model SPEC, --weights, --labels, --layer; --device cuda checked once

ENV = '''\
# %%
import os
for name in ("CONVLENS_MODEL", "CONVLENS_WEIGHTS", "CONVLENS_LABELS", "CONVLENS_LAYERS"):
    print(name, os.environ.get(name))
'''


def test_model_settings_reach_the_kernel_and_the_key(project, tmp_path):
    weights, labels = tmp_path / "w.pt", tmp_path / "labels.txt"
    weights.write_bytes(b"w")
    labels.write_text("a\nb\n")
    project.write("03-env", ENV)
    project.build(only=["03"], model="resnet18", weights=str(weights), labels=str(labels),
                  layers=["last_spatial=layer4", "middle=layer2"])
    printed = "".join(text(o) for o in outputs(project.out / "lessons/03-env.ipynb"))
    assert printed == (f"CONVLENS_MODEL resnet18\nCONVLENS_WEIGHTS {weights.resolve()}\n"
                       f"CONVLENS_LABELS {labels.resolve()}\n"
                       "CONVLENS_LAYERS last_spatial=layer4,middle=layer2\n")
    [entry] = project.entries("03-env")
    inputs = json.loads((entry / "manifest.json").read_text())["inputs"]
    assert inputs["labels"] == hashlib.sha256(b"a\nb\n").hexdigest()
    assert inputs["layers"] == "last_spatial=layer4,middle=layer2"
    assert inputs["weights"] == hashlib.sha256(b"w").hexdigest()
    key = entry.name

    def key_with(**changes):
        settings = {"model": "resnet18", "weights": str(weights), "labels": str(labels),
                    "layers": ["last_spatial=layer4", "middle=layer2"], **changes}
        s = cb.ModelSettings.of(**settings)
        common = keys.common_inputs(s.model, "cpu", 0, weights=s.weights, labels=s.labels,
                                    layers=s.layers)
        return keys.cache_key(keys.lesson_inputs(project.lessons / "03-env.py", common))

    monkey_free = key_with()
    assert monkey_free == key
    assert key_with(layers=["last_conv=layer3"]) != key
    labels.write_text("a\nc\n")
    assert key_with() != key
    labels.write_text("a\nb\n")
    weights.write_bytes(b"w2")
    assert key_with() != key


def test_a_model_from_a_file_is_keyed_on_its_source(tmp_path, monkeypatch):
    net = tmp_path / "mynet.py"
    net.write_text("def build():\n    return None\n")
    spec = f"{net}:build"
    first = keys.common_inputs(spec, "cpu", 0)
    assert first["weights"] == "from-source"
    assert first["model_source"] == hashlib.sha256(net.read_bytes()).hexdigest()
    net.write_text("def build():\n    return 1\n")
    assert keys.common_inputs(spec, "cpu", 0)["model_source"] != first["model_source"]
    # package.module:function: the module's file, found without importing it
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (tmp_path / "mypkg" / "nets.py").write_text("def build(): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert keys.model_source("mypkg.nets:build") == ("module", tmp_path / "mypkg" / "nets.py")
    assert "mypkg" not in sys.modules
    assert keys.model_source("torchvision:resnet18") == ("torchvision", None)
    assert keys.model_source("alexnet") == ("registry", None)
    for bad, why in [("nothere.py:f", "no file"), ("no_such_pkg_x.mod:f", "not found"),
                     ("mypkg.nets:", "expected PREFIX:NAME")]:
        with pytest.raises(ValueError, match=why):
            keys.model_source(bad)
    # a relative file spec reaches the kernel as an absolute path
    monkeypatch.chdir(tmp_path)
    assert cb.ModelSettings.of("mynet.py:build").model == f"{net}:build"


@pytest.mark.parametrize("argv, message", [
    (["--layer", "last_conv"], "expected ROLE=NAME"),
    (["--layer", "a=x", "--layer", "a=y"], "role 'a' given twice"),
    (["--weights", "/nonexistent/w.pt"], "--weights: no file"),
    (["--labels", "/nonexistent/l.txt"], "--labels: no file"),
])
def test_bad_model_settings_fail_before_any_lesson(project, capsys, argv, message):
    base = ["--lessons-dir", str(project.lessons), "--out", str(project.out),
            "--cache", str(project.cache), "--assets", str(project.assets), "--device", "cpu"]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err
    assert project.runs == []


def test_device_cuda_without_cuda_fails_once_before_any_lesson(project, capsys):
    if keys.cuda_available():
        pytest.skip("this machine has CUDA")
    argv = ["--lessons-dir", str(project.lessons), "--out", str(project.out),
            "--cache", str(project.cache), "--assets", str(project.assets), "--device", "cuda"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("--device cuda, but torch sees no CUDA device") == 1
    assert project.runs == [] and not project.out.exists()


def test_default_model_is_read_from_the_library_without_torch():
    from convlens import models

    assert keys.default_model() == models.DEFAULT_MODEL
    result = subprocess.run([sys.executable, "-c", "import sys; from coursebuild import keys; "
                             "print(keys.default_model(), 'torch' in sys.modules)"],
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "lib")})
    assert result.stdout.split() == [models.DEFAULT_MODEL, "False"]
