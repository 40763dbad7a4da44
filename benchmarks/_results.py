"""Where and how the benchmarks write their results: one JSON file per run in
``benchmarks/results/``, named ``<benchmark>-<date>-<commit>.json`` (``-dirty`` when the
work tree had changes, ``-2``, ``-3``... when that name is taken). The site's Benchmarks
page (``coursebuild.benchmarks``) is built from these files; commit the ones worth keeping.

Every file has ``benchmark``, ``version``, ``date`` (UTC, ISO 8601), ``command``, ``commit``,
``dirty`` and ``host``; then its own fields: ``settings``/``models``/``lecture`` for
occlusion, ``comparisons`` (a baseline and convlens, one measure each) for the others.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def host(device) -> dict:
    """What the results were measured on: CPU model, cores, threads, accelerator, software."""
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "device": str(device), "accelerator": (torch.cuda.get_device_name(device)
                                                   if device.type == "cuda" else None),
            "system": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def commit() -> dict:
    """The commit measured, and whether the work tree had changes on top of it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def result(benchmark: str, device, **fields) -> dict:
    """A result's common fields (``version`` 1, now, the command line, commit, host) and
    ``fields``."""
    return {"benchmark": benchmark, "version": 1,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            **commit(), "host": host(device), **fields}


def default_path(data: dict, folder: Path = RESULTS) -> Path:
    """``folder/<benchmark>-<YYYY-MM-DD>-<commit>[-dirty][-N].json``, a name not yet taken."""
    stem = "-".join([data["benchmark"], (data.get("date") or "undated")[:10],
                     (data.get("commit") or "unknown")[:7]] + ["dirty"] * bool(data.get("dirty")))
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


def write(data: dict, path=None) -> Path:
    """Write ``data`` to ``path`` (default: :func:`default_path`); print where."""
    path = Path(path) if path else default_path(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {path}")
    return path


def comparison(case: str, measure: str, unit: str, baseline: tuple[str, float],
               ours: tuple[str, float]) -> dict:
    """One row of a ``comparisons`` list: what each side is and its value."""
    return {"case": case, "measure": measure, "unit": unit,
            "baseline": {"what": baseline[0], "value": baseline[1]},
            "convlens": {"what": ours[0], "value": ours[1]},
            "convlens_over_baseline": ours[1] / baseline[1]}
