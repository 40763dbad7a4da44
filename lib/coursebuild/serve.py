"""``mkdocs serve`` with live lessons: the pipeline runs inside MkDocs before each build.

``nox -s serve`` runs ``mkdocs serve --watch lessons --watch site_assets --watch lib``. The
MkDocs hooks (:mod:`coursebuild.mkdocs_hooks`) call :func:`start` once and, at the start of
every build (``on_config``, before the nav is made from ``build-info.json``),
:func:`rebuild`: :func:`coursebuild.pipeline.build` with the options in ``COURSEBUILD_ARGS``
(what follows ``nox -s serve --``), written into MkDocs' ``docs_dir``. So an edit re-runs
what changed: a markdown-only edit refills the page from the cache in seconds, a library
edit re-runs the lessons that imported it, an edit under ``site_assets/`` re-assembles;
then MkDocs renders and the browser reloads.

It settles after one build per edit: ``docs_dir`` is generated, so MkDocs stops watching it
(:func:`on_serve`: only the pipeline writes there, and it writes only files whose bytes
changed), and the kernels write their bytecode under ``.cache/pycache``, not beside
``lib/``'s sources. A failing lesson is printed and left off the site; the server keeps
serving the rest. ``COURSEBUILD_SERVE=0`` turns all this off (plain ``mkdocs serve`` of an
existing ``build/docs``). This module holds the state because MkDocs re-reads its config,
hooks included, on every build.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

from coursebuild import pipeline

log = logging.getLogger("mkdocs.coursebuild")
STATE = {"serving": False}


def start(command: str) -> None:
    """``on_startup``: the pipeline runs on each build of ``mkdocs serve``."""
    STATE["serving"] = command == "serve" and os.environ.get("COURSEBUILD_SERVE", "1") != "0"


def on_serve(server, config) -> None:
    """Stop watching the generated ``docs_dir`` (the pipeline writes it on each build)."""
    if STATE["serving"]:
        server.unwatch(config["docs_dir"])


def rebuild(config) -> None:
    """Run the pipeline into ``config["docs_dir"]`` when serving (see the module)."""
    if not STATE["serving"]:
        return
    root = Path(config["config_file_path"]).resolve().parent
    args = pipeline.parse_args(shlex.split(os.environ.get("COURSEBUILD_ARGS", "")))

    def place(path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else root / path

    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(root / ".cache" / "pycache"))  # kernels
    start_time = time.perf_counter()
    try:
        pipeline.build(
            lessons_dir=place(args.lessons_dir), out=Path(config["docs_dir"]),
            cache=place(args.cache), assets=place(args.assets), model=args.model,
            weights=args.weights, labels=args.labels, layers=args.layer,
            preprocess=args.preprocess, device=args.device, seed=args.seed, force=False,
            only=args.only, timeout=args.timeout, jobs=args.jobs,
            log=lambda *parts, **_: log.info(" ".join(map(str, parts))))
    except pipeline.BuildFailed as exc:
        print(f"coursebuild: FAILED (left off the site until it builds)\n{exc}",
              file=sys.stderr, flush=True)
    except (ValueError, RuntimeError) as exc:
        print(f"coursebuild: {exc}", file=sys.stderr, flush=True)
    log.info(f"coursebuild: lessons ready in {time.perf_counter() - start_time:.1f} s")
