"""Sessions for convlens. Every session shares one virtual environment.

    nox -s site                     execute the lessons (cached), regenerate figures, build site/
    nox -s site -- --model vgg16    the same course on another registry model
    nox -s site -- --model my_net.py:build --weights my.pt --labels classes.txt
                                    ... on your own model (also torchvision:NAME, timm:NAME,
                                    package.module:FUNCTION; --layer ROLE=NAME overrides a role)
    nox -s site -- --device cpu     force the CPU (default: CUDA when available)
    nox -s site -- --force          ignore the figure cache
    nox -s tests                    the test suite (browser test included)
    nox -s serve                    build, then serve the site on http://127.0.0.1:8000
    nox -s lesson -- 08-grad-cam    execute one lesson
    nox -s lint                     ruff
    nox -s bench                    benchmarks: tables of ratios against naive baselines

The environment lives in ``.nox/convlens``. It is created once and updated only
when ``pyproject.toml`` changes, so torch (several GB) is installed once and
not per session.
"""

from __future__ import annotations

import hashlib
import os
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
                    f"{ROOT}[docs,test]", external=True)
        stamp.write_text(wanted)
    session.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    session.env["VIRTUAL_ENV"] = str(VENV)
    session.env["PYTHONHASHSEED"] = "0"
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about MkDocs 2; we pin mkdocs<2


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


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest options after --)."""
    _environment(session)
    _browser(session)
    _python(session, "-m", "pytest", *session.posargs)


@nox.session
def site(session: nox.Session) -> None:
    """Execute the lessons where their inputs changed, then build site/ strictly."""
    _environment(session)
    _python(session, "-m", "coursebuild", *session.posargs)
    _python(session, "-m", "mkdocs", "build", "--strict")


@nox.session
def serve(session: nox.Session) -> None:
    """Build, then serve the site locally."""
    _environment(session)
    _python(session, "-m", "coursebuild", *session.posargs)
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
def lint(session: nox.Session) -> None:
    """Static checks."""
    _environment(session)
    _python(session, "-m", "ruff", "check", "lib", "tests", "benchmarks", "lessons", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks that print tables of ratios against naive baselines."""
    _environment(session)
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        _python(session, str(script), *session.posargs)
