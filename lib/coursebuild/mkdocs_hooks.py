"""MkDocs hooks (see ``hooks:`` in mkdocs.yml).

- The footer names the installed convlens version, so the site says which library computed
  its figures.
- The nav's ``Lessons`` section is made from ``build-info.json`` in ``docs_dir`` (written by
  ``python -m coursebuild``): one entry per lesson, ``N. Title`` from the lesson's first
  heading, in course order. mkdocs.yml holds only a placeholder for it, so adding a lesson
  file is the only edit a new lesson needs.
- Under ``mkdocs serve`` the lesson pipeline runs before every build (:mod:`coursebuild.serve`):
  edits to ``lessons/``, ``site_assets/`` or ``lib/`` reach the page.
- nbconvert's MathJax 2 configuration script is removed from lesson pages: the site runs
  MathJax 3 (``javascripts/mathjax.js``), and Material's instant navigation re-runs inline
  scripts, where that one fails on ``MathJax.Hub`` ("Cannot read properties of undefined").
"""

import importlib.metadata
import json
import re
from pathlib import Path

MATHJAX2_CONFIG = re.compile(r'<script type="text/x-mathjax-config">.*?</script>\s*', re.S)

SECTION = "Lessons"


def lesson_nav(docs_dir) -> list[dict]:
    path = Path(docs_dir) / "build-info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path} is missing or unreadable ({error}): run "
                           "`python -m coursebuild` before mkdocs") from None
    return [{f"{r['number']}. {r['title']}": f"lessons/{r['slug']}.ipynb"}
            for r in info["lessons"] if (Path(docs_dir) / "lessons" / f"{r['slug']}.ipynb").is_file()]


def on_startup(command, dirty):
    from coursebuild import serve

    serve.start(command)


def on_serve(server, config, builder):
    from coursebuild import serve

    serve.on_serve(server, config)
    return server


def on_config(config):
    from coursebuild import serve

    serve.rebuild(config)  # when serving: the lessons first, then the nav made from them
    try:
        version = importlib.metadata.version("convlens")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    config["copyright"] = f"convlens {version}"
    nav = config["nav"] or []
    for item in nav:
        if isinstance(item, dict) and SECTION in item:
            item[SECTION] = lesson_nav(config["docs_dir"])
            break
    else:
        raise RuntimeError(f"mkdocs.yml's nav has no '{SECTION}' entry for the lessons")
    return config


def on_post_page(output, page, config):
    return MATHJAX2_CONFIG.sub("", output)
