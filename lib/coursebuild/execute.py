"""Execute one lesson with nbclient and store the result as a cache entry.

A cache entry is ``<cache>/<slug>/<key>/`` holding ``<slug>.ipynb`` (executed, with outputs,
its ``{{ name }}`` placeholders filled: see :mod:`coursebuild.prose`) and ``manifest.json``
(with the recorded values, the number of checks and the notes). It is written into ``<cache>/<slug>/.tmp-*`` and renamed into place,
so an interrupted or failed run never leaves a partial entry under a key.

The kernel is ipykernel's native ``python3`` spec only (user kernelspecs are not searched),
which runs ``sys.executable``: the interpreter running the build. Its working directory is a
scratch folder inside the temporary entry, removed afterwards: lessons must not rely on a
working directory (they load everything through ``convlens``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from coursebuild import prose

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MANIFEST = "manifest.json"
STOP = threading.Event()  # set by the build on Ctrl-C: running lessons stop, kernels end


class LessonError(Exception):
    """A lesson failed; the message is short and names the lesson file and the cell."""


@dataclass
class Entry:
    path: Path  # the entry folder
    manifest: dict

    @property
    def notebook(self) -> Path:
        return self.path / f"{self.manifest['slug']}.ipynb"


def lookup(cache_root: Path, slug: str, key: str) -> Entry | None:
    path = Path(cache_root) / slug / key
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    entry = Entry(path, manifest)
    return entry if entry.notebook.is_file() else None


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


def run_notebook(lesson: Path, nb, *, cwd: Path, env: dict, timeout: int) -> None:
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


def execute(lesson: Path, key: str, inputs: dict, cache_root: Path, *, env: dict,
            timeout: int) -> Entry:
    """Run ``lesson`` and store it under ``<cache_root>/<slug>/<key>/``; return the entry."""
    import nbformat

    slug = Path(lesson).stem
    final = Path(cache_root) / slug / key
    tmp = final.parent / f".tmp-{key[:12]}-{uuid.uuid4().hex[:8]}"
    (tmp / "work").mkdir(parents=True)
    try:
        nb = read_lesson(lesson)
        start = time.perf_counter()
        run_notebook(lesson, nb, cwd=tmp / "work", env=env, timeout=timeout)
        seconds = round(time.perf_counter() - start, 2)
        try:
            checked = prose.finish(lesson, nb)  # fill {{ name }}, collect notes, strip
        except prose.ProseError as exc:
            raise LessonError(str(exc)) from None
        nbformat.write(nb, tmp / f"{slug}.ipynb")
        manifest = {
            "slug": slug, "key": key, "inputs": inputs, "seconds": seconds,
            "device": inputs.get("device"), "cells": len(nb.cells),
            "code_cells": sum(c.cell_type == "code" for c in nb.cells),
            "python": sys.executable, "large_text_outputs": large_text_outputs(nb),
            **checked,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        shutil.rmtree(tmp / "work")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        try:
            tmp.rename(final)
        except OSError:  # another build stored the same key meanwhile: same content
            if lookup(cache_root, slug, key) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lookup(cache_root, slug, key)


def prune(cache_root: Path, slug: str, current: str, keep: int = 8) -> None:
    """Keep ``current`` and the ``keep - 1`` newest other entries of ``slug`` (other models,
    devices, older sources); drop temporary folders of runs killed over an hour ago."""
    folder = Path(cache_root) / slug
    if not folder.is_dir():
        return
    entries = []
    for path in folder.iterdir():
        if path.name.startswith(".tmp-"):
            if time.time() - path.stat().st_mtime > 3600:
                shutil.rmtree(path, ignore_errors=True)
        elif path.name != current and path.is_dir():
            found = lookup(cache_root, slug, path.name)
            entries.append((found.manifest.get("created", "") if found else "", path))
    for _, path in sorted(entries, reverse=True)[keep - 1:]:
        shutil.rmtree(path, ignore_errors=True)
