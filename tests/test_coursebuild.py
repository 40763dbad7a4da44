"""The lesson pipeline (coursebuild) on tiny throwaway lessons: no model, a second a kernel.

Every test builds into its own tmp folder with its own cache. The ``convlens`` source tree
is replaced by a fake one (so editing it is safe) and the weights identity by a constant.
"""

from __future__ import annotations

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

from coursebuild import depends, execute, keys
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
    """Key on ``p``'s fake library and a fixed weights identity; count kernel starts."""
    monkeypatch.setattr(keys, "source_trees", lambda: {
        "convlens": p.lib, "coursebuild": ROOT / "lib" / "coursebuild"})
    monkeypatch.setattr(keys, "weights_identity", lambda model, digest, memo=None: "w-" + model)
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
                "build-info.json", "lessons/01-hello.ipynb", "lessons/01-hello.py",
                "lessons/02-grad-cam.ipynb", "lessons/02-grad-cam.py",
                "javascripts/vendor/mathjax/tex-svg-full.js"):
        assert (docs / rel).is_file(), rel
    assert (docs / "lessons/01-hello.py").read_text() == HELLO
    info = json.loads((docs / "build-info.json").read_text())
    assert [r["cache"] for r in info["lessons"]] == ["miss", "miss"]
    assert info["device"] == "cpu"

    # The kernel is this interpreter, gets the build's settings and the inline backend.
    texts = "".join(text(o) for o in outputs(docs / "lessons/01-hello.ipynb"))
    assert f"hello from {sys.executable}\n" in texts
    assert "efficientnet_lite0 cpu 0\n" in texts
    assert "backend_inline" in texts
    assert any("image/png" in o.get("data", {}) for o in outputs(docs / "lessons/01-hello.ipynb"))

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


def test_library_module_change_reruns_only_the_lessons_that_use_it(project):
    lib = project.lib
    (lib / "__init__.py").write_text("from .gradcam import gradcam\nfrom .occlusion import occlusion\n")
    (lib / "_checks.py").write_text("def check(x):\n    return x\n")
    (lib / "gradcam.py").write_text("from ._checks import check\ndef gradcam(x):\n    return check(x)\n")
    (lib / "occlusion.py").write_text("def occlusion(x):\n    return x\n")
    project.write("01-hello", "# %%\nimport convlens\nconvlens.occlusion\n")
    project.write("02-grad-cam", "# %%\nfrom convlens import gradcam\n")
    lesson_files = {path.stem: [f.name for f in depends.lesson_library_files(
        path.read_bytes(), lib)] for path in sorted(project.lessons.iterdir())}
    assert lesson_files == {"01-hello": ["__init__.py", "occlusion.py"],
                            "02-grad-cam": ["__init__.py", "_checks.py", "gradcam.py"]}
    keys_before = {r: keys.cache_key(keys.lesson_inputs(project.lessons / f"{r}.py", COMMON))
                   for r in lesson_files}
    (lib / "_checks.py").write_text("def check(x):\n    return 2 * x\n")  # used by gradcam only
    keys_after = {r: keys.cache_key(keys.lesson_inputs(project.lessons / f"{r}.py", COMMON))
                  for r in lesson_files}
    assert keys_after["01-hello"] == keys_before["01-hello"]
    assert keys_after["02-grad-cam"] != keys_before["02-grad-cam"]


@pytest.mark.parametrize("source", [
    "import convlens\nf = getattr(convlens, 'gradcam')\n",  # dynamic lookup
    "import convlens as c\nprint(c)\n",                      # the package object itself
    "from convlens import something_new\n",                   # a name we cannot place
    "def broken(:\n",                                          # not Python
])
def test_unresolvable_library_use_depends_on_the_whole_package(tmp_path, source):
    (tmp_path / "__init__.py").write_text("from .a import f\n")
    (tmp_path / "a.py").write_text("def f():\n    pass\n")
    (tmp_path / "b.py").write_text("def g():\n    pass\n")
    files = depends.lesson_library_files(source.encode(), tmp_path)
    assert [p.name for p in files] == ["__init__.py", "a.py", "b.py"]


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
                    "javascripts/mathjax.js", "javascripts/vendor",
                    "javascripts/vendor/mathjax", "javascripts/vendor/mathjax/tex-svg-full.js",
                    "lessons", "lessons/01-hello.ipynb", "lessons/01-hello.py"]


def test_parallel_jobs(project):
    assert project.build(jobs=2) == {"01-hello": "miss", "02-grad-cam": "miss"}
    assert sorted(project.runs) == ["01-hello", "02-grad-cam"]


@pytest.mark.slow
def test_show_png_is_byte_identical_across_runs(project):
    """The documented figure path (convlens.lesson.show) gives the same bytes twice."""
    pytest.importorskip("convlens.lesson")
    project.write("03-figure", textwrap.dedent('''\
        # %%
        import numpy as np
        import matplotlib.pyplot as plt
        from convlens import lesson
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.imshow(np.random.default_rng(0).random((8, 8)), cmap="viridis")
        ax.set_title("noise")
        lesson.show(fig, "random pixels")
        '''))
    project.build(only=["03"])
    first = (project.out / "lessons/03-figure.ipynb").read_bytes()
    project.build(only=["03"], force=True)
    assert project.runs == ["03-figure", "03-figure"]
    assert (project.out / "lessons/03-figure.ipynb").read_bytes() == first
    pngs = [o["data"]["image/png"] for o in outputs(project.out / "lessons/03-figure.ipynb")
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 1


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
    first = keys.weights_identity("m", "digest", memo)
    assert keys.weights_identity("m", "digest", memo) == first and calls == ["m"]
    keys.weights_identity("m", "other library", memo)  # library changed: asked again
    weights.write_bytes(b"123456")  # new file: asked again, new answer
    assert keys.weights_identity("m", "digest", memo) != first
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
