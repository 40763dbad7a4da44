"""What a lesson's executed notebook depends on, and the cache key made from it.

The key is a sha256 over a JSON document of every input of the output: the lesson source,
the ``coursebuild`` source tree and the files of ``convlens`` the lesson can run (relative
paths and bytes; see :mod:`coursebuild.depends`), the model name
and the identity of its weights file, the device, the seed, and the versions of Python and
the libraries. Modification times are never read: a fresh clone must hit the same entries.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import sys
from pathlib import Path

from coursebuild import depends

LESSON_NAME = re.compile(r"^(\d\d)-([a-z0-9]+(?:-[a-z0-9]+)*)\.py$")
VERSIONED = ("torch", "torchvision", "timm", "numpy", "matplotlib", "convlens")
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}


def find_lessons(lessons_dir: Path) -> list[Path]:
    """``NN-slug.py`` files of ``lessons_dir`` in course order (other files are ignored)."""
    return sorted(p for p in Path(lessons_dir).iterdir() if LESSON_NAME.match(p.name))


def tree_digest(root: Path) -> str:
    """sha256 over the sorted relative paths and bytes of every file under ``root``."""
    h = hashlib.sha256()
    root = Path(root)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not SKIPPED_PARTS.intersection(p.relative_to(root).parts)
        and p.suffix not in {".pyc", ".pyo"}
    )
    for path in files:
        data = path.read_bytes()
        rel = path.relative_to(root).as_posix().encode()
        h.update(b"%d:%s%d:" % (len(rel), rel, len(data)))
        h.update(data)
    return h.hexdigest()


def package_dir(name: str) -> Path:
    """Source folder of an importable package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not importable (pip install -e . ?)")
    return Path(list(spec.submodule_search_locations)[0])


def source_trees() -> dict[str, Path]:
    """The source trees whose every byte is part of every lesson's key."""
    return {"convlens": package_dir("convlens"), "coursebuild": Path(__file__).parent}


def weights_identity(model: str, convlens_digest: str, memo: Path | None = None) -> str:
    """Hash of the weights file of ``model`` (or of ``CONVLENS_WEIGHTS``, which the lesson
    kernel inherits), from ``convlens.models.weights_identity``.

    Importing the library costs seconds (torch, torchvision), so the answer is remembered in
    ``memo`` with the file's path, size and mtime and the ``convlens`` source digest: it is
    reused only while all of these are unchanged, as git's index does. The key itself holds
    the content hash, so a fresh clone with new mtimes still hits the same cache entries.
    """
    chosen = os.environ.get("CONVLENS_WEIGHTS") or None
    context = json.dumps([model, chosen, convlens_digest, os.environ.get("TORCH_HOME"),
                          os.environ.get("XDG_CACHE_HOME")])
    known = _read_json(memo) if memo else {}
    if context in known:
        path, size, mtime_ns, identity = known[context]
        try:
            stat = os.stat(path)
            if (stat.st_size, stat.st_mtime_ns) == (size, mtime_ns):
                return identity
        except OSError:
            pass
    try:
        from convlens.models import weights_identity as identity_of
        from convlens.models import weights_path
    except ImportError as exc:
        raise RuntimeError(f"convlens.models.weights_identity is unavailable: {exc}") from exc
    path = Path(chosen) if chosen else weights_path(model)
    identity = identity_of(model, chosen)
    if memo and path.is_file() and identity != "missing":
        stat = path.stat()
        known[context] = [str(path), stat.st_size, stat.st_mtime_ns, identity]
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(memo)
    return identity


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``. Without an NVIDIA
    device node (Linux) CUDA cannot be available, and torch is not imported (seconds)."""
    if device != "auto":
        return device
    if sys.platform == "linux" and not (glob.glob("/dev/nvidia*") or os.path.exists("/dev/dxg")):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


def common_inputs(model: str, device: str, seed: int, memo: Path | None = None) -> dict:
    """The part of the key shared by every lesson of one build."""
    trees = {name: tree_digest(path) for name, path in sorted(source_trees().items())}
    return {
        "trees": trees,
        "model": model,
        "weights": weights_identity(model, trees.get("convlens", ""), memo),
        "device": device,
        "seed": seed,
        "versions": versions(),
    }


def lesson_inputs(lesson: Path, common: dict) -> dict:
    """The key inputs of one lesson: its source, and of the ``convlens`` tree only the files
    it can run (see :mod:`coursebuild.depends`); the rest is ``common``."""
    source = Path(lesson).read_bytes()
    trees = dict(common["trees"])
    trees["convlens"] = depends.lesson_library_digest(source, source_trees()["convlens"])
    return {**common, "lesson": Path(lesson).name,
            "source": hashlib.sha256(source).hexdigest(), "trees": trees}


def cache_key(inputs: dict) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
