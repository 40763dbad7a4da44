"""A small VGG-style network whose evidence we know: trained on :func:`convlens.images.evidence_set`.

A pretrained ImageNet model never tells us which pixels *really* decided its answer, so an
attribution method can only be checked against a proxy (an object's box). This network is
trained on images where only one small patch decides the class (a plus, a cross, a ring or
a corner among class-independent clutter), so a faithful map must put its mass there: a
known-answer benchmark in the spirit of FunnyBirds (Hesse, Schaub-Meyer & Roth, ICCV 2023).

The architecture is that of the classic networks, scaled down (Simonyan & Zisserman 2015;
Zeiler & Fergus 2014 for the larger first kernel): a 7x7 convolution, then 3x3
convolutions, each followed by a ReLU, with 2x2 max-pooling after the first three, global
average pooling and one linear layer::

    features.0  conv 7x7, 3 -> 16     features.1  ReLU   features.2  max-pool 2   64 -> 32 px
    features.3  conv 3x3, 16 -> 32    features.4  ReLU   features.5  max-pool 2   32 -> 16 px
    features.6  conv 3x3, 32 -> 64    features.7  ReLU   features.8  max-pool 2   16 -> 8 px
    features.9  conv 3x3, 64 -> 64    features.10 ReLU
    pool        global average        classifier  linear 64 -> 4

It is trained with a BatchNorm after each convolution (it trains several times faster),
which is then folded into the convolution (w' = w gamma / sigma, b' = (b - mu) gamma / sigma
+ beta): the network that is returned computes the same function with plain convolutions,
ReLUs and max-poolings only. Training: Adam with a cosine learning-rate decay on
``HYPERPARAMETERS["train_images"]`` images, each batch turned by a random multiple of 90
degrees and mirrored at random (every class is symmetric under both), fixed seeds; the
accuracy is measured on ``test_images`` held-out images of another seed.

Training takes well under two minutes on a 2-core CPU, so the build trains it rather than
shipping weights. :func:`load_trained` keeps the result in a cache folder under a *content
key*: a hash of this module's source, the data set's code, the hyper-parameters and the
torch and NumPy versions. It is trained again only when one of them changes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import images

__all__ = ["CLASSES", "HYPERPARAMETERS", "MEAN", "SIZE", "STD", "EvidenceNet", "content_key",
           "load_trained", "normalize", "train", "weights_file"]

CLASSES: tuple[str, ...] = images.EVIDENCE_CLASSES
SIZE = 64  # the side of the images it is trained on
MEAN = (0.5, 0.5, 0.5)  # input = (pixels - 0.5) / 0.5: 0 is mid-grey
STD = (0.5, 0.5, 0.5)
HYPERPARAMETERS = {
    "widths": [16, 32, 64, 64],
    "first_kernel": 7,
    "train_images": 3000,
    "test_images": 1000,
    "steps": 320,
    "batch": 32,
    "learning_rate": 3e-3,
    "seed": 0,
}


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (from :func:`convlens.images.evidence_set`) -> the network's input."""
    return (pixels - 0.5) / 0.5


class EvidenceNet(nn.Module):
    """``features`` (conv, [BatchNorm,] ReLU, max-pool ...), global average ``pool``,
    ``classifier``. ``batch_norm=True`` is the training form; the trained network has none."""

    def __init__(self, widths=(16, 32, 64, 64), first_kernel: int = 7, classes: int = 4,
                 batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i, width in enumerate(widths):
            kernel = first_kernel if i == 0 else 3
            layers.append(nn.Conv2d(channels, width, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _fold_batch_norm(trained: EvidenceNet) -> EvidenceNet:
    """The same function without BatchNorm: each (conv, BN) pair becomes one conv."""
    widths = [m.out_channels for m in trained.features if isinstance(m, nn.Conv2d)]
    first = trained.features[0].kernel_size[0]
    plain = EvidenceNet(widths, first, trained.classifier.out_features).eval()
    convs = [m for m in plain.features if isinstance(m, nn.Conv2d)]
    pairs = [(m, trained.features[i + 1]) for i, m in enumerate(trained.features)
             if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for target, (conv, bn) in zip(convs, pairs):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            target.weight.copy_(conv.weight * scale[:, None, None, None])
            target.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        plain.classifier.load_state_dict(trained.classifier.state_dict())
    return plain


def _data_source() -> str:
    parts = [images._target_shape, images._distractor_pixels, images._distractor_shape,
             images._place, images._item_colour, images._evidence_image, images.evidence_set]
    return repr(images.EVIDENCE_CLASSES) + "".join(inspect.getsource(f) for f in parts)


def content_key(hyperparameters: dict | None = None) -> str:
    """sha256 of what the trained weights depend on: this module's source, the data set's
    code, the hyper-parameters, and the torch and NumPy versions."""
    hyperparameters = HYPERPARAMETERS if hyperparameters is None else hyperparameters
    document = json.dumps([inspect.getsource(inspect.getmodule(content_key)), _data_source(),
                           hyperparameters, torch.__version__, np.__version__], sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()


def train(hyperparameters: dict | None = None) -> tuple[EvidenceNet, dict]:
    """Train from scratch (CPU, seeded, the global RNG left as found): ``(network in eval
    mode, info)`` with info's ``accuracy`` on the held-out images, ``seconds`` of training
    (data generation included), ``key`` and ``hyperparameters``."""
    h = dict(HYPERPARAMETERS if hyperparameters is None else hyperparameters)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(h["seed"])
        return _train(h)


def _train(h: dict) -> tuple[EvidenceNet, dict]:
    start = time.perf_counter()
    x, labels, _ = images.evidence_set(h["train_images"], SIZE,
                                       torch.Generator().manual_seed(h["seed"] + 1))
    x = normalize(x)
    net = EvidenceNet(h["widths"], h["first_kernel"], len(CLASSES), batch_norm=True)
    draw = torch.Generator().manual_seed(h["seed"] + 3)
    optimizer = torch.optim.Adam(net.parameters(), lr=h["learning_rate"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, h["steps"])
    net.train()
    for _ in range(h["steps"]):
        batch = torch.randint(len(x), (h["batch"],), generator=draw)
        turns = int(torch.randint(4, (1,), generator=draw))
        inputs = torch.rot90(x[batch], turns, dims=(2, 3))
        if bool(torch.rand(1, generator=draw) < 0.5):
            inputs = inputs.flip(3)
        loss = nn.functional.cross_entropy(net(inputs), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    plain = _fold_batch_norm(net.eval())
    seconds = time.perf_counter() - start
    test, test_labels, _ = images.evidence_set(h["test_images"], SIZE,
                                               torch.Generator().manual_seed(h["seed"] + 2))
    with torch.no_grad():
        accuracy = float((plain(normalize(test)).argmax(1) == test_labels).float().mean())
    info = {"accuracy": accuracy, "seconds": seconds, "key": content_key(h),
            "hyperparameters": h, "torch": str(torch.__version__)}
    return plain, info


def weights_file(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`load_trained` keeps the weights of the current code: ``cache_dir``
    (None: the torch hub cache, where the other registry models' weights live)."""
    if cache_dir is None:
        cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    elif not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path, got {type(cache_dir).__name__}")
    return Path(cache_dir) / f"evidence_net-{content_key()[:16]}.pt"


def load_trained(cache_dir: str | os.PathLike | None = None) -> tuple[EvidenceNet, dict]:
    """The trained network (eval mode, CPU) and its training info, from the cache folder
    if it holds the weights of this code (:func:`weights_file`), else trained now and
    saved there (written to a temporary file and renamed, so a concurrent reader never sees
    half a file)."""
    path = weights_file(cache_dir)
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        net = EvidenceNet(HYPERPARAMETERS["widths"], HYPERPARAMETERS["first_kernel"],
                          len(CLASSES))
        net.load_state_dict(stored["state_dict"])
        return net.eval(), stored["info"]
    net, info = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": net.state_dict(), "info": info}, partial)
    os.replace(partial, path)
    return net, info
