"""Sessions for convlens. Every session shares one virtual environment.

    nox -s site                     execute the lessons (cached), regenerate figures, build site/
    nox -s site -- --model vgg16    the same course on another registry model
    nox -s site -- --model my_net.py:build --weights my.pt --labels classes.txt
                                    ... on your own model (also torchvision:NAME, timm:NAME,
                                    package.module:FUNCTION; --layer ROLE=NAME overrides a role,
                                    --preprocess resize=N,crop=N,mean=R/G/B,std=R/G/B its input)
    nox -s site -- --device cpu     force the CPU (default: CUDA when available)
    nox -s site -- --force          re-run every lesson, publish the fresh results
    nox -s tests                    the fast tier: library, runtime and build checks (minutes)
    nox -s tests_full               the full tier: whole-course builds on other models,
                                    browser tests on the built site/, architecture sweeps
    nox -s serve                    serve the site on http://127.0.0.1:8000, lessons live
    nox -s lesson -- 08-grad-cam    execute one lesson
    nox -s lab                      JupyterLab on lessons/ (each .py opens as a notebook)
    nox -s lint                     ruff
    nox -s bench                    benchmarks: tables of ratios against naive baselines,
                                    results in benchmarks/results/ (the Benchmarks page)
    nox -s bench -- occlusion       one benchmark (options after its name)

The environment lives in ``.nox/convlens``. It is created once and updated only
when ``pyproject.toml`` changes, so torch (several GB) is installed once and
not per session.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".nox" / "convlens"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _environment(session: nox.Session) -> None:
    """Create or update the shared environment; put its tools first on PATH."""
    stamp = VENV / ".convlens-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (BIN / "python").exists():
        session.run(sys.executable, "-m", "venv", str(VENV), external=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        session.run(str(BIN / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip",
                    external=True)
        session.run(str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e",
                    f"{ROOT}[docs,test,lab]", external=True)
        stamp.write_text(wanted)
    session.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    session.env["VIRTUAL_ENV"] = str(VENV)
    session.env["PYTHONHASHSEED"] = "0"
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about MkDocs 2; we pin mkdocs<2
    # where networks convlens trains itself (evidence_net) keep their weights: the build's cache
    session.env.setdefault("CONVLENS_CACHE_DIR",
                           os.environ.get("CONVLENS_CACHE_DIR") or str(ROOT / ".cache" / "models"))


def _python(session: nox.Session, *args: str, **kwargs) -> None:
    session.run(str(BIN / "python"), *args, external=True, **kwargs)


def _browser(session: nox.Session) -> None:
    """The browser tests use Debian's Chromium; install it where we may."""
    if Path("/usr/bin/chromium").exists():
        return
    can_install = shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if can_install and not os.environ.get("CONVLENS_NO_APT"):
        session.log("installing Debian's chromium for the browser test")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "chromium", "chromium-driver",
                    external=True, env={"DEBIAN_FRONTEND": "noninteractive"})
    else:
        session.warn("no /usr/bin/chromium: the browser test will be skipped "
                     "(install Debian's chromium package to run it)")


FAST = "not slow and not browser"  # the fast tier; `slow` and `browser` are the full tier


@nox.session
def tests(session: nox.Session) -> None:
    """The fast tier (pytest options after --): hand-computed values, small naive
    references, the left-as-found contracts, the runtime, the build's functions and one
    small lesson through a kernel. The 15 slowest tests are listed at the end."""
    _environment(session)
    _python(session, "-m", "pytest", "-m", FAST, "--durations=15", *session.posargs)


@nox.session
def tests_full(session: nox.Session) -> None:
    """The full tier: every test marked ``slow`` or ``browser`` (whole-course builds on
    other models, the browser tests of the site that ``nox -s site`` built, full-size
    architecture sweeps). Run ``nox -s site`` first; CI runs site, tests, tests_full."""
    _environment(session)
    _browser(session)
    _python(session, "-m", "pytest", "-m", "slow or browser", "--durations=15",
            *session.posargs)


@nox.session
def site(session: nox.Session) -> None:
    """Execute the lessons where their inputs changed, then build site/ strictly."""
    _environment(session)
    _python(session, "-m", "coursebuild", *session.posargs)
    _python(session, "-m", "mkdocs", "build", "--strict")


@nox.session
def serve(session: nox.Session) -> None:
    """Serve the site with live lessons on http://127.0.0.1:8000: an edit to lessons/,
    site_assets/ or lib/ re-runs what changed (from the cache where it can; a markdown-only
    edit refills the page in seconds) and the browser reloads. Options after -- are the
    build's (e.g. --model vgg16)."""
    _environment(session)
    session.env["COURSEBUILD_ARGS"] = shlex.join(session.posargs)
    (ROOT / "build" / "docs").mkdir(parents=True, exist_ok=True)  # MkDocs checks docs_dir first
    _python(session, "-m", "mkdocs", "serve", "--dev-addr", "127.0.0.1:8000")


@nox.session
def lesson(session: nox.Session) -> None:
    """Execute one lesson: nox -s lesson -- 08-grad-cam [--device cpu] [--force]."""
    if not session.posargs:
        session.error("name a lesson: nox -s lesson -- 08-grad-cam")
    _environment(session)
    name, *rest = session.posargs
    _python(session, "-m", "coursebuild", "--only", name, *rest)


@nox.session
def lab(session: nox.Session) -> None:
    """JupyterLab on the lessons, in the project's environment (its kernel has convlens).

    jupytext opens each ``lessons/NN-slug.py`` as a notebook and saves back to the ``.py``.
    Run by hand, a lesson's ``{{ name }}`` placeholders stay as they are (each ``record``
    shows its value under its cell); the executed notebook with the values filled in is
    ``build/docs/lessons/NN-slug.ipynb`` after ``nox -s site``. Options after ``--`` go to
    ``jupyter lab`` (e.g. ``--no-browser --port 8890``).
    """
    _environment(session)
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    _python(session, "-m", "jupyter", "lab", f"--notebook-dir={ROOT / 'lessons'}", *root,
            *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks."""
    _environment(session)
    _python(session, "-m", "ruff", "check", "lib", "tests", "benchmarks", "lessons", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks that print tables of ratios against naive baselines.

    ``nox -s bench`` runs every script; ``nox -s bench -- occlusion --quick`` runs
    ``benchmarks/bench_occlusion.py`` alone with the options that follow its name. Each run
    writes its results to ``benchmarks/results/<benchmark>-<date>-<commit>.json``
    (``benchmarks/_results.py``); the site's Benchmarks page shows every file there, so
    commit a run to publish it.
    """
    _environment(session)
    _python(session, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[bench]")  # Captum
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    args = list(session.posargs)
    if args and not args[0].startswith("-"):
        name = args.pop(0)
        scripts = [s for s in scripts if s.stem in (name, f"bench_{name}")]
        if not scripts:
            session.error(f"no benchmarks/bench_{name}.py")
    for script in scripts:
        _python(session, str(script), *args)


@nox.session
def models(session: nox.Session) -> None:
    """Build the whole course on every registry model; print model | lessons passed | seconds.

    Real weights are used where their file is in the torch hub cache; otherwise the
    model gets stand-in weights (a random initialisation saved under torchvision's own
    file name in a temporary TORCH_HOME, read by the real loading path), and the table
    says so. Output goes to .nox/models/<name>/, never to build/docs.
    """
    import re
    import tempfile
    import time

    _environment(session)
    names = session.posargs or ["efficientnet_lite0", "alexnet", "vgg16", "vgg19", "resnet18",
                                "resnet50"]
    work = ROOT / ".nox" / "models"
    stand_ins = Path(tempfile.mkdtemp(prefix="convlens-stand-ins-"))
    rows, failed = [], []
    probe = ("import sys; from convlens import models; p = models.weights_path(sys.argv[1]); "
             "print('real' if p.is_file() else 'stand-in')")
    plant = "import sys; from convlens import models; models.save_stand_in_weights(sys.argv[1])"
    for name in names:
        env = {"PYTHONHASHSEED": "0"}
        kind = session.run(str(BIN / "python"), "-c", probe, name, external=True, silent=True,
                           env=env).strip().splitlines()[-1]
        if kind == "stand-in":
            env["TORCH_HOME"] = str(stand_ins)
            session.log(f"{name}: no pretrained file in the torch hub cache; stand-in weights "
                        f"(random initialisation) in {stand_ins}")
            _python(session, "-c", plant, name, env=env)
        start = time.perf_counter()
        output = session.run(
            str(BIN / "python"), "-m", "coursebuild", "--model", name,
            "--out", str(work / name / "docs"), "--cache", str(work / name / "cache"),
            external=True, silent=True, success_codes=[0, 1], env=env) or ""
        seconds = time.perf_counter() - start
        statuses = re.findall(r"^(\d\d-[\w-]+)\s+(hit|miss|failed|kept|absent)\b", output,
                              flags=re.MULTILINE)
        passed = sum(status in ("hit", "miss") for _, status in statuses)
        bad = [slug for slug, status in statuses if status == "failed"]
        if bad or not statuses:
            failed.append(name)
            print(output[-4000:])
        rows.append((name, kind, f"{passed}/{len(statuses)}", f"{seconds:.0f}",
                     ", ".join(bad)))
    shutil.rmtree(stand_ins, ignore_errors=True)
    header = ("model", "weights", "lessons passed", "seconds", "failed")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    if failed:
        session.error(f"the course does not build on: {', '.join(failed)}")
