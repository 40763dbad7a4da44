"""Execute one lesson with nbclient, store the result as a cache entry, publish it.

A cache entry is one file, ``<cache>/<slug>/<key>.ipynb``: the executed notebook (outputs,
its ``{{ name }}`` placeholders filled: see :mod:`coursebuild.prose`) whose metadata
``coursebuild`` is the manifest (the key's inputs, the recorded values, the number of checks,
the notes, the depfile, ``created``). It is written inside a scratch folder and moved onto
its name with one ``os.replace``, which is atomic: a reader (another build, ``mkdocs serve``)
sees the old entry or the new one, never a part of one; two builds racing on one key leave
one complete entry (the last one written); a forced run replaces the entry it re-ran; an
interrupted run leaves the old entry or none. A run that fails removes the entry of its key,
so an older result never stands in for a failing lesson.

:func:`publish` makes the page's notebook from an entry and the lesson's *current* source:
its markdown cells, refilled from the manifest's records, around the entry's code cells and
outputs (the key covers the code cells only, so fixing a sentence runs nothing).

The kernel is ipykernel's native ``python3`` spec only (user kernelspecs are not searched),
which runs ``sys.executable``: the interpreter running the build. Its working directory is a
scratch folder, removed afterwards: lessons must not rely on a working directory (they load
everything through the course runtime). ``kernel_probe.py`` runs at the kernel's start
(``PYTHONSTARTUP``) and a last, hidden cell reports what the lesson imported and read: the
depfile (:func:`coursebuild.keys.depfile`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from convlens_course.protocol import CUBLAS_WORKSPACE_CONFIG
from coursebuild import keys, prose

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STOP = threading.Event()  # set by the build on Ctrl-C: running lessons stop, kernels end
PROBE = Path(__file__).with_name("kernel_probe.py")
PROBE_CELL = "__import__('_coursebuild_probe').report()"
TMP = ".tmp-"  # scratch folders of running lessons, inside <cache>/<slug>/


class LessonError(Exception):
    """A lesson failed; the message is short and names the lesson file and the cell."""


@dataclass
class Entry:
    path: Path  # <cache>/<slug>/<key>.ipynb
    manifest: dict
    notebook: dict  # the executed notebook as JSON (its metadata holds the manifest)


@dataclass
class Published:
    """What the site gets from an entry: the page's notebook and its facts."""

    notebook: bytes
    cells: int
    notes: list[dict]
    large_text_outputs: list[list[int]]


def entry_path(cache_root: Path, slug: str, key: str) -> Path:
    return Path(cache_root) / slug / f"{key}.ipynb"


def find(cache_root: Path, slug: str, key: str,
         digests: keys.Digests | None = None) -> tuple[Entry | None, str]:
    """``(entry, "")`` when the cache holds a valid entry for ``key``, else ``(None, why)``:
    none stored, or a file of its depfile changed (named)."""
    path = entry_path(cache_root, slug, key)
    try:
        notebook = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None, "not cached"
    manifest = notebook.get("metadata", {}).get("coursebuild")
    if not isinstance(manifest, dict) or (manifest.get("slug"), manifest.get("key")) != (
            slug, key):
        return None, "not cached"
    stale = keys.stale_dependency(manifest.get("deps", []), digests or keys.Digests())
    if stale:
        return None, f"{stale} changed"
    return Entry(path, manifest, notebook), ""


def lookup(cache_root: Path, slug: str, key: str,
           digests: keys.Digests | None = None) -> Entry | None:
    """The valid entry for ``key`` (see :func:`find`), or None."""
    return find(cache_root, slug, key, digests)[0]


def read_lesson(lesson: Path):
    """The jupytext percent-format lesson as a notebook, with the python3 kernelspec."""
    import jupytext

    nb = jupytext.read(lesson)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def describe_failure(lesson: Path, nb, index: int | None, exc: BaseException) -> str:
    """Lesson file, cell number (1-based, and its line in the .py), first lines, exception."""
    lines = [f"{lesson}: lesson failed"]
    if index is not None:
        source = nb.cells[index].source
        text = Path(lesson).read_text(encoding="utf-8")
        at = text.find(source) if source.strip() else -1  # code cells are verbatim
        where = f", line {text.count(chr(10), 0, at) + 1}" if at >= 0 else ""
        lines[0] = f"{lesson}: cell {index + 1}{where} failed"
        head = source.splitlines()[:4]
        lines += [f"    | {line}" for line in head]
        if len(source.splitlines()) > len(head):
            lines.append("    | ...")
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        lines.append(f"  {ename}: {ANSI.sub('', str(evalue)).strip()}")
        frames = getattr(exc, "traceback", None) or ""  # nbclient: one string; kernels: a list
        frames = frames if isinstance(frames, str) else "\n".join(frames)
        frames = [line for line in ANSI.sub("", frames).strip().splitlines()[:-1]  # no message
                  if line.strip() and "Traceback (most recent call last)" not in line
                  and set(line.strip()) != {"-"}]
        lines += [f"  . {line}" for line in frames[-5:]]
    else:
        lines.append(f"  {type(exc).__name__}: {ANSI.sub('', str(exc)).strip()[:500]}")
    return "\n".join(lines)


def large_text_outputs(nb, limit: int = 50_000) -> list[list[int]]:
    """[cell number, characters] of text outputs over ``limit``: usually a cell that ends in
    an expression returning data (bytes, a big array) whose repr then bloats the page."""
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            if len(text) > limit:
                found.append([index + 1, len(text)])
    return found


def kernel_env(settings_env: dict[str, str], device: str, seed: int, jobs: int) -> dict:
    """The lesson kernel's environment: the build's, with the model settings, device and
    seed; the inline backend, as in Jupyter; fewer threads per kernel when several run."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CONVLENS_MODEL", "CONVLENS_WEIGHTS", "CONVLENS_LABELS",
                        "CONVLENS_LAYERS", "CONVLENS_PREPROCESS", "MPLBACKEND")}
    env.update(settings_env, CONVLENS_DEVICE=device, CONVLENS_SEED=str(seed),
               PYTHONHASHSEED="0", PYDEVD_DISABLE_FILE_VALIDATION="1")
    # cuBLAS reads its workspace setting once, before the lesson's first line could set it
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    if jobs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _run_cells(lesson: Path, nb, *, cwd: Path, env: dict, timeout: int) -> None:
    """Execute ``nb`` in place; raise ``LessonError`` on the first failing cell."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    specs = KernelSpecManager(kernel_dirs=[])  # ipykernel's own spec: sys.executable
    sockets = tempfile.mkdtemp(prefix="coursebuild-")  # short path: unix sockets, not TCP
    km = KernelManager(kernel_name="python3", kernel_spec_manager=specs, transport="ipc",
                       ip=os.path.join(sockets, "kernel"))
    current: dict = {"index": None}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    client = NotebookClient(
        nb, km=km, timeout=timeout, startup_timeout=120, allow_errors=False,
        record_timing=False, on_cell_start=on_cell_start,
        resources={"metadata": {"path": str(cwd)}},
    )
    failure: list[BaseException] = []

    def run():
        try:  # we made km, so nbclient would leave the kernel running without cleanup_kc
            client.execute(env=env, cleanup_kc=True)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the caller's thread
            failure.append(exc)

    # nbclient traps SIGINT/SIGTERM when it runs on the main thread (and then neither stops
    # the build); on a thread of its own it does not, so Ctrl-C and STOP end the build.
    worker = threading.Thread(target=run, name=f"kernel-{Path(lesson).stem}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
            if STOP.is_set():
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        raise
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    if failure:  # CellExecutionError, CellTimeoutError, DeadKernelError, ...
        raise LessonError(describe_failure(lesson, nb, current["index"], failure[0])) from None


def run_notebook(lesson: Path, nb, *, cwd: Path, env: dict, timeout: int) -> dict:
    """Execute ``nb`` in place and return what the kernel imported and read
    (``kernel_probe``'s report); raise ``LessonError`` on the first failing cell."""
    import nbformat

    probe = nbformat.v4.new_code_cell(PROBE_CELL)
    nb.cells.append(probe)
    try:
        _run_cells(lesson, nb, cwd=cwd, env={**env, "PYTHONSTARTUP": str(PROBE)},
                   timeout=timeout)
    finally:
        if nb.cells and nb.cells[-1] is probe:
            nb.cells.pop()
    for output in probe.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
            with contextlib.suppress(ValueError):
                return json.loads(text.strip().splitlines()[-1])
    raise LessonError(f"{lesson}: the kernel did not report the files the lesson read "
                      f"(its start-up file {PROBE} did not run: PYTHONSTARTUP ignored?)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def execute(lesson: Path, key: str, inputs: dict, cache_root: Path, *, env: dict,
            timeout: int, digests: keys.Digests | None = None) -> Entry:
    """Run ``lesson`` and store it as ``<cache_root>/<slug>/<key>.ipynb``, replacing any
    entry of that key; return the new entry (this run's, even if another build stores the
    same key a moment later)."""
    import nbformat

    slug = Path(lesson).stem
    final = entry_path(cache_root, slug, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{TMP}{key[:12]}-", dir=final.parent))
    try:
        (scratch / "work").mkdir()
        nb = read_lesson(lesson)
        started_ns, start = time.time_ns(), time.perf_counter()
        report = run_notebook(lesson, nb, cwd=scratch / "work", env=env, timeout=timeout)
        seconds = round(time.perf_counter() - start, 2)
        try:
            checked = prose.finish(lesson, nb)  # fill {{ name }}, collect notes, strip
        except prose.ProseError as exc:
            raise LessonError(str(exc)) from None
        for number, cell in enumerate(nb.cells, 1):
            cell.id = f"cell-{number}"  # jupytext draws random ids
        manifest = {
            "slug": slug, "key": key, "inputs": inputs, "seconds": seconds,
            "device": inputs.get("device"), "cells": len(nb.cells),
            "code_cells": sum(c.cell_type == "code" for c in nb.cells),
            "python": sys.executable, "large_text_outputs": large_text_outputs(nb),
            **checked,
            "deps": keys.depfile(report, started_ns, digests or keys.Digests(),
                                 exclude=[cache_root]),
            "created": _now(),
        }
        nb.metadata["coursebuild"] = manifest
        text = nbformat.writes(nb) + "\n"
        (scratch / final.name).write_text(text, encoding="utf-8")
        os.replace(scratch / final.name, final)  # atomic: the old entry or this one
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Entry(final, manifest, json.loads(text))


def discard(cache_root: Path, slug: str, key: str) -> None:
    """Remove the entry of ``key`` (its lesson just failed under that key)."""
    with contextlib.suppress(FileNotFoundError):
        entry_path(cache_root, slug, key).unlink()


def _renumber(entry: Entry, layout: list[str]) -> dict[int, int]:
    """Executed cell number -> cell number in ``layout`` (cell types of the page), for the
    code cells (the n-th code cell of one is the n-th of the other)."""
    old = [i + 1 for i, c in enumerate(entry.notebook["cells"]) if c["cell_type"] == "code"]
    new = [i + 1 for i, kind in enumerate(layout) if kind == "code"]
    return dict(zip(old, new))


def publish(lesson: Path, entry: Entry) -> Published:
    """The page's notebook: the lesson's current markdown (and raw) cells, refilled from the
    entry's records, around the entry's code cells with their outputs; cell ids numbered,
    the manifest left out. ``LessonError`` when the prose names a value nobody recorded."""
    import nbformat

    source = read_lesson(lesson)
    page = nbformat.from_dict(copy.deepcopy(entry.notebook))
    page.metadata.pop("coursebuild", None)
    executed = iter([c for c in page.cells if c.cell_type == "code"])
    cells = []
    for cell in source.cells:
        if cell.cell_type == "code":
            done = next(executed, None)
            ran = done and ("".join(done.source) if isinstance(done.source, list) else done.source)
            if done is None or ran != cell.source:
                raise LessonError(f"{lesson}: its cache entry {entry.path} does not match its "
                                  "code cells (delete the entry, or run with --force)")
            done.source, done.metadata = cell.source, cell.metadata
            cell = done
        cell.id = f"cell-{len(cells) + 1}"
        cells.append(cell)
    page.cells = cells
    try:
        prose.check_fill(lesson, page, entry.manifest["records"])
    except prose.ProseError as exc:
        raise LessonError(str(exc)) from None
    moved = _renumber(entry, [c.cell_type for c in cells])
    notes = [{**note, "cell": moved.get(note["cell"], note["cell"])}
             for note in entry.manifest.get("notes", [])]
    return Published((nbformat.writes(page) + "\n").encode(), len(cells), notes,
                     large_text_outputs(page))


def prune(cache_root: Path, slug: str, current: str, keep: int = 8) -> None:
    """Keep ``current`` and the ``keep - 1`` newest other entries of ``slug`` (other models,
    devices, older sources); drop scratch folders of runs killed over an hour ago, and
    folders of the cache's former layout (``<key>/manifest.json``: never looked up)."""
    folder = Path(cache_root) / slug
    if not folder.is_dir():
        return
    entries = []
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.name.startswith(TMP):
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path, ignore_errors=True)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.suffix == ".ipynb" and path.stem != current:
                entries.append((path.stat().st_mtime_ns, path))
    for _, path in sorted(entries, reverse=True)[keep - 1:]:
        path.unlink(missing_ok=True)
