"""Lay out ``build/docs/``: the MkDocs source tree, generated, never edited by hand.

It holds a copy of ``site_assets/``, the vendored MathJax bundle, the explorers' data schema
(``convlens_course/explorer_schema.json``, beside the modules that read it), per lesson its
page's notebook ``lessons/NN-slug.ipynb`` and a folder ``lessons/NN-slug/`` with its figures
and its two downloads (:mod:`coursebuild.lessonpage`), ``build-info.json``, the ``build.md``
page, and ``benchmarks.md`` with its figure (:mod:`coursebuild.benchmarks`, from
``benchmarks/results/``). The line ``<!-- lessons -->`` of ``index.md`` becomes the list of
lessons (:mod:`coursebuild.catalog`); the nav is made from ``build-info.json`` by the MkDocs
hook. Files are rewritten only when their bytes change (``mkdocs serve`` does not churn), and
every other file is removed, so a renamed or deleted lesson leaves nothing behind.

MathJax (offline): the ``django-static-mathjax`` wheel from PyPI ships MathJax 3 as the
``mathjax`` package (no Django needed); ``tex-svg-full.js`` is one self-contained file (SVG
output needs no font files, every TeX extension is inside). ``COURSEBUILD_MATHJAX`` may name
another copy of that file, e.g. ``node_modules/mathjax/es5/tex-svg-full.js`` from npm.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from convlens_course.protocol import EXPLORER_SCHEMA
from coursebuild import benchmarks, catalog, lessonpage

MATHJAX_FILE = "tex-svg-full.js"
MATHJAX_TARGET = f"javascripts/vendor/mathjax/{MATHJAX_FILE}"
LESSONS = "lessons"
# the explorers' data format, beside the modules that read it (site_assets/javascripts/explorers)
EXPLORER_SCHEMA_TARGET = "javascripts/explorers/schema.json"


def mathjax_source() -> Path:
    if os.environ.get("COURSEBUILD_MATHJAX"):
        path = Path(os.environ["COURSEBUILD_MATHJAX"])
    else:
        spec = importlib.util.find_spec("mathjax")
        roots = list(spec.submodule_search_locations or []) if spec else []
        path = Path(roots[0] if roots else "/nonexistent") / "static/mathjax/es5" / MATHJAX_FILE
    if not path.is_file():
        raise RuntimeError(
            f"MathJax not found at {path}: install the docs extra "
            "(pip install -e '.[docs]', which brings django-static-mathjax) or set "
            f"COURSEBUILD_MATHJAX to a copy of MathJax 3's es5/{MATHJAX_FILE}"
        )
    return path


def build_page(info: dict) -> str:
    """The Build page: what the figures were computed with. Only cache-stable facts, so a
    no-op rebuild leaves the page byte-identical (hits and wall times are in the JSON)."""
    shown = [r for r in info["lessons"] if r.get("key") and r["cache"] in ("hit", "miss", "kept")]
    rows = [
        f"| [{r['slug']}](lessons/{r['slug']}.ipynb) | {r['executed_seconds'] or 0:.1f} | "
        f"{r['cells']} | `{r['key'][:12]}` | `{r.get('settings')}` |"
        for r in shown
    ]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    notes = [(r["slug"], n) for r in shown for n in r.get("notes", [])]
    noted = [
        f"| [{slug}](lessons/{slug}.ipynb) | {n['cell']} | {n['claim']} | "
        f"{'' if n.get('value') is None else n['value']} |" for slug, n in notes
    ]
    if noted:
        noted = ["", "## Statements that do not hold for this model", "",
                 "The lesson text was checked on the default model; on this one these "
                 "statements do not hold (each page says so in place).", "",
                 "| Lesson | cell | statement | measured |", "|---|---:|---|---|", *noted]
    absent = [r["slug"] for r in info["lessons"] if r["cache"] == "absent"]
    if absent:
        absent = ["", f"Not on this site (no build with these settings yet): "
                  f"{', '.join(absent)}."]
    checks = sum(r.get("checks", 0) for r in shown)
    unsettled = [f"| [{r['slug']}](lessons/{r['slug']}.ipynb) | "
                 + ", ".join(f"`{op}`" for op in r["nondeterministic"]) + " |"
                 for r in shown if r.get("nondeterministic")]
    if unsettled:
        unsettled = ["", "## Operations without a deterministic kernel", "",
                     "These lessons ran operations that have no deterministic implementation "
                     "on this device: their values can differ in the last digits between two "
                     "builds.", "", "| Lesson | operations |", "|---|---|", *unsettled]
    return "\n".join([
        "# Build",
        "",
        "Every figure on this site was computed by `python -m coursebuild`, which executes "
        "each lesson once and caches the executed notebook under a hash of its code cells "
        "and the settings below (model, weights, labels, layers, preprocessing, device, "
        "seed, library versions); an entry stays valid while every file the lesson "
        "imported or read from the library is unchanged. Every lesson on this site was "
        "built with the same settings (the last column). Machine-readable details: "
        "[build-info.json](build-info.json).",
        "",
        f"- **Model:** `{info['model']}` (weights `{info['weights'][:16]}`"
        + (f", labels `{info['labels'][:16]}`" if info.get("labels") else "")
        + (f", layers `{info['layers']}`" if info.get("layers") else "")
        + (f", preprocess `{info['preprocess']}`" if info.get("preprocess") else "") + ")",
        f"- **Device:** `{info['device']}`, **seed:** `{info['seed']}`",
        f"- **Versions:** {versions}",
        f"- **Settings:** `{info['settings']}`",
        f"- **Checks:** {checks} statement(s) of the text checked against the outputs; "
        f"{len(notes)} do not hold for this model",
        "",
        "| Lesson | executed in (s) | cells | cache key | settings |",
        "|---|---:|---:|---|---|",
        *rows,
        *absent,
        *noted,
        *unsettled,
        "",
    ])


def write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def assemble(out: Path, assets_dir: Path, notebooks: dict[str, tuple[Path, Path | bytes]],
             info: dict, keep: set[str] = frozenset(),
             sources: dict[str, Path] | None = None,
             results: Path | None = None) -> list[str]:
    """Write ``out`` from the assets, ``notebooks`` (slug -> (lesson .py, the executed .ipynb as a file or its bytes))
    and ``info``; delete whatever else is there except the relative paths in ``keep`` (a
    path ending in ``/``: a folder). Each lesson's files: :mod:`coursebuild.lessonpage`;
    ``sources`` (slug -> lesson file, every lesson) lets links to lessons not built now be
    checked. ``results`` (default: ``benchmarks/results`` beside the assets folder, i.e. in the
    same project) holds the benchmark runs that make
    the Benchmarks page (:mod:`coursebuild.benchmarks`; ``site_assets/benchmarks.md`` is its
    hand-written part). Returns the errors (broken links in lessons); with errors, nothing
    is written."""
    out, assets_dir = Path(out), Path(assets_dir)
    wanted: dict[str, Path | bytes] = {}
    if assets_dir.is_dir():
        for f in sorted(assets_dir.rglob("*")):
            if f.is_file():
                wanted[f.relative_to(assets_dir).as_posix()] = f
    wanted[MATHJAX_TARGET] = mathjax_source()
    wanted[EXPLORER_SCHEMA_TARGET] = EXPLORER_SCHEMA
    kept = {k.split("/")[1]: out / k / f"{k.split('/')[1]}.ipynb"
            for k in keep if k.startswith(f"{LESSONS}/") and k.endswith("/")}
    files, errors, warnings = lessonpage.publish(notebooks, sources or {}, kept)
    if errors:
        return errors
    for warning in warnings:
        print(f"warning: {warning}", flush=True)
    wanted.update(files)
    wanted["build-info.json"] = (json.dumps(info, indent=1) + "\n").encode()
    wanted["build.md"] = build_page(info).encode()
    intro = wanted.get(benchmarks.PAGE)
    results = assets_dir.parent / "benchmarks" / "results" if results is None else results
    wanted.update(benchmarks.files(results, intro.read_text(encoding="utf-8") if intro else None))
    if isinstance(wanted.get("index.md"), Path):  # the lessons that have a page, as the nav
        present = [r for r in info["lessons"] if r["slug"] in notebooks
                   or (f"{LESSONS}/{r['slug']}.ipynb" in keep
                       and (out / LESSONS / f"{r['slug']}.ipynb").is_file())]
        home = wanted["index.md"].read_text(encoding="utf-8")
        wanted["index.md"] = catalog.fill_home(home, present).encode()

    for rel, content in wanted.items():
        write_if_changed(out / rel, content if isinstance(content, bytes) else content.read_bytes())
    for path in sorted(out.rglob("*"), reverse=True):  # children before their folders
        rel = path.relative_to(out).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif rel not in wanted and rel not in keep and not any(
                rel.startswith(k) for k in keep if k.endswith("/")):
            path.unlink()
    return []
