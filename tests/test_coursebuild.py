"""The lesson pipeline (coursebuild) on tiny throwaway lessons: no model, a second a kernel.

Every test builds into its own tmp folder with its own cache. A fake library package,
``lenslib``, lives in the project (on ``PYTHONPATH`` and ``sys.path``, so lessons import it
and the depfile finds it again), and the weights identity is a constant.
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
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from convlens_course import protocol
from convlens_course.protocol import EXPLORER_SCHEMA
from coursebuild import catalog, execute, keys, mkdocs_hooks, prose, serve
from coursebuild import pipeline as cb
from coursebuild.pipeline import BuildFailed, build, main

ROOT = Path(__file__).resolve().parents[1]
CHECK_SETTINGS = cb.check_settings

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
    """A throwaway course: lessons/, a fake library lenslib/, site_assets/, cache and output."""

    def __init__(self, root: Path):
        self.root = root
        self.lessons = root / "lessons"
        self.lib = root / "fakelib" / "lenslib"
        self.assets = root / "site_assets"
        self.cache = root / ".cache" / "lessons"
        self.out = root / "build" / "docs"
        self.lessons.mkdir()
        (self.lib / "data").mkdir(parents=True)
        (self.lib / "__init__.py").write_text('"""fake library"""\n')
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
        """The cache entries of ``slug`` (and anything else left in its folder)."""
        folder = self.cache / slug
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def manifest(self, slug: str) -> dict:
        [entry] = self.entries(slug)
        return manifest_of(entry)

    def info(self) -> dict:
        return json.loads((self.out / "build-info.json").read_text())

    def printed(self, slug: str) -> str:
        return "".join(text(o) for o in outputs(self.out / "lessons" / f"{slug}.ipynb"))


def manifest_of(entry: Path) -> dict:
    return json.loads(entry.read_text())["metadata"]["coursebuild"]


def isolate(p: Project, monkeypatch) -> Project:
    """Put ``p``'s fake library on the kernels' and the build's path; a fixed identity of
    the registry weights (a ``weights`` file is still hashed); count kernel starts."""
    fakelib = str(p.lib.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [fakelib, os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(fakelib)
    monkeypatch.setattr(keys, "weights_identity", lambda model, weights, digest, memo=None:
                        keys.file_digest(weights) if weights else "w-" + model)
    monkeypatch.setattr(cb, "check_settings", lambda settings: ())  # fake model names: no notes
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
    """The cache of one full build of the two standard lessons, made once. Keys and
    depfiles hold no location, so every project hits it."""
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
    manifest = manifest_of(entry)
    assert entry.name == f"{manifest['key']}.ipynb" and manifest["cells"] == 3
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


@pytest.mark.slow
def test_editing_one_lesson_reruns_only_that_one(warm):
    project = warm
    project.write("02-grad-cam", SECOND + "\n# %%\nprint('edited')\n")
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "miss"}
    assert project.runs == ["02-grad-cam"]
    assert "edited" in json.dumps(outputs(project.out / "lessons/02-grad-cam.ipynb"))


# ---------------------------------------------------------------------------------------
# --force publishes the fresh result; entries are replaced atomically (issue 28)

READS = '''\
# %% [markdown]
# # Reads a file

# %%
print("value:", open({path!r}).read())
'''


@pytest.mark.slow
def test_force_reruns_all_and_only_restricts(warm):
    project = warm
    before = {slug: project.manifest(slug)["created"] for slug in ("01-hello", "02-grad-cam")}
    assert project.build(force=True) == {"01-hello": "miss", "02-grad-cam": "miss"}
    after = {slug: project.manifest(slug)["created"] for slug in ("01-hello", "02-grad-cam")}
    assert all(after[slug] > before[slug] for slug in before)  # published, not thrown away
    assert project.build(force=True, only=["02"]) == {"01-hello": "hit", "02-grad-cam": "miss"}
    assert project.manifest("01-hello")["created"] == after["01-hello"]
    assert project.manifest("02-grad-cam")["created"] > after["02-grad-cam"]
    assert project.runs == ["01-hello", "02-grad-cam", "02-grad-cam"]
    with pytest.raises(ValueError, match="matches no lesson"):
        project.build(only=["99-nothing"])


def test_a_forced_run_publishes_its_fresh_output(project, tmp_path):
    """A lesson whose output changes between runs: --force puts the new output in the cache
    entry, in build/docs and in build-info.json, and the manifest's ``created`` changes."""
    value = tmp_path / "value.txt"  # outside the library: not in the depfile
    value.write_text("first")
    project.write("03-reads", READS.format(path=str(value)))
    assert project.build(only=["03"])["03-reads"] == "miss"
    old = project.manifest("03-reads")
    value.write_text("second")
    assert project.build(only=["03"])["03-reads"] == "hit"  # the key has not changed
    assert "value: first" in project.printed("03-reads")

    assert project.build(only=["03"], force=True)["03-reads"] == "miss"
    [entry] = project.entries("03-reads")  # replaced: one entry, no leftovers
    new = manifest_of(entry)
    assert new["key"] == old["key"] and new["created"] > old["created"]
    assert "value: second" in json.dumps(json.loads(entry.read_text())["cells"])
    assert "value: second" in project.printed("03-reads")
    [row] = [r for r in project.info()["lessons"] if r["slug"] == "03-reads"]
    assert row["cache"] == "miss" and row["executed_seconds"] == new["seconds"]
    assert project.build(only=["03"])["03-reads"] == "hit"
    assert "value: second" in project.printed("03-reads")


@pytest.mark.slow
def test_two_runs_racing_on_one_key_leave_one_complete_entry(project):
    """Two builds storing the same key at once, and a reader looking it up meanwhile: the
    reader sees no entry or a complete one, and one complete entry is left."""
    lesson = project.write("03-race", "# %%\nimport uuid\nprint('run', uuid.uuid4().hex)\n")
    inputs = keys.lesson_inputs(lesson, {"model": "m"})
    key = keys.cache_key(inputs)
    env = execute.kernel_env({}, "cpu", 0, 2)
    done, seen, errors = [], [], []

    def write():
        try:
            done.append(execute.execute(lesson, key, inputs, project.cache, env=env, timeout=60))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def read():
        while len(done) + len(errors) < 2:
            found = execute.lookup(project.cache, "03-race", key)
            if found is not None:
                seen.append((found.manifest["key"], len(found.notebook["cells"])))
            time.sleep(0.005)

    threads = [threading.Thread(target=write) for _ in range(2)]
    reader = threading.Thread(target=read)
    for thread in [*threads, reader]:
        thread.start()
    for thread in [*threads, reader]:
        thread.join(120)
    assert errors == [] and len(done) == 2
    [entry] = project.entries("03-race")  # no scratch folder, no second file
    left = execute.lookup(project.cache, "03-race", key)
    assert left is not None and left.path == entry
    printed = "".join(text(o) for o in left.notebook["cells"][0]["outputs"])
    runs = {"".join(text(o) for o in e.notebook["cells"][0]["outputs"]) for e in done}
    assert len(runs) == 2 and printed in runs  # the last run stored, complete
    assert set(seen) <= {(key, 1)}  # whatever the reader found was a complete entry


@pytest.mark.slow
def test_a_failing_run_removes_the_entry_of_its_key(project, tmp_path):
    """A forced run that fails leaves no older result to be published by the next build."""
    value = tmp_path / "value.txt"
    value.write_text("ok")
    project.write("03-flaky", READS.format(path=str(value))
                  + f"assert open({str(value)!r}).read() == 'ok'\n")
    project.build(only=["03"])
    value.write_text("broken")
    with pytest.raises(BuildFailed, match="AssertionError"):
        project.build(only=["03"], force=True)
    assert project.entries("03-flaky") == []
    assert not (project.out / "lessons/03-flaky.ipynb").exists()
    value.write_text("ok")
    assert project.build(only=["03"])["03-flaky"] == "miss"  # not a stale hit


# ---------------------------------------------------------------------------------------
# Depfile keys: a lesson re-runs when a file it imported or read changed (issue 23 item 4)

USES_A = '''\
# %%
from lenslib import a
print(a.TABLE)
'''

USES_B = '''\
# %%
import lenslib.b
print(lenslib.b.NAME)
'''


def library(project: Project) -> Project:
    """lenslib.a (which reads lenslib/data/table.txt) for lesson 03, lenslib.b for 04."""
    (project.lib / "a.py").write_text(
        "from pathlib import Path\n"
        "TABLE = (Path(__file__).parent / 'data' / 'table.txt').read_text()\n")
    (project.lib / "data" / "table.txt").write_text("1 2 3\n")
    (project.lib / "b.py").write_text("NAME = 'b'\n")
    project.write("03-uses-a", USES_A)
    project.write("04-uses-b", USES_B)
    return project


def test_the_depfile_lists_what_the_lesson_imported_and_read(warm):
    project = library(warm)
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit",
                               "03-uses-a": "miss", "04-uses-b": "miss"}
    deps = project.manifest("03-uses-a")["deps"]
    assert [(d.get("package"), d["path"]) for d in deps] == [
        ("lenslib", "lenslib/__init__.py"), ("lenslib", "lenslib/a.py"),
        ("lenslib", "lenslib/data/table.txt")]
    assert deps[1]["sha256"] == hashlib.sha256((project.lib / "a.py").read_bytes()).hexdigest()
    assert [d["path"] for d in project.manifest("04-uses-b")["deps"]] == [
        "lenslib/__init__.py", "lenslib/b.py"]
    assert project.manifest("01-hello")["deps"] == []  # matplotlib is site-packages
    # the probe leaves nothing in the page: no extra cell, no names
    cells = notebook_cells(project.out / "lessons/03-uses-a.ipynb")
    assert len(cells) == 1 and "_coursebuild_probe" not in json.dumps(cells)


@pytest.mark.slow
def test_editing_a_library_module_reruns_only_the_lessons_that_imported_it(warm):
    project = library(warm)
    project.build()
    project.runs.clear()
    with open(project.lib / "b.py", "a") as handle:
        handle.write("# one more line\n")
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit",
                               "03-uses-a": "hit", "04-uses-b": "miss"}
    (project.lib / "data" / "table.txt").write_text("4 5 6\n")  # data read by lenslib.a
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit",
                               "03-uses-a": "miss", "04-uses-b": "hit"}
    assert "4 5 6" in project.printed("03-uses-a")
    (project.lib / "__init__.py").write_text('"""fake library, edited"""\n')
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit",
                               "03-uses-a": "miss", "04-uses-b": "miss"}
    assert project.runs == ["04-uses-b", "03-uses-a", "03-uses-a", "04-uses-b"]


@pytest.mark.slow
def test_adding_a_file_no_lesson_imports_reruns_none(warm):
    project = library(warm)
    project.build()
    (project.lib / "c.py").write_text("import lenslib.nothing\n")
    (project.lib / "data" / "unused.txt").write_text("x\n")
    (project.lib.parent / "other.py").write_text("x = 1\n")
    assert set(project.build().values()) == {"hit"}


@pytest.mark.slow
def test_a_deleted_module_reruns_its_lessons(warm):
    project = library(warm)
    project.build()
    (project.lib / "b.py").unlink()
    with pytest.raises(BuildFailed, match="04-uses-b.py: cell 1"):
        project.build()


@pytest.mark.slow
def test_editing_a_helper_of_a_model_file_reruns(project, tmp_path):
    """``--model path/to/file.py:function``: the helper module that file imports is in the
    depfile (issue 29 item 3), with its absolute path (it is not importable by name here)."""
    models = tmp_path / "mymodels"
    models.mkdir()
    (models / "mynet.py").write_text(
        "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\nimport myhelper\n\n"
        "def build():\n    return myhelper.WIDTH\n")
    (models / "myhelper.py").write_text("WIDTH = 3\n")
    project.write("03-model", textwrap.dedent('''\
        # %%
        import importlib.util, os
        path, _, function = os.environ["CONVLENS_MODEL"].rpartition(":")
        spec = importlib.util.spec_from_file_location("_user_model", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # as convlens.models loads a file model
        print("width", getattr(module, function)())
        '''))
    model = f"{models / 'mynet.py'}:build"
    assert project.build(only=["03"], model=model)["03-model"] == "miss"
    deps = {d["path"] for d in project.manifest("03-model")["deps"]}
    assert deps == {str(models / "mynet.py"), str(models / "myhelper.py")}
    assert project.build(only=["03"], model=model)["03-model"] == "hit"
    (models / "myhelper.py").write_text("WIDTH = 4\n")
    assert project.build(only=["03"], model=model)["03-model"] == "miss"
    assert "width 4" in project.printed("03-model")


@pytest.mark.slow
def test_a_file_changed_while_the_lesson_ran_reruns_next_time(project):
    project = library(project)
    project.write("03-uses-a", USES_A + "\n# %%\nimport pathlib, lenslib\n"
                  "pathlib.Path(lenslib.__file__).with_name('a.py').touch()\n")
    assert project.build(only=["03"])["03-uses-a"] == "miss"
    deps = {d["path"]: d["sha256"] for d in project.manifest("03-uses-a")["deps"]}
    assert deps["lenslib/a.py"] == keys.CHANGED_DURING_RUN
    assert project.build(only=["03"])["03-uses-a"] == "miss"


@pytest.mark.slow
def test_only_leaves_other_lessons_alone(project):
    assert project.build(only=["hello"]) == {"01-hello": "miss", "02-grad-cam": "absent"}
    assert not (project.out / "lessons/02-grad-cam.ipynb").exists()
    project.build()
    project.write("02-grad-cam", SECOND + "\n# %%\n1\n")  # changed, but not selected
    assert project.build(only=["01-hello"]) == {"01-hello": "hit", "02-grad-cam": "kept"}
    assert (project.out / "lessons/02-grad-cam.ipynb").exists()  # kept, not deleted
    rows = {r["slug"]: r for r in project.info()["lessons"]}
    assert rows["02-grad-cam"]["settings"] == rows["01-hello"]["settings"] == \
        project.info()["settings"]
    assert "| [02-grad-cam](lessons/02-grad-cam.ipynb) |" in (project.out / "build.md").read_text()


def test_key_ignores_mtimes(warm):
    project = warm
    for path in [*project.lessons.iterdir(), *project.lib.rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert project.build() == {"01-hello": "hit", "02-grad-cam": "hit"}


@pytest.mark.slow
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


@pytest.mark.slow
def test_interrupted_write_leaves_no_entry(project, monkeypatch):
    import nbformat

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nbformat, "writes", interrupted)
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
    assert left == ["benchmarks.md", "build-info.json", "build.md", "index.md", "javascripts",
                    "javascripts/explorers", "javascripts/explorers/schema.json",
                    "javascripts/mathjax.js", "javascripts/vendor",
                    "javascripts/vendor/mathjax", "javascripts/vendor/mathjax/tex-svg-full.js",
                    "lessons", "lessons/01-hello", "lessons/01-hello.ipynb",
                    "lessons/01-hello/01-hello.ipynb", "lessons/01-hello/01-hello.py",
                    "lessons/01-hello/cell-3-1.png"]


@pytest.mark.slow
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
    common = {"model": "m", "model_source": None, "weights": "w", "labels": None,
              "layers": "", "preprocess": "", "strict": "", "device": "cpu", "seed": 0,
              "versions": {"torch": "2"}, "build": "b"}
    base = keys.cache_key({"lesson": "01-a.py", "code": "c", **common})
    for field, value in [("model", "vgg16"), ("weights", "w2"), ("device", "cuda"),
                         ("seed", 1), ("versions", {"torch": "3"}), ("labels", "l"),
                         ("layers", "middle=x"), ("preprocess", "crop=200"),
                         ("strict", "1"), ("model_source", "s"), ("build", "b2"),
                         ("code", "c2"), ("lesson", "01-b.py")]:
        changed = keys.cache_key({"lesson": "01-a.py", "code": "c", **common, field: value})
        assert changed != base, field
    assert keys.cache_key({"lesson": "01-a.py", "code": "c", **common}) == base
    assert set(keys.SETTINGS) == set(common) - {"build"}


def test_the_key_covers_code_cells_not_markdown(tmp_path):
    lesson = tmp_path / "01-a.py"
    lesson.write_text(CLAIMS)
    key = keys.cache_key(keys.lesson_inputs(lesson, {}))
    lesson.write_text(CLAIMS.replace("The ratio is", "Here the ratio is")
                      + "\n# %% [markdown]\n# One more paragraph.\n")
    assert keys.cache_key(keys.lesson_inputs(lesson, {})) == key
    lesson.write_text(CLAIMS.replace('print("after the check")', 'print("after")'))
    assert keys.cache_key(keys.lesson_inputs(lesson, {})) != key


def test_versions_cover_the_libraries_that_shape_outputs():
    found = keys.versions()
    for dist in ("pillow", "scipy", "scikit-image", "matplotlib", "torch", "jupytext"):
        assert found[dist] != "absent", dist
    assert set(keys.BUILD_FILES) <= {p.name for p in (ROOT / "lib/coursebuild").iterdir()}


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_old_entries_are_pruned(warm):
    project = warm
    for seed in range(1, 4):
        project.build(only=["02"], seed=seed)
    assert len(project.entries("02-grad-cam")) == 4  # seeds 0..3
    execute.prune(project.cache, "02-grad-cam", project.entries("02-grad-cam")[0].stem, keep=2)
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
    """The page notebook's cells, less the downloads box that assembly adds."""
    return [c for c in json.loads(path.read_text())["cells"] if c.get("id") != "convlens-downloads"]


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    manifest = project.manifest("03-claims")
    assert manifest["records"] == {"ratio": "33.1%", "count": "12"}
    assert manifest["checks"] == 1 and manifest["notes"] == []


@pytest.mark.slow
def test_an_unknown_placeholder_fails_naming_the_lesson_and_the_name(project):
    project.write("03-claims", CLAIMS.replace("{{count}}", "{{ counts }}"))
    with pytest.raises(BuildFailed) as failure:
        project.build(only=["03"], model="alexnet")
    message = str(failure.value)
    assert "03-claims.py: the prose does not match the code" in message
    assert "markdown cell 1 uses {{ counts }}, which no code cell records " \
        "(recorded: count, ratio)" in message
    assert project.entries("03-claims") == []


@pytest.mark.slow
def test_a_name_recorded_twice_with_different_values_fails(project):
    project.write("03-twice", "# %%\nfrom convlens_course import lesson\nlesson.record('n', 1)\n"
                  "lesson.record('n', 1)\n\n# %%\nlesson.record('n', 2)\n")
    with pytest.raises(BuildFailed, match=r"\{\{ n \}\} is recorded twice with different "
                       r"values: '1' \(cell 1\) and '2' \(cell 2\)"):
        project.build(only=["03"])


@pytest.mark.slow
def test_a_markdown_only_edit_refills_the_prose_without_a_kernel(project, monkeypatch):
    """The key covers code cells: fixing a sentence (or adding a paragraph) hits the entry,
    and the page is the new markdown refilled from the manifest, the notes renumbered."""
    project.write("03-claims", CLAIMS)
    assert project.build(only=["03"], model="alexnet")["03-claims"] == "miss"

    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel started")

    monkeypatch.setattr(execute, "run_notebook", no_kernel)
    edited = CLAIMS.replace("The ratio is {{ ratio }}", "Measured, the ratio is {{ ratio }}")
    edited = edited.replace("# %% [markdown]\n# Batching", "# %% [markdown]\n# A new paragraph "
                            "about {{ count }} photos.\n\n# %% [markdown]\n# Batching")
    project.write("03-claims", edited)
    assert project.build(only=["03"], model="alexnet")["03-claims"] == "hit"
    cells = notebook_cells(project.out / "lessons/03-claims.ipynb")
    assert "Measured, the ratio is 33.1% and the count is 12." in "".join(cells[0]["source"])
    assert "".join(cells[2]["source"]) == "A new paragraph about 12 photos."
    assert "after the check" in json.dumps(cells[4]["outputs"])  # the check's cell, moved
    assert [c["id"] for c in cells] == [f"cell-{n}" for n in range(1, 6)]
    [row] = [r for r in project.info()["lessons"] if r["slug"] == "03-claims"]
    assert row["cache"] == "hit" and row["cells"] == 5 and row["notes"][0]["cell"] == 5
    assert project.printed("03-claims").count("after the check") == 1
    assert (project.out / "lessons/03-claims/03-claims.py").read_text() == edited

    project.write("03-claims", edited.replace("{{ count }} photos", "{{ counts }} photos"))
    with pytest.raises(BuildFailed) as failure:
        project.build(only=["03"], model="alexnet")
    assert str(failure.value) == (
        f"{project.lessons / '03-claims.py'}: the prose does not match the code\n"
        "  markdown cell 3 uses {{ counts }}, which no code cell records "
        "(recorded: count, ratio)")
    assert not (project.out / "lessons/03-claims.ipynb").exists()


# ---------------------------------------------------------------------------------------
# One site, one set of settings (issue 29 item 2)


@pytest.mark.slow
def test_only_with_other_settings_never_mixes_models_on_the_site(project):
    assert project.build(model="alexnet") == {"01-hello": "miss", "02-grad-cam": "miss"}
    assert project.build(only=["02"], model="vgg16") == {"01-hello": "absent",
                                                         "02-grad-cam": "miss"}
    assert not (project.out / "lessons/01-hello.ipynb").exists()  # not left from alexnet
    assert not (project.out / "lessons/01-hello/01-hello.py").exists()
    info = project.info()
    assert info["model"] == "vgg16"
    assert [(r["slug"], r["cache"], r["settings"]) for r in info["lessons"]] == [
        ("01-hello", "absent", None), ("02-grad-cam", "miss", info["settings"])]
    page = (project.out / "build.md").read_text()
    assert "| [02-grad-cam](lessons/02-grad-cam.ipynb) |" in page
    assert f"`{info['settings']}` |" in page and "(lessons/01-hello.ipynb)" not in page
    assert "Not on this site (no build with these settings yet): 01-hello." in page
    assert mkdocs_hooks.lesson_nav(project.out) == [
        {"2. Grad-CAM, in miniature": "lessons/02-grad-cam.ipynb"}]
    # Back to alexnet with --only 01: lesson 02 has an alexnet entry, so the site is whole.
    assert project.build(only=["01"], model="alexnet") == {"01-hello": "hit",
                                                          "02-grad-cam": "hit"}
    assert "alexnet cpu 0" in project.printed("01-hello")
    assert {r["settings"] for r in project.info()["lessons"]} == {project.info()["settings"]}
    assert project.runs == ["01-hello", "02-grad-cam", "02-grad-cam"]


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
for name in ("CONVLENS_MODEL", "CONVLENS_WEIGHTS", "CONVLENS_LABELS", "CONVLENS_LAYERS",
             "CONVLENS_PREPROCESS"):
    print(name, os.environ.get(name))
'''


def test_model_settings_reach_the_kernel_and_the_key(project, tmp_path):
    weights, labels = tmp_path / "w.pt", tmp_path / "labels.txt"
    weights.write_bytes(b"w")
    labels.write_text("a\nb\n")
    project.write("03-env", ENV)
    project.build(only=["03"], model="resnet18", weights=str(weights), labels=str(labels),
                  layers=["last_spatial=layer4", "middle=layer2"], preprocess="crop=200")
    printed = "".join(text(o) for o in outputs(project.out / "lessons/03-env.ipynb"))
    assert printed == (f"CONVLENS_MODEL resnet18\nCONVLENS_WEIGHTS {weights.resolve()}\n"
                       f"CONVLENS_LABELS {labels.resolve()}\n"
                       "CONVLENS_LAYERS last_spatial=layer4,middle=layer2\n"
                       "CONVLENS_PREPROCESS crop=200\n")
    [entry] = project.entries("03-env")
    inputs = manifest_of(entry)["inputs"]
    assert inputs["labels"] == hashlib.sha256(b"a\nb\n").hexdigest()
    assert inputs["layers"] == "last_spatial=layer4,middle=layer2"
    assert inputs["weights"] == hashlib.sha256(b"w").hexdigest()
    key = entry.stem

    def key_with(**changes):
        settings = {"model": "resnet18", "weights": str(weights), "labels": str(labels),
                    "layers": ["last_spatial=layer4", "middle=layer2"],
                    "preprocess": "crop=200", **changes}
        s = cb.ModelSettings.of(**settings)
        common = keys.common_inputs(s.model, "cpu", 0, weights=s.weights, labels=s.labels,
                                    layers=s.layers, preprocess=s.preprocess)
        return keys.cache_key(keys.lesson_inputs(project.lessons / "03-env.py", common))

    monkey_free = key_with()
    assert monkey_free == key
    assert key_with(layers=["last_conv=layer3"]) != key
    assert key_with(preprocess="crop=224") != key
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


# ---------------------------------------------------------------------------------------
# Bad model settings fail before any lesson, in one line (issue 23 item 6, issue 29 item 1)

TINY_MODEL = """\
import torch.nn as nn


def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
"""


@pytest.fixture
def tiny_model(project, tmp_path, monkeypatch):
    """A three-class model from a file, and the real settings check."""
    monkeypatch.setattr(cb, "check_settings", CHECK_SETTINGS)
    path = tmp_path / "tiny.py"
    path.write_text(TINY_MODEL)
    return f"{path}:build"


def test_good_settings_pass_the_check(project, tiny_model):
    assert cb.check_settings(cb.ModelSettings.of(tiny_model, layers=["last_spatial=2"],
                                                 preprocess="resize=64,crop=56")) == ()


def test_a_fine_tuned_head_is_reported_by_the_settings_check(project, tiny_model, tmp_path):
    """A checkpoint whose classifier has 5 outputs instead of 3, with 5 labels: it loads, and
    the check returns the note the build prints."""
    import torch

    from convlens import models

    model = models.load(tiny_model).model
    state = model.state_dict()
    state["6.weight"], state["6.bias"] = torch.zeros(5, 4), torch.zeros(5)
    torch.save(state, tmp_path / "tuned.pt")
    (tmp_path / "five.txt").write_text("a\nb\nc\nd\ne\n")
    [note] = cb.check_settings(cb.ModelSettings.of(tiny_model, weights=str(tmp_path / "tuned.pt"),
                                                   labels=str(tmp_path / "five.txt")))
    assert "'6' was resized from 3 to 5 outputs" in note


def test_bad_model_settings_exit_2_in_one_line_before_any_kernel(project, tiny_model, tmp_path,
                                                                  capsys):
    import torch

    torch.save({"0.weight": torch.zeros(2, 3, 3, 3)}, tmp_path / "wrong.pt")
    (tmp_path / "five.txt").write_text("a\nb\nc\nd\ne\n")
    base = ["--lessons-dir", str(project.lessons), "--out", str(project.out),
            "--cache", str(project.cache), "--assets", str(project.assets), "--device", "cpu",
            "--model", tiny_model]
    for argv, message in [
        (["--layer", "last_spatial=nothere"], "has no module named 'nothere'"),
        (["--weights", str(tmp_path / "wrong.pt")],
         "shape mismatches (file vs model): 0.weight (2, 3, 3, 3) vs (4, 3, 3, 3)"),
        (["--labels", str(tmp_path / "five.txt")], "has 5 class names but the model has 3 "
         "outputs"),
        (["--preprocess", "crop=abc"], "preprocess entry 'crop=abc'"),
        (["--preprocess", "zoom=2"], "known keys are resize, crop, mean, std, interpolation"),
    ]:
        start = time.perf_counter()
        assert main(base + argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("coursebuild: the model settings do not load (--model ")
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert time.perf_counter() - start < 120  # seconds, not a lesson's minutes
    assert project.runs == [] and not project.out.exists()


def test_a_broken_model_file_is_named_in_one_line(project, tiny_model, tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("def build():\n    return undefined_name\n")
    argv = ["--lessons-dir", str(project.lessons), "--out", str(project.out), "--cache",
            str(project.cache), "--assets", str(project.assets), "--device", "cpu",
            "--model", f"{broken}:build"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "NameError: name 'undefined_name' is not defined" in err and err.count("\n") == 1


def test_the_check_runs_only_when_a_lesson_will_run(warm, monkeypatch):
    calls = []
    monkeypatch.setattr(cb, "check_settings", lambda settings: calls.append(settings) or ())
    warm.build()
    assert calls == []  # every lesson hit: no model to load
    warm.build(only=["02"], force=True)
    assert [c.model for c in calls] == ["efficientnet_lite0"]


@pytest.mark.slow
def test_preprocess_flag_reaches_the_kernel_the_key_and_the_build_page(project, monkeypatch):
    monkeypatch.setenv("CONVLENS_PREPROCESS", "crop=200")
    args = cb.parse_args([])
    assert args.preprocess == "crop=200"  # the variable is the flag's default
    assert cb.parse_args(["--preprocess", "resize=300, crop=256"]).preprocess == \
        "resize=300, crop=256"
    assert cb.ModelSettings.of(preprocess=" resize=300, crop=256 ").preprocess == \
        "resize=300,crop=256"
    project.write("03-env", ENV)
    project.build(only=["03"], preprocess="resize=300,crop=256")
    assert "CONVLENS_PREPROCESS resize=300,crop=256\n" in project.printed("03-env")
    assert project.info()["preprocess"] == "resize=300,crop=256"
    assert "preprocess `resize=300,crop=256`" in (project.out / "build.md").read_text()
    assert project.build(only=["03"], preprocess="resize=300,crop=224")["03-env"] == "miss"
    assert project.build(only=["03"], preprocess="resize=300,crop=256")["03-env"] == "hit"


# ---------------------------------------------------------------------------------------
# A key with no holes: every CONVLENS_* variable the runtime reads (issue 29 item 3)

RUNTIME = [ROOT / "lib" / "convlens_course", ROOT / "lib" / "convlens"]


def test_every_environment_variable_the_runtime_reads_is_in_the_key():
    import re

    names, dynamic = set(), []
    for package in RUNTIME:
        for path in package.rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            names.update(re.findall(r"CONVLENS_[A-Z][A-Z0-9_]*", source))
            dynamic += [f"{path.name}: {m}" for m in re.findall(r"[\"']CONVLENS_[{\"']", source)]
    assert dynamic == []  # a name built at run time could not be checked
    assert {"CONVLENS_MODEL", "CONVLENS_PREPROCESS", "CONVLENS_STRICT"} <= names
    missing = names - set(keys.ENVIRONMENT) - set(keys.NOT_KEYED)
    assert not missing, f"read by the runtime but not in the cache key: {sorted(missing)}"
    assert set(protocol.ENVIRONMENT) == set(keys.ENVIRONMENT)
    assert set(keys.ENVIRONMENT.values()) <= set(keys.SETTINGS)


def test_each_runtime_variable_changes_the_kernel_and_the_key(project, tmp_path, monkeypatch):
    """For every variable: two builds that set it differently give the kernels different
    values and the lessons different keys."""
    monkeypatch.setattr(keys, "resolve_device", lambda device: device)
    files = {}
    for name in ("w1", "w2", "l1", "l2"):
        files[name] = tmp_path / name
        files[name].write_text(name)

    def planned(**changes):
        options = {"device": "cpu", "seed": 0, **changes}
        device, seed = options.pop("device"), options.pop("seed")
        p = cb.plan(project.lessons, project.cache, cb.ModelSettings.of(**options), device,
                    seed, False, None, 1)
        return p.env, p.results[0].key

    cases = {
        "CONVLENS_MODEL": ({"model": "alexnet"}, {"model": "vgg16"}),
        "CONVLENS_WEIGHTS": ({"weights": files["w1"]}, {"weights": files["w2"]}),
        "CONVLENS_LABELS": ({"labels": files["l1"]}, {"labels": files["l2"]}),
        "CONVLENS_LAYERS": ({"layers": ["middle=a"]}, {"layers": ["middle=b"]}),
        "CONVLENS_PREPROCESS": ({"preprocess": "crop=200"}, {"preprocess": "crop=224"}),
        "CONVLENS_DEVICE": ({"device": "cpu"}, {"device": "cuda"}),
        "CONVLENS_SEED": ({"seed": 0}, {"seed": 1}),
    }
    assert set(cases) | {"CONVLENS_STRICT"} == set(keys.ENVIRONMENT)
    for name, (one, other) in cases.items():
        (env_one, key_one), (env_two, key_two) = planned(**one), planned(**other)
        assert env_one.get(name) != env_two.get(name), name
        assert key_one != key_two, name
    monkeypatch.setenv("CONVLENS_STRICT", "1")
    env_one, key_one = planned()
    monkeypatch.setenv("CONVLENS_STRICT", "0")
    env_two, key_two = planned()
    assert (env_one["CONVLENS_STRICT"], env_two["CONVLENS_STRICT"]) == ("1", "0")
    assert key_one != key_two


# ---------------------------------------------------------------------------------------
# Serving: the pipeline runs before each MkDocs build (issue 29 item 4)


class FakeServer:
    def __init__(self):
        self.unwatched = []

    def unwatch(self, path):
        self.unwatched.append(path)


@pytest.mark.slow
def test_serving_runs_the_pipeline_before_each_build(warm, monkeypatch):
    project = warm
    monkeypatch.setitem(serve.STATE, "serving", False)
    monkeypatch.setenv("COURSEBUILD_ARGS", "--device cpu")
    config = {"docs_dir": str(project.out), "config_file_path": str(project.root / "mkdocs.yml"),
              "nav": [{"Lessons": "build-info.json"}]}
    project.write("02-grad-cam", SECOND.replace("in miniature", "in brief"))
    mkdocs_hooks.on_startup(command="build", dirty=False)
    mkdocs_hooks.on_config(config)  # mkdocs build: renders build/docs as it is
    assert "in miniature" in "".join(notebook_cells(project.out / "lessons/02-grad-cam.ipynb")[0]
                                     ["source"])
    mkdocs_hooks.on_startup(command="serve", dirty=False)
    server = FakeServer()
    assert mkdocs_hooks.on_serve(server, config=config, builder=None) is server
    assert server.unwatched == [str(project.out)]
    mkdocs_hooks.on_config(config)  # a markdown edit: refilled, no kernel
    assert "in brief" in "".join(notebook_cells(project.out / "lessons/02-grad-cam.ipynb")[0]
                                 ["source"])
    assert config["nav"][0]["Lessons"][1] == {"2. Grad-CAM, in brief": "lessons/02-grad-cam.ipynb"}
    assert project.runs == []
    project.write("03-new", "# %% [markdown]\n# # New\n\n# %%\nprint('fresh')\n")
    config["nav"] = [{"Lessons": "build-info.json"}]
    mkdocs_hooks.on_config(config)  # a new lesson: run, and in the nav
    assert project.runs == ["03-new"] and "fresh" in project.printed("03-new")
    assert config["nav"][0]["Lessons"][2] == {"3. New": "lessons/03-new.ipynb"}
    project.write("03-new", BOOM)
    config["nav"] = [{"Lessons": "build-info.json"}]
    mkdocs_hooks.on_config(config)  # a failure is printed, the rest is served
    assert not (project.out / "lessons/03-new.ipynb").exists()
    assert len(config["nav"][0]["Lessons"]) == 2


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return ""


def wait_for(predicate, seconds: float, process) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if predicate():
            return time.monotonic() - start
        assert process.poll() is None, "the server stopped"
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.slow
def test_mkdocs_serve_shows_a_lesson_edit_and_settles(project, tmp_path):
    """A real ``mkdocs serve`` of a tiny course: a markdown edit and a code edit reach the
    page, and after each the server builds once (no rebuild loop)."""
    port = free_port()
    (project.root / "mkdocs.yml").write_text(textwrap.dedent(f"""\
        site_name: t
        docs_dir: build/docs
        hooks: [{ROOT / "lib/coursebuild/mkdocs_hooks.py"}]
        nav:
          - Home: index.md
          - Lessons: build-info.json
        watch: [lessons, site_assets]
        plugins:
          - mkdocs-jupyter:
              include: ["lessons/*.ipynb"]
              execute: false
        """))
    env = {**os.environ, "COURSEBUILD_ARGS": "--device cpu --jobs 1", "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ["PYTHONPATH"]])}
    log = (tmp_path / "serve.log").open("w")
    (project.out).mkdir(parents=True)  # as nox -s serve does: MkDocs wants docs_dir to exist
    server = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "--dev-addr",
                               f"127.0.0.1:{port}"], cwd=project.root, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    page = f"http://127.0.0.1:{port}/lessons/02-grad-cam/"
    builds = lambda: (tmp_path / "serve.log").read_text().count("Building documentation")  # noqa: E731
    try:
        wait_for(lambda: "in miniature" in fetch(page), 600, server)
        project.write("02-grad-cam", SECOND.replace("in miniature", "refilled"))
        seconds = wait_for(lambda: "refilled" in fetch(page), 300, server)
        print(f"markdown edit on the page after {seconds:.1f} s")
        settled = builds()
        time.sleep(3)
        assert builds() == settled == 2
        project.write("02-grad-cam", SECOND.replace("6 * 7", "6 * 9"))
        wait_for(lambda: "54" in fetch(page), 300, server)
        time.sleep(3)
        assert builds() == 3
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        print((tmp_path / "serve.log").read_text()[-3000:])


def test_operations_without_a_deterministic_kernel_reach_the_manifest_and_the_build_page(
        monkeypatch):
    """What the runtime reports on CUDA (one private output per operation) is collected in
    order, stripped from the page and listed on the Build page; the kernel's environment
    fixes cuBLAS's workspace before the lesson starts."""
    import nbformat

    def output(operation):
        return nbformat.v4.new_output("display_data", data={
            protocol.NONDETERMINISTIC_MIME: {"operation": operation},
            "text/plain": f"no deterministic kernel: {operation}"})

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("a", outputs=[output("adaptive_avg_pool2d_backward_cuda")]),
        nbformat.v4.new_code_cell("b", outputs=[output("upsample_bilinear2d_backward_out_cuda"),
                                                output("adaptive_avg_pool2d_backward_cuda"),
                                                nbformat.v4.new_output("stream", text="kept\n")]),
    ])
    part = prose.finish("lessons/01-x.py", nb)
    assert part["nondeterministic"] == ["adaptive_avg_pool2d_backward_cuda",
                                        "upsample_bilinear2d_backward_out_cuda"]
    assert [len(c.outputs) for c in nb.cells] == [0, 1]  # only the stream output is left
    info = {"model": "m", "weights": "w" * 16, "device": "cuda", "seed": 0, "versions": {},
            "settings": "s", "lessons": [
                {"slug": "01-x", "cache": "miss", "executed_seconds": 1.0, "cells": 2,
                 "key": "k" * 12, "settings": "s", "checks": 0, "notes": [],
                 "nondeterministic": part["nondeterministic"]},
                {"slug": "02-y", "cache": "miss", "executed_seconds": 1.0, "cells": 2,
                 "key": "k" * 12, "settings": "s", "checks": 0, "notes": [],
                 "nondeterministic": []}]}
    page = assemble_module().build_page(info)
    assert "## Operations without a deterministic kernel" in page
    [row] = [line for line in page.splitlines() if "upsample_bilinear2d" in line]
    assert row.startswith("| [01-x]") and "`adaptive_avg_pool2d_backward_cuda`" in row
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert execute.kernel_env({}, "cuda", 0, 1)["CUBLAS_WORKSPACE_CONFIG"] == \
        protocol.CUBLAS_WORKSPACE_CONFIG


def assemble_module():
    from coursebuild import assemble

    return assemble


def test_values_recorded_as_timings_are_listed_in_the_manifest():
    """record(..., timing=True) marks a value that depends on the machine's speed: the
    manifest lists its name, so two builds can be compared on every other value."""
    import nbformat

    def recorded(name, text, **extra):
        return nbformat.v4.new_output("display_data", data={
            protocol.RECORD_MIME: {"name": name, "text": text, **extra},
            "text/plain": f"{name} = {text}"})

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("{{ stride }} in {{ seconds }}"),
        nbformat.v4.new_code_cell("a", outputs=[recorded("seconds", "9 s", timing=True),
                                                recorded("stride", "4")]),
    ])
    part = prose.finish("lessons/05-x.py", nb)
    assert part["records"] == {"seconds": "9 s", "stride": "4"}
    assert part["timings"] == ["seconds"]
    assert nb.cells[0].source == "4 in 9 s" and nb.cells[1].outputs == []


def test_compare_finds_a_changed_figure_and_value_but_not_a_timing(tmp_path, capsys):
    from coursebuild import compare

    def entry(png: str, stride: str, seconds: str) -> dict:
        return {"cells": [{"cell_type": "code", "outputs": [
                    {"output_type": "display_data", "data": {"image/png": "AAAA"}},
                    {"output_type": "display_data", "data": {"image/png": png}}]}],
                "metadata": {"coursebuild": {"records": {"stride": stride, "seconds": seconds},
                                             "timings": ["seconds"]}}}

    first = entry("BBBB", "4", "9 s")
    assert compare.compare(first, entry("BBBB", "4", "12 s")).same  # only a timing moved
    diff = compare.compare(first, entry("CCCC", "2", "9 s"))
    assert diff.figures == 2 and diff.figures_changed == [2]
    assert diff.values == 1 and diff.values_changed == {"stride": ("4", "2")}
    for name, nb in (("a", first), ("b", entry("BBBB", "4", "30 s"))):
        (tmp_path / name / "05-x").mkdir(parents=True)
        (tmp_path / name / "05-x" / "key.ipynb").write_text(json.dumps(nb))
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "05-x: figures 2/2 identical, values 1/1 equal (1 timings left out)" in \
        capsys.readouterr().out
    with pytest.raises(ValueError, match="no coursebuild manifest"):
        compare.compare({"cells": [], "metadata": {}}, first)
