"""The pipeline and its command line: key every lesson, execute the misses, assemble.

    python -m coursebuild [--model NAME] [--device auto|cpu|cuda] [--seed N] [--force]
                          [--only SLUG ...] [--timeout SECONDS] [--jobs N]
                          [--lessons-dir lessons] [--out build/docs] [--cache .cache/lessons]
                          [--assets site_assets]

Exit status: 0 when every selected lesson ran or hit the cache, 1 when one failed (its
message names the lesson file and the cell), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from coursebuild import assemble as assembly
from coursebuild import execute, keys

DEFAULT_MODEL = "efficientnet_lite0"


class BuildFailed(Exception):
    """One or more lessons failed; the message lists them, one short report each."""


@dataclass
class Result:
    slug: str
    lesson: Path
    key: str = ""
    cache: str = ""  # hit, miss, skipped, failed
    seconds: float = 0.0  # wall time in this build
    entry: execute.Entry | None = None
    error: str = ""


def default_jobs(device: str) -> int:
    """One kernel at a time on a GPU or a small machine; else a few, each with fewer threads."""
    cpus = os.cpu_count() or 1
    return 1 if device == "cuda" or cpus < 4 else min(4, cpus // 2)


def kernel_env(model: str, device: str, seed: int, jobs: int) -> dict:
    env = dict(os.environ, CONVLENS_MODEL=model, CONVLENS_DEVICE=device,
               CONVLENS_SEED=str(seed), PYTHONHASHSEED="0", PYDEVD_DISABLE_FILE_VALIDATION="1")
    env.pop("MPLBACKEND", None)  # ipykernel then selects the inline backend, as in Jupyter
    if jobs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


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


def build(*, lessons_dir="lessons", out="build/docs", cache=".cache/lessons", assets="site_assets",
          model=DEFAULT_MODEL, device="auto", seed=0, force=False, only=None, timeout=900,
          jobs=None, log=print) -> list[Result]:
    lessons_dir, out, cache = Path(lessons_dir), Path(out), Path(cache)
    lessons = keys.find_lessons(lessons_dir)
    picked = select(lessons, only)
    device = keys.resolve_device(device)
    jobs = jobs or default_jobs(device)
    common = keys.common_inputs(model, device, seed, memo=cache / "weights-identity.json")
    env = kernel_env(model, device, seed, jobs)

    results, todo = [], []
    for lesson in lessons:
        r = Result(lesson.stem, lesson)
        inputs = keys.lesson_inputs(lesson, common)
        r.key = keys.cache_key(inputs)
        hit = None if (force and r.slug in picked) else execute.lookup(cache, r.slug, r.key)
        if hit:
            r.cache, r.entry = "hit", hit
        elif r.slug not in picked:
            r.cache = "skipped"
        else:
            todo.append((r, inputs))
        results.append(r)

    def run(item):
        r, inputs = item
        log(f"running {r.lesson} ...", flush=True)
        start = time.perf_counter()
        try:
            r.entry = execute.execute(r.lesson, r.key, inputs, cache, env=env, timeout=timeout)
            r.cache = "miss"
        except execute.LessonError as exc:
            r.cache, r.error = "failed", str(exc)
        r.seconds = time.perf_counter() - start

    execute.STOP.clear()
    if jobs > 1 and len(todo) > 1:
        pool = ThreadPoolExecutor(jobs)  # each lesson runs in its own kernel process
        try:
            list(pool.map(run, todo))
        except KeyboardInterrupt:
            execute.STOP.set()  # the other running lessons stop their kernels too
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for item in todo:
            run(item)

    info = {
        "model": model, "device": device, "seed": seed, "weights": common["weights"],
        "versions": common["versions"], "trees": common["trees"],
        "lessons": [{
            "slug": r.slug, "cache": r.cache, "key": r.key, "seconds": round(r.seconds, 2),
            "executed_seconds": r.entry.manifest["seconds"] if r.entry else None,
            "cells": r.entry.manifest["cells"] if r.entry else None,
        } for r in results],
    }
    notebooks = {r.slug: (r.lesson, r.entry.notebook) for r in results if r.entry}
    keep = {f"{assembly.LESSONS}/{r.slug}.{ext}"
            for r in results if r.cache == "skipped" for ext in ("ipynb", "py")}
    assembly.assemble(out, assets, notebooks, info, keep)

    for r in results:
        if r.entry:
            execute.prune(cache, r.slug, r.key)
    log(summary(results), flush=True)
    for r in results:
        for cell, size in (r.entry.manifest.get("large_text_outputs", []) if r.entry else []):
            log(f"warning: {r.lesson}: cell {cell} outputs {size / 1000:.0f} kB of text "
                "(end the cell with ';' if it returns data)", flush=True)
    failed = [r for r in results if r.cache == "failed"]
    if failed:
        raise BuildFailed("\n\n".join(r.error for r in failed))
    return results


def summary(results: list[Result]) -> str:
    width = max([len(r.slug) for r in results] + [6])
    lines = [f"{'lesson':<{width}}  {'cache':<7}  {'seconds':>8}"]
    for r in results:
        note = ""
        if r.cache == "hit":
            note = f"  (executed in {r.entry.manifest['seconds']:.1f} s)"
        lines.append(f"{r.slug:<{width}}  {r.cache:<7}  {r.seconds:>8.2f}{note}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m coursebuild", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.environ.get("CONVLENS_MODEL", DEFAULT_MODEL),
                   help="registry model of the lessons (default: $CONVLENS_MODEL or "
                   f"{DEFAULT_MODEL})")
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
    if args.jobs is not None and args.jobs < 1:
        p.error("--jobs must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        build(lessons_dir=args.lessons_dir, out=args.out, cache=args.cache, assets=args.assets,
              model=args.model, device=args.device, seed=args.seed, force=args.force,
              only=args.only, timeout=args.timeout, jobs=args.jobs)
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
