"""The pipeline and its command line: plan (key every lesson), run the misses, report.

    python -m coursebuild [--model SPEC] [--weights FILE] [--labels FILE]
                          [--layer ROLE=NAME ...] [--preprocess SPEC]
                          [--device auto|cpu|cuda] [--seed N]
                          [--force] [--only SLUG ...] [--timeout SECONDS] [--jobs N]
                          [--lessons-dir lessons] [--out build/docs] [--cache .cache/lessons]
                          [--assets site_assets]

The model settings reach each lesson's kernel as ``CONVLENS_MODEL``, ``CONVLENS_WEIGHTS``,
``CONVLENS_LABELS`` (absolute paths), ``CONVLENS_LAYERS`` (``role=name,role=name``) and
``CONVLENS_PREPROCESS``, read by ``convlens_course.lesson.setup()``; ``CONVLENS_STRICT`` is
passed on as it is.

One site, one set of settings: ``build/docs`` holds only lessons built with this build's
settings (model, weights, labels, layers, preprocessing, device, seed, strictness, library
versions). A lesson that ``--only`` leaves out is published from the cache when it has an
entry for these settings (``hit``), kept as it is when the site already shows it built with
these settings (``kept``), and otherwise left off the site (``absent``; the build says so):
``--only`` never runs more than it names, and never publishes next to a lesson built with
other settings.

Exit status: 0 when every selected lesson ran or hit the cache (statements that do not hold
on a non-default model are listed as notes, not failures), 1 when one failed (its message
names the lesson file and the cell), 2 for bad arguments (checked before any lesson starts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coursebuild import assemble as assembly
from coursebuild import catalog, execute, keys


class BuildFailed(Exception):
    """One or more lessons failed; the message lists them, one short report each."""


@dataclass
class Result:
    slug: str
    lesson: Path
    key: str = ""
    cache: str = ""  # hit, miss, failed; not selected by --only: kept, absent
    seconds: float = 0.0  # wall time in this build
    entry: execute.Entry | None = None
    error: str = ""
    why: str = ""  # why it runs: not cached, forced, <file> changed
    published: execute.Published | None = None
    kept: dict | None = None  # its row of the previous build-info.json (cache "kept")


def default_jobs(device: str) -> int:
    """One kernel at a time on a GPU or a small machine; else a few, each with fewer threads."""
    cpus = os.cpu_count() or 1
    return 1 if device == "cuda" or cpus < 4 else min(4, cpus // 2)


@dataclass(frozen=True)
class ModelSettings:
    """What the lessons run on: ``--model``, ``--weights``, ``--labels``, ``--layer``,
    ``--preprocess``."""

    model: str
    weights: str | None = None  # absolute path
    labels: str | None = None  # absolute path
    layers: str = ""  # "role=name,role=name", as CONVLENS_LAYERS
    preprocess: str = ""  # "resize=256,crop=224,...", as CONVLENS_PREPROCESS

    @classmethod
    def of(cls, model: str | None = None, weights=None, labels=None,
           layers: list[str] | str | None = None, preprocess: str | None = None
           ) -> ModelSettings:
        """Validated settings (``ValueError`` naming the option); paths made absolute,
        since the kernels run in a scratch folder; a ``file.py:function`` spec too."""
        model = model or keys.default_model()
        kind, source = keys.model_source(model)
        if kind == "file":
            model = f"{source}:{model.rpartition(':')[2]}"
        found = []
        for option, path in (("--weights", weights), ("--labels", labels)):
            if path and not Path(path).is_file():
                raise ValueError(f"{option}: no file {str(path)!r}")
            found.append(str(Path(path).resolve()) if path else None)
        preprocess = ",".join(p.strip() for p in (preprocess or "").split(",") if p.strip())
        return cls(model, found[0], found[1], parse_layers(layers), preprocess)

    def env(self) -> dict[str, str]:
        values = {"CONVLENS_MODEL": self.model, "CONVLENS_WEIGHTS": self.weights,
                  "CONVLENS_LABELS": self.labels, "CONVLENS_LAYERS": self.layers,
                  "CONVLENS_PREPROCESS": self.preprocess}
        return {k: v for k, v in values.items() if v}


def parse_layers(layers: list[str] | str | None) -> str:
    """``["last_spatial=features.28", ...]`` (or one comma-separated string) ->
    ``"last_spatial=features.28,..."``; a malformed or repeated role is a ``ValueError``."""
    if isinstance(layers, str):
        layers = layers.split(",")
    pairs: dict[str, str] = {}
    for item in layers or ():
        if not item.strip():
            continue
        role, equals, name = (part.strip() for part in item.partition("="))
        if not equals or not role.isidentifier() or not name or "," in name:
            raise ValueError(f"--layer {item!r}: expected ROLE=NAME, e.g. last_spatial=features.28")
        if role in pairs:
            raise ValueError(f"--layer: role {role!r} given twice")
        pairs[role] = name
    return ",".join(f"{role}={name}" for role, name in pairs.items())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, (ValueError, LookupError, OSError)) and text \
        else f"{type(exc).__name__}: {text}"


def check_settings(settings: ModelSettings) -> tuple[str, ...]:
    """Load the model once, in this process, as the lessons will (``--model``,
    ``--weights``, ``--labels``, ``--layer``, ``--preprocess``): a bad setting is a
    ``ValueError`` naming it in one line, before any kernel starts. Returns the loading's
    notes (a classifier resized to a fine-tuned checkpoint), which the build prints."""
    try:
        from convlens import models
    except ImportError as exc:
        raise RuntimeError(f"the convlens library is not importable: {exc}") from None
    try:
        loaded = models.load(settings.model, weights=settings.weights, labels=settings.labels,
                             layers=models.parse_layers(settings.layers) if settings.layers
                             else None, preprocess=settings.preprocess or None)
    except Exception as exc:  # noqa: BLE001 - a user's model file may raise anything
        raise ValueError(f"the model settings do not load (--model {settings.model}"
                         + "".join(f" --{flag} {value}" for flag, value in (
                             ("weights", settings.weights), ("labels", settings.labels),
                             ("layer", settings.layers), ("preprocess", settings.preprocess))
                                   if value)
                         + f"): {_one_line(exc)}") from None
    return tuple(loaded.notes)


def select(lessons: list[Path], only: list[str] | None) -> set[str]:
    """Slugs picked by ``--only``: a full slug (``08-grad-cam``), its number or its name."""
    slugs = [p.stem for p in lessons]
    if not only:
        return set(slugs)
    picked = set()
    for word in only:
        word = Path(word).stem
        match = [s for s in slugs if word in (s, s[:2], s[3:])]
        if not match:
            raise ValueError(f"--only {word!r} matches no lesson (have: {', '.join(slugs)})")
        picked.update(match)
    return picked


@dataclass
class Plan:
    """What one build will do: every lesson keyed, and the ones to execute."""

    settings: ModelSettings
    device: str
    seed: int
    common: dict
    env: dict
    jobs: int
    results: list[Result]
    digests: keys.Digests
    todo: list[tuple[Result, dict]] = field(default_factory=list)
    catalog: list[dict] = field(default_factory=list)

    @property
    def settings_id(self) -> str:
        return keys.settings_id(self.common)


def plan(lessons_dir: Path, cache: Path, settings: ModelSettings, device: str, seed: int,
         force: bool, only, jobs: int | None) -> Plan:
    """Check the arguments, key every lesson, look each key up in the cache (an entry
    counts only while every file of its depfile is unchanged)."""
    lessons = keys.find_lessons(lessons_dir)
    picked = select(lessons, only)
    device = keys.resolve_device(device)
    jobs = jobs or default_jobs(device)
    digests = keys.Digests(cache / "file-digests.json")
    common = keys.common_inputs(settings.model, device, seed, digests.memo,
                                weights=settings.weights, labels=settings.labels,
                                layers=settings.layers, preprocess=settings.preprocess)
    env = execute.kernel_env(settings.env(), device, seed, jobs)
    p = Plan(settings, device, seed, common, env, jobs, [], digests,
             catalog=[catalog.describe(lesson) for lesson in lessons])
    for lesson in lessons:
        r = Result(lesson.stem, lesson)
        inputs = keys.lesson_inputs(lesson, common)
        r.key = keys.cache_key(inputs)
        hit, r.why = (None, "forced") if (force and r.slug in picked) else execute.find(
            cache, r.slug, r.key, digests)
        if hit:
            r.cache, r.entry = "hit", hit
        elif r.slug not in picked:
            r.cache = "skipped"  # report() decides: kept or absent
        else:
            p.todo.append((r, inputs))
        p.results.append(r)
    digests.save()
    return p


def run(p: Plan, cache: Path, timeout: int, log) -> None:
    """Execute the planned misses, ``p.jobs`` kernels at a time; failures are recorded,
    and the entry of a failing lesson's key is removed (no older result stands in)."""
    def one(item):
        r, inputs = item
        log(f"running {r.lesson} ({r.why}) ...", flush=True)
        start = time.perf_counter()
        try:
            r.entry = execute.execute(r.lesson, r.key, inputs, cache, env=p.env,
                                      timeout=timeout, digests=p.digests)
            r.cache = "miss"
        except execute.LessonError as exc:
            r.cache, r.error = "failed", str(exc)
            execute.discard(cache, r.slug, r.key)
        r.seconds = time.perf_counter() - start

    execute.STOP.clear()
    try:
        if p.jobs > 1 and len(p.todo) > 1:
            pool = ThreadPoolExecutor(p.jobs)  # each lesson runs in its own kernel process
            try:
                list(pool.map(one, p.todo))
            except KeyboardInterrupt:
                execute.STOP.set()  # the other running lessons stop their kernels too
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for item in p.todo:
                one(item)
    finally:
        p.digests.save()


def build_info(p: Plan) -> dict:
    """``build-info.json``: the settings, and per lesson its cache status, title, summary,
    settings, values recorded, checks and notes (statements that do not hold for this
    model). A lesson kept from an earlier build keeps that build's row."""
    described = {entry["slug"]: entry for entry in p.catalog}
    lessons = []
    for r in p.results:
        manifest = r.entry.manifest if r.entry else {}
        about = described[r.slug]
        row = {"seconds": round(r.seconds, 2), "executed_seconds": manifest.get("seconds"),
               "cells": r.published.cells if r.published else None,
               "records": len(manifest.get("records", {})),
               "checks": manifest.get("checks", 0),
               "notes": r.published.notes if r.published else [],
               "nondeterministic": manifest.get("nondeterministic", []),
               "settings": p.settings_id if r.published else None}
        row["key"] = r.key
        if r.kept:
            row = {name: r.kept.get(name) for name in row} | {"seconds": 0.0}
        lessons.append({"slug": r.slug, "number": about["number"], "title": about["title"],
                        "summary": about["summary"], "cache": r.cache, **row})
    return {
        "model": p.settings.model, "weights": p.common["weights"],
        "labels": p.common["labels"], "layers": p.settings.layers,
        "preprocess": p.settings.preprocess, "device": p.device, "seed": p.seed,
        "strict": p.common["strict"], "versions": p.common["versions"],
        "settings": p.settings_id, "build": p.common["build"], "lessons": lessons,
    }


def _previous_rows(out: Path) -> dict[str, dict]:
    try:
        info = json.loads((out / "build-info.json").read_text(encoding="utf-8"))
        return {row["slug"]: row for row in info["lessons"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def settle(p: Plan, out: Path) -> None:
    """Publish every entry (refilling the prose of lessons whose markdown changed), and
    decide for each lesson ``--only`` left out: ``kept`` (the site shows it built with
    these very settings) or ``absent`` (left off the site)."""
    previous = _previous_rows(out)
    for r in p.results:
        if r.entry:
            try:
                r.published = execute.publish(r.lesson, r.entry)
            except execute.LessonError as exc:
                r.cache, r.error, r.entry = "failed", str(exc), None
        elif r.cache == "skipped":
            row = previous.get(r.slug) or {}
            shown = (out / assembly.LESSONS / f"{r.slug}.ipynb").is_file()
            same = row.get("settings") == p.settings_id and row.get("cache") in (
                "hit", "miss", "kept")
            r.cache, r.kept = ("kept", row) if shown and same else ("absent", None)


def report(p: Plan, out: Path, assets: Path, cache: Path, log) -> None:
    """Assemble the docs, prune the cache, print the summary; raise if a lesson failed."""
    settle(p, out)
    notebooks = {r.slug: (r.lesson, r.published.notebook) for r in p.results if r.published}
    keep = {f"{assembly.LESSONS}/{r.slug}{ext}"
            for r in p.results if r.cache == "kept" for ext in (".ipynb", "/")}
    info = build_info(p)
    broken = assembly.assemble(out, assets, notebooks, info, keep,
                               sources={r.slug: r.lesson for r in p.results})
    if broken:  # links to lessons, headings or figures that do not exist (docs not written)
        broken = ["broken links in lessons (write them as NN-slug.ipynb#anchor, see "
                  "CONTRIBUTING.md):", *broken]
    for r in p.results:
        if r.entry:
            execute.prune(cache, r.slug, r.key)
    log(summary(p.results), flush=True)
    absent = [r.slug for r in p.results if r.cache == "absent"]
    if absent:
        log(f"not on the site: {', '.join(absent)} (not selected by --only, and no cache entry "
            "for these settings; build them with --only, or without it)", flush=True)
    for r, about in zip(p.results, p.catalog):
        for problem in about["problems"]:
            log(f"warning: {r.lesson}: {problem}", flush=True)
        for cell, size in (r.published.large_text_outputs if r.published else []):
            log(f"warning: {r.lesson}: cell {cell} outputs {size / 1000:.0f} kB of text "
                "(end the cell with ';' if it returns data)", flush=True)
    notes = notes_summary(info)
    if notes:
        log(notes, flush=True)
    failed = [r.error for r in p.results if r.cache == "failed"] + ["\n".join(broken)] * bool(broken)
    if failed:
        raise BuildFailed("\n\n".join(failed))


def build(*, lessons_dir="lessons", out="build/docs", cache=".cache/lessons", assets="site_assets",
          model=None, weights=None, labels=None, layers=None, preprocess=None, device="auto",
          seed=0, force=False, only=None, timeout=900, jobs=None, log=print) -> list[Result]:
    """Plan, run, report (see the module's docstring); ``model=None`` is the default model."""
    lessons_dir, out, cache = Path(lessons_dir), Path(out), Path(cache)
    settings = ModelSettings.of(model, weights, labels, layers, preprocess)
    p = plan(lessons_dir, cache, settings, device, seed, force, only, jobs)
    if p.todo:  # a lesson will run: its settings must load (hits were made with them)
        for note in check_settings(settings):
            log(f"note: {note}", flush=True)
    run(p, cache, timeout, log)
    report(p, out, Path(assets), cache, log)
    return p.results


NOTES = {"kept": "  (kept: built earlier with these settings)",
         "absent": "  (not on the site: no entry for these settings)"}


def summary(results: list[Result]) -> str:
    width = max([len(r.slug) for r in results] + [6])
    lines = [f"{'lesson':<{width}}  {'cache':<7}  {'seconds':>8}  {'values':>6}  {'checks':>6}"]
    for r in results:
        manifest = r.entry.manifest if r.entry else {}
        note = NOTES.get(r.cache, "")
        if r.cache == "hit":
            note = f"  (executed in {manifest['seconds']:.1f} s)"
        lines.append(f"{r.slug:<{width}}  {r.cache:<7}  {r.seconds:>8.2f}  "
                     f"{len(manifest.get('records', {})):>6}  {manifest.get('checks', 0):>6}"
                     f"{note}")
    return "\n".join(lines)


def notes_summary(info: dict) -> str:
    """The build's last lines: every statement that does not hold for this model."""
    notes = [(lesson["slug"], note) for lesson in info["lessons"] for note in lesson["notes"]]
    if not notes:
        return ""
    lines = [f"notes: {len(notes)} statement(s) of the text do not hold for model "
             f"{info['model']} on {info['device']} (each page says so in place):"]
    for slug, note in notes:
        value = f" (measured {note['value']})" if note.get("value") is not None else ""
        lines.append(f"  {slug}, cell {note['cell']}: {note['claim']}{value}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m coursebuild", description=__doc__.split("\n")[0])
    env = os.environ.get
    p.add_argument("--model", metavar="SPEC", default=env("CONVLENS_MODEL") or None,
                   help="the lessons' model: a registry name (efficientnet_lite0, alexnet, "
                   "vgg16, ...), torchvision:BUILDER, timm:NAME, path/to/file.py:FUNCTION or "
                   "package.module:FUNCTION (default: $CONVLENS_MODEL, else convlens's "
                   "default model)")
    p.add_argument("--weights", metavar="FILE", default=env("CONVLENS_WEIGHTS") or None,
                   help="a state dict for the model (default: $CONVLENS_WEIGHTS, else its own)")
    p.add_argument("--labels", metavar="FILE", default=env("CONVLENS_LABELS") or None,
                   help="class names, one per line (default: $CONVLENS_LABELS, else ImageNet)")
    p.add_argument("--layer", metavar="ROLE=NAME", action="append", default=None,
                   help="override a layer role, e.g. last_spatial=features.28 (repeatable; "
                   "default: $CONVLENS_LAYERS)")
    p.add_argument("--preprocess", metavar="SPEC", default=env("CONVLENS_PREPROCESS") or None,
                   help="the model's input preprocessing, any of resize=N,crop=N,mean=R/G/B,"
                   "std=R/G/B,interpolation=MODE (default: $CONVLENS_PREPROCESS, else the "
                   "weights' own)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="re-execute even on a cache hit")
    p.add_argument("--only", nargs="+", metavar="SLUG",
                   help="execute only these lessons (slug, number or name); others: cache only")
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    p.add_argument("--jobs", type=int, default=None,
                   help="lessons executed at once (default: 1 on a GPU or under 4 cores)")
    p.add_argument("--lessons-dir", default="lessons")
    p.add_argument("--out", default="build/docs")
    p.add_argument("--cache", default=".cache/lessons")
    p.add_argument("--assets", default="site_assets")
    args = p.parse_args(argv)
    if args.layer is None:
        args.layer = env("CONVLENS_LAYERS") or None
    if args.jobs is not None and args.jobs < 1:
        p.error("--jobs must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        build(lessons_dir=args.lessons_dir, out=args.out, cache=args.cache, assets=args.assets,
              model=args.model, weights=args.weights, labels=args.labels, layers=args.layer,
              preprocess=args.preprocess, device=args.device, seed=args.seed, force=args.force, only=args.only,
              timeout=args.timeout, jobs=args.jobs)
    except BuildFailed as exc:
        print(f"\ncoursebuild: FAILED\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncoursebuild: interrupted (the cache holds only complete entries)",
              file=sys.stderr)
        return 130
    except (ValueError, RuntimeError) as exc:
        print(f"coursebuild: {exc}", file=sys.stderr)
        return 2
    print(f"coursebuild: done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0
