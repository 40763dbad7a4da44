"""What a lesson's executed notebook depends on, and the cache key made from it.

The key is a sha256 over a JSON document of every input of the output: the lesson source,
the whole ``convlens`` and ``coursebuild`` source trees (relative paths and bytes: any
library edit re-runs every lesson, so the key cannot miss an import), the model spec, the
source of a model given as ``file.py:function`` or ``package.module:function``, the hashes
of the weights and labels files, the layer overrides, ``CONVLENS_STRICT``, the device, the
seed, and the versions of Python and the libraries. Modification times are never read: a
fresh clone must hit the same entries.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import sys
from importlib.machinery import PathFinder
from pathlib import Path

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
    return {"convlens": package_dir("convlens"), "convlens_course": package_dir("convlens_course"),
            "coursebuild": Path(__file__).parent}


def default_model() -> str:
    """``convlens.models.DEFAULT_MODEL``, read from the source without importing torch."""
    path = package_dir("convlens") / "models.py"
    for node in ast.parse(path.read_bytes()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "DEFAULT_MODEL" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{path} defines no DEFAULT_MODEL = '...'")


def file_digest(path: Path, memo: Path | None = None) -> str:
    """sha256 of a file's bytes, remembered in ``memo`` by path, size and mtime (as git's
    index does: weights files are large; the key holds the content hash only)."""
    path = Path(path).resolve()
    stat = path.stat()
    known = _read_json(memo) if memo else {}
    seen = known.get(str(path))
    if seen and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
        return seen[2]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    _remember(memo, known, str(path), [stat.st_size, stat.st_mtime_ns, digest.hexdigest()])
    return digest.hexdigest()


def _remember(memo: Path | None, known: dict, key: str, value) -> None:
    if not memo:
        return
    known[key] = value
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=1))
    tmp.replace(memo)


def model_source(spec: str) -> tuple[str, Path | None]:
    """``(kind, file)`` of a model spec: ``registry`` (a name), ``torchvision`` or ``timm``
    (``prefix:name``), ``file`` (``path/to/file.py:function``) or ``module``
    (``package.module:function``, its source file found without importing it)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--model must be a model spec, got {spec!r}")
    if ":" not in spec:
        return "registry", None
    where, _, function = spec.rpartition(":")
    if not where or not function.isidentifier():
        raise ValueError(f"--model {spec!r}: expected PREFIX:NAME, FILE.py:FUNCTION or "
                         "package.module:FUNCTION")
    if where in ("torchvision", "timm"):
        return where, None
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"--model {spec!r}: no file {where!r}")
        return "file", path.resolve()
    parts = where.split(".")
    found = importlib.util.find_spec(parts[0])  # top level: found, not imported
    for depth in range(2, len(parts) + 1):  # submodules: searched without importing parents
        found = found and found.submodule_search_locations and PathFinder.find_spec(
            ".".join(parts[:depth]), list(found.submodule_search_locations))
    if not found or not found.origin or not Path(found.origin).is_file():
        raise ValueError(f"--model {spec!r}: module {where!r} not found on sys.path")
    return "module", Path(found.origin)


def weights_identity(model: str, weights: str | None, convlens_digest: str,
                     memo: Path | None = None) -> str:
    """Hash of the weights the lessons will load: ``weights`` when given (hashed here,
    without torch), else the registry model's own file from
    ``convlens.models.weights_identity`` (importing the library costs seconds, so the
    answer is remembered in ``memo`` with the file's path, size and mtime and the
    ``convlens`` source digest). A model from a file or module brings its own weights
    (its source is in the key): ``"from-source"``."""
    if weights:
        return file_digest(Path(weights), memo)
    if model_source(model)[0] in ("file", "module"):
        return "from-source"
    context = json.dumps([model, convlens_digest, os.environ.get("TORCH_HOME"),
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
    try:
        path, identity = weights_path(model), identity_of(model, None)
    except (ValueError, TypeError, LookupError) as exc:
        raise ValueError(f"--model {model!r}: {exc}") from None
    if path.is_file() and identity != "missing":
        stat = path.stat()
        _remember(memo, known, context, [str(path), stat.st_size, stat.st_mtime_ns, identity])
    return identity


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def cuda_available() -> bool:
    """Whether torch sees a GPU. Without an NVIDIA device node (Linux) CUDA cannot be
    available, and torch is not imported (seconds)."""
    if sys.platform == "linux" and not (glob.glob("/dev/nvidia*") or os.path.exists("/dev/dxg")):
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one
    is a ``ValueError`` (once, before any lesson starts)."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ValueError("--device cuda, but torch sees no CUDA device on this machine "
                         "(torch.cuda.is_available() is False): use --device cpu or auto")
    return device


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


def common_inputs(model: str, device: str, seed: int, memo: Path | None = None, *,
                  weights: str | None = None, labels: str | None = None,
                  layers: str = "") -> dict:
    """The part of the key shared by every lesson of one build (all of it but the lesson)."""
    trees = {name: tree_digest(path) for name, path in sorted(source_trees().items())}
    _, source = model_source(model)
    return {
        "trees": trees,
        "model": model,
        "model_source": file_digest(source) if source else None,
        "weights": weights_identity(model, weights, trees.get("convlens", ""), memo),
        "labels": file_digest(Path(labels)) if labels else None,
        "layers": layers,
        "strict": os.environ.get("CONVLENS_STRICT", ""),
        "device": device,
        "seed": seed,
        "versions": versions(),
    }


def lesson_inputs(lesson: Path, common: dict) -> dict:
    """The key inputs of one lesson: its name and source, and ``common``."""
    source = Path(lesson).read_bytes()
    return {**common, "lesson": Path(lesson).name, "source": hashlib.sha256(source).hexdigest()}


def cache_key(inputs: dict) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
