"""Compare two builds of the same lessons: are the figures byte-identical, and do the recorded
values agree apart from those recorded as timings (``record(..., timing=True)``)?

    python -m coursebuild.compare FIRST SECOND

Each argument is a lesson cache folder (``.cache/lessons``: the newest entry of each lesson is
taken) or one cache entry (``.ipynb``). Copy the cache aside after one ``--force`` build, run a
second, and compare the copy with the cache. Prints one line per lesson and exits with 1 when
a figure or a value differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


@dataclass
class Difference:
    """What differs between two entries of one lesson."""

    figures: int = 0           # figures compared
    figures_changed: list[int] = field(default_factory=list)  # 1-based figure numbers
    values: int = 0            # recorded values compared (timings left out)
    values_changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    timings: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.figures_changed and not self.values_changed


def figures(nb: dict) -> list[str]:
    """The sha256 of every figure output of an executed notebook, in order."""
    found = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for kind in IMAGE_TYPES:
                if kind in data:
                    payload = data[kind]
                    text = "".join(payload) if isinstance(payload, list) else payload
                    found.append(hashlib.sha256(text.encode()).hexdigest())
    return found


def compare(first: dict, second: dict) -> Difference:
    """Compare two executed notebooks of one lesson (cache entries, with their manifest)."""
    manifests = [nb.get("metadata", {}).get("coursebuild") for nb in (first, second)]
    if None in manifests:
        raise ValueError("not a cache entry: the notebook has no coursebuild manifest")
    timings = sorted(set(manifests[0].get("timings", [])) | set(manifests[1].get("timings", [])))
    a, b = figures(first), figures(second)
    diff = Difference(figures=max(len(a), len(b)), timings=timings)
    diff.figures_changed = [n for n in range(1, diff.figures + 1)
                            if n > min(len(a), len(b)) or a[n - 1] != b[n - 1]]
    records = [{k: v for k, v in m.get("records", {}).items() if k not in timings}
               for m in manifests]
    names = sorted(set(records[0]) | set(records[1]))
    diff.values = len(names)
    diff.values_changed = {n: (records[0].get(n, "(absent)"), records[1].get(n, "(absent)"))
                           for n in names if records[0].get(n) != records[1].get(n)}
    return diff


def entries(path: Path) -> dict[str, Path]:
    """slug -> entry: the file itself, or the newest entry of each lesson of a cache folder."""
    path = Path(path)
    if path.is_file():
        return {path.parent.name: path}
    found = {}
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.ipynb"), key=lambda f: f.stat().st_mtime)
        if files:
            found[folder.name] = files[-1]
    if not found:
        raise ValueError(f"{path}: no cache entries (expected <slug>/<key>.ipynb files)")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursebuild.compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    left, right = entries(args.first), entries(args.second)
    same = True
    for slug in sorted(set(left) & set(right)):
        diff = compare(*(json.loads(p.read_text(encoding="utf-8"))
                         for p in (left[slug], right[slug])))
        same &= diff.same
        print(f"{slug}: figures {diff.figures - len(diff.figures_changed)}/{diff.figures} "
              f"identical, values {diff.values - len(diff.values_changed)}/{diff.values} equal "
              f"({len(diff.timings)} timings left out)"
              + "".join(f"\n  figure {n} differs" for n in diff.figures_changed)
              + "".join(f"\n  {{{{ {k} }}}}: {a!r} vs {b!r}"
                        for k, (a, b) in diff.values_changed.items()))
    for slug in sorted(set(left) ^ set(right)):
        print(f"{slug}: only in {'the first' if slug in left else 'the second'}")
        same = False
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
