"""What the Library reference costs ``mkdocs build``: the site built with and without it,
back to back on the same machine (prints times and their ratio, never asserts).

    python -m coursebuild                          # once: build/docs must exist
    python benchmarks/bench_reference.py           # 3 builds of each, alternating
    python benchmarks/bench_reference.py --repeat 5

*With* is ``mkdocs.yml`` as it is. *Without* is the same configuration minus the
``mkdocstrings`` and ``autorefs`` plugins and the Library section, on a copy of
``build/docs`` without ``library/``. Both write to temporary folders (``site/`` is left
alone), run from the repository root, and share the notebook conversion cache, so the
difference is the reference. On a shared machine single timings are noisy: the minimum of
each is compared, wall-clock and CPU time (user + system of the build process, which other
processes' load inflates less).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mkdocs.utils.yaml import yaml_load

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PLUGINS = ("mkdocstrings", "autorefs")
SECTION = "Library"


def plugin_name(entry) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def configs(folder: Path) -> dict[str, Path]:
    """The two configuration files (in the repository root, so relative paths hold)."""
    with open(ROOT / "mkdocs.yml", encoding="utf-8") as f:
        config = yaml_load(f)
    docs = ROOT / config["docs_dir"]
    if not (docs / "build-info.json").is_file():
        sys.exit(f"{docs} is not built: run `python -m coursebuild` first")
    bare_docs = folder / "docs-without"
    shutil.copytree(docs, bare_docs, ignore=lambda d, names: ["library"] if Path(d) == docs else [])
    variants = {
        "with": {"INHERIT": "mkdocs.yml", "site_dir": str(folder / "site-with")},
        "without": {
            "INHERIT": "mkdocs.yml", "site_dir": str(folder / "site-without"),
            "docs_dir": str(bare_docs),
            "plugins": [p for p in config["plugins"] if plugin_name(p) not in REFERENCE_PLUGINS],
            "nav": [item for item in config["nav"]
                    if not (isinstance(item, dict) and SECTION in item)],
        },
    }
    paths = {}
    for name, variant in variants.items():
        path = ROOT / f".bench-reference-{name}.yml"
        path.write_text(yaml.safe_dump(variant, sort_keys=False), encoding="utf-8")
        paths[name] = path
    return paths


def build(config: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one build."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                             str(config)], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        sys.exit(f"mkdocs build -f {config.name} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="builds of each variant")
    args, _ = parser.parse_known_args()  # `nox -s bench -- --quick` passes options to all
    folder = Path(tempfile.mkdtemp(prefix="convlens-bench-reference-"))
    paths = {}
    try:
        paths = configs(folder)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for _ in range(args.repeat):
            for name, path in paths.items():
                times[name].append(build(path))
    finally:
        for path in paths.values():
            path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"mkdocs build --strict, {args.repeat} builds of each, alternating "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("| site | wall min (s) | wall median (s) | CPU min (s) | CPU median (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        print(f"| {name} the Library reference | {min(wall):.1f} | "
              f"{statistics.median(wall):.1f} | {min(cpu):.1f} | {statistics.median(cpu):.1f} |")
    for kind, index in (("wall", 0), ("CPU", 1)):
        low = {name: min(v[index] for v in values) for name, values in times.items()}
        print(f"with / without ({kind}, min): {low['with'] / low['without']:.2f}x, "
              f"{low['with'] - low['without']:+.1f} s")


if __name__ == "__main__":
    main()
