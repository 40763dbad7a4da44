r"""A small VGG-style network whose evidence we know, trained on
[`evidence_set`][convlens.images.evidence_set].

A pretrained ImageNet model never tells us which pixels *really* decided its answer, so an
attribution method can only be checked against a proxy (an object's box). This network is
trained on images where only one small patch decides the class (a plus, a cross, a ring or
a corner among class-independent clutter), so a faithful map must put its mass there
([`evidence_mass`][convlens.evaluate.evidence_mass]): a known-answer benchmark in the
spirit of FunnyBirds (Hesse, Schaub-Meyer & Roth, ICCV 2023).

The architecture is that of the classic networks, scaled down
([Simonyan & Zisserman 2014][ref-simonyan2014]; [Zeiler & Fergus 2014][ref-zeiler2014] for
the larger first kernel): a 7x7 convolution, then 3x3 convolutions, each followed by a
ReLU, with 2x2 max-pooling after the first three, global average pooling and one linear
layer:

    features.0  conv 7x7, 3 -> 16     features.1  ReLU   features.2  max-pool 2   64 -> 32 px
    features.3  conv 3x3, 16 -> 32    features.4  ReLU   features.5  max-pool 2   32 -> 16 px
    features.6  conv 3x3, 32 -> 64    features.7  ReLU   features.8  max-pool 2   16 -> 8 px
    features.9  conv 3x3, 64 -> 64    features.10 ReLU
    pool        global average        classifier  linear 64 -> 4

It is trained with a BatchNorm after each convolution (it trains several times faster),
which is then folded into the convolution before it: with the BatchNorm's running mean
$\mu$ and variance $\sigma^2$, its scale $\gamma$ and shift $\beta$,

$$ w' = w \, \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}, \qquad
   b' = (b - \mu) \, \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta, $$

so the network that is returned computes the same function with plain convolutions, ReLUs
and max-poolings only. Training: Adam with a cosine learning-rate decay on
`HYPERPARAMETERS["train_images"]` images, each batch turned by a random multiple of 90
degrees and mirrored at random (every class is symmetric under both), fixed seeds; the
accuracy is measured on `test_images` held-out images of another seed.

Training takes well under two minutes on a 2-core CPU, so the build trains it rather than
shipping weights. [`load_trained`][convlens.evidence_net.load_trained] keeps the result in a
cache folder under a *content key* ([`content_key`][convlens.evidence_net.content_key]): a
hash of this module's source, the data set's code, the hyper-parameters and the torch and
NumPy versions. It is trained again only when one of them changes.
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

__all__ = ["CLASSES", "HYPERPARAMETERS", "MEAN", "SIZE", "STD", "EvidenceNet", "content_key", "untrained",
           "load_trained", "normalize", "train", "weights_file"]

CLASSES: tuple[str, ...] = images.EVIDENCE_CLASSES
"""The class names in label order (output $k$ of the network is class `CLASSES[k]`): those of
[`EVIDENCE_CLASSES`][convlens.images.EVIDENCE_CLASSES].
"""
SIZE = 64
"""The side, in pixels, of the images the network is trained and tested on."""
MEAN = (0.5, 0.5, 0.5)
"""The per-channel mean that [`normalize`][convlens.evidence_net.normalize] subtracts: a
mid-grey pixel becomes 0.
"""
STD = (0.5, 0.5, 0.5)
"""The per-channel standard deviation that [`normalize`][convlens.evidence_net.normalize]
divides by: pixels in [0, 1] become inputs in [-1, 1].
"""
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
"""What [`train`][convlens.evidence_net.train] uses by default: the convolutions' `widths`
and the `first_kernel`'s side; the number of `train_images` and held-out `test_images`; the
optimiser's `steps`, images per `batch` and peak `learning_rate`; and the `seed` from which
every random draw of the training derives. Part of the
[`content_key`][convlens.evidence_net.content_key].
"""


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    r"""Pixels in [0, 1] (from [`evidence_set`][convlens.images.evidence_set]) to the
    network's input, with [`MEAN`][convlens.evidence_net.MEAN] and
    [`STD`][convlens.evidence_net.STD] 0.5 in every channel:

    $$ \mathrm{input} = (\mathrm{pixels} - 0.5) / 0.5. $$

    Args:
        pixels: a tensor of pixel values in [0, 1], e.g. a batch `[N, 3, H, W]`.

    Returns:
        The inputs in [-1, 1], with the shape of `pixels` (e.g. `[N, 3, H, W]`).

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from convlens.evidence_net import normalize
        >>> normalize(torch.tensor([0.0, 0.5, 1.0])).tolist()
        [-1.0, 0.0, 1.0]
    """
    return (pixels - 0.5) / 0.5


class EvidenceNet(nn.Module):
    """The known-answer network: `features`, then global average `pool`, then `classifier`.

    Each width in `widths` adds a convolution (`first_kernel` square for the first, 3x3
    after; padded to keep the size), a BatchNorm when `batch_norm`, and a ReLU, with a 2x2
    max-pool after each but the last. `batch_norm=True` is the form that is trained; the
    trained network has the BatchNorms folded into its convolutions and none left. The
    defaults build the network that is trained (the layers the module description lists,
    with [`HYPERPARAMETERS`][convlens.evidence_net.HYPERPARAMETERS]). Input: `[N, 3, H, W]`
    normalised pixels ([`normalize`][convlens.evidence_net.normalize]); output: logits
    `[N, classes]`.

    Args:
        widths: the output channels of each convolution.
        first_kernel: the side of the first convolution's kernel (odd, so that the padding
            keeps the size).
        classes: the number of classes (outputs).
        batch_norm: put a BatchNorm after each convolution.

    Attributes:
        features: the `nn.Sequential` of convolutions, ReLUs and max-pools (and BatchNorms
            in the training form).
        pool: global average pooling, `[N, C, h, w]` to `[N, C, 1, 1]`.
        classifier: the linear layer from the last width to `classes` logits.

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from convlens.evidence_net import EvidenceNet
        >>> net = EvidenceNet().eval()
        >>> net(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 4])
        >>> [type(m).__name__ for m in net.features[:4]]
        ['Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d']
        >>> len(net.features), len(EvidenceNet(batch_norm=True).features)
        (11, 15)
    """

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
    """The identity of the trained weights: the sha256 of everything they depend on.

    Hashed together: this module's source, the code of the data set
    ([`evidence_set`][convlens.images.evidence_set] and its helpers, and the class names),
    the hyper-parameters, and the torch and NumPy versions. Any change to one of them (a
    docstring included) gives a new key, so that cached weights are never reused for other
    code.

    Args:
        hyperparameters: those to hash (None:
            [`HYPERPARAMETERS`][convlens.evidence_net.HYPERPARAMETERS]).

    Returns:
        64 lower-case hexadecimal digits.

    Raises no exception of its own (a value JSON cannot encode fails in `json.dumps`).

    Examples:
        >>> from convlens import evidence_net
        >>> key = evidence_net.content_key()
        >>> len(key), set(key) <= set("0123456789abcdef")
        (64, True)
        >>> key == evidence_net.content_key(dict(evidence_net.HYPERPARAMETERS))  # stable
        True
        >>> key == evidence_net.content_key({**evidence_net.HYPERPARAMETERS, "steps": 10})
        False
    """
    hyperparameters = HYPERPARAMETERS if hyperparameters is None else hyperparameters
    document = json.dumps([inspect.getsource(inspect.getmodule(content_key)), _data_source(),
                           hyperparameters, torch.__version__, np.__version__], sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()


def train(hyperparameters: dict | None = None) -> tuple[EvidenceNet, dict]:
    """Train the network from scratch on the CPU: seeded, so the same hyper-parameters give
    the same weights, and the global RNG is left as found.

    The images come from [`evidence_set`][convlens.images.evidence_set] at
    [`SIZE`][convlens.evidence_net.SIZE] (training and held-out images from different
    seeds); the BatchNorms of the training form are folded into the convolutions at the end
    (see the module description).

    Args:
        hyperparameters: a dict with every key of
            [`HYPERPARAMETERS`][convlens.evidence_net.HYPERPARAMETERS] (None: those).

    Returns:
        `(network, info)`: the trained [`EvidenceNet`][convlens.evidence_net.EvidenceNet]
        in eval mode, and a dict with its `accuracy` on the held-out images, the `seconds`
        training took (the data's generation included), its `key`
        ([`content_key`][convlens.evidence_net.content_key]), the `hyperparameters` and the
        `torch` version.

    Raises no exception of its own.

    Examples:
        A tiny configuration, for a quick look at what it returns (the real one trains for
        a minute or two):

        >>> from convlens import evidence_net
        >>> tiny = {**evidence_net.HYPERPARAMETERS, "widths": [4, 4, 8, 8],
        ...         "train_images": 8, "test_images": 4, "steps": 2, "batch": 4}
        >>> net, info = evidence_net.train(tiny)
        >>> net.training, sorted(info)
        (False, ['accuracy', 'hyperparameters', 'key', 'seconds', 'torch'])
        >>> info["key"] == evidence_net.content_key(tiny)
        True
    """
    h = dict(HYPERPARAMETERS if hyperparameters is None else hyperparameters)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(h["seed"])
        return _train(h)


def untrained(hyperparameters: dict | None = None) -> EvidenceNet:
    """The network as [`train`][convlens.evidence_net.train] starts it: the training form
    (with BatchNorms), initialised from the `seed`; the global RNG is left as found.

    Args:
        hyperparameters: a dict with every key of
            [`HYPERPARAMETERS`][convlens.evidence_net.HYPERPARAMETERS] (None: those).

    Returns:
        The initialised [`EvidenceNet`][convlens.evidence_net.EvidenceNet], in train mode.

    Raises no exception of its own.

    Examples:
        Two calls give the same weights, so a trained filter can be compared with where it
        started:

        >>> import torch
        >>> from convlens import evidence_net
        >>> first, second = evidence_net.untrained(), evidence_net.untrained()
        >>> torch.equal(first.features[0].weight, second.features[0].weight)
        True
    """
    h = dict(HYPERPARAMETERS if hyperparameters is None else hyperparameters)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(h["seed"])
        return EvidenceNet(h["widths"], h["first_kernel"], len(CLASSES), batch_norm=True)


def _train(h: dict) -> tuple[EvidenceNet, dict]:
    start = time.perf_counter()
    x, labels, _ = images.evidence_set(h["train_images"], SIZE,
                                       torch.Generator().manual_seed(h["seed"] + 1))
    x = normalize(x)
    net = untrained(h)
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
    """Where [`load_trained`][convlens.evidence_net.load_trained] keeps the weights of the
    current code: `evidence_net-<first 16 digits of the content key>.pt`.

    Args:
        cache_dir: the folder (None: the torch hub cache's `checkpoints` folder, where the
            other registry models' weights live).

    Returns:
        The file's path (which need not exist).

    Raises:
        TypeError: `cache_dir` is neither None nor a folder path.

    Examples:
        >>> from convlens import evidence_net
        >>> path = evidence_net.weights_file("cache")
        >>> path.parent.name, path.name == f"evidence_net-{evidence_net.content_key()[:16]}.pt"
        ('cache', True)
    """
    if cache_dir is None:
        cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    elif not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path, got {type(cache_dir).__name__}")
    return Path(cache_dir) / f"evidence_net-{content_key()[:16]}.pt"


def load_trained(cache_dir: str | os.PathLike | None = None) -> tuple[EvidenceNet, dict]:
    """The trained network and its training info: read from the cache, or trained now.

    When `cache_dir` holds the weights of the current code
    ([`weights_file`][convlens.evidence_net.weights_file]), they are loaded; otherwise the
    network is trained ([`train`][convlens.evidence_net.train], a minute or two) and saved
    there, written to a temporary file first and renamed, so that a concurrent reader never
    sees half a file. The file holds `{"state_dict": ..., "info": ...}`.

    Args:
        cache_dir: the folder (None: the torch hub cache's `checkpoints` folder).

    Returns:
        `(network, info)`: an [`EvidenceNet`][convlens.evidence_net.EvidenceNet] in eval
        mode on the CPU, and the info `train` returned when it was trained.

    Raises:
        TypeError: `cache_dir` is neither None nor a folder path.

    Examples:
        A file in the cache is read, not retrained (here an untrained network stands in
        for the trained one):

        >>> import shutil, tempfile
        >>> import torch
        >>> from convlens import evidence_net
        >>> folder = tempfile.mkdtemp()
        >>> stand_in = evidence_net.EvidenceNet()
        >>> torch.save({"state_dict": stand_in.state_dict(), "info": {"accuracy": 0.25}},
        ...            evidence_net.weights_file(folder))
        >>> net, info = evidence_net.load_trained(folder)
        >>> info, net.training, torch.equal(net.classifier.weight, stand_in.classifier.weight)
        ({'accuracy': 0.25}, False, True)
        >>> shutil.rmtree(folder)
    """
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
