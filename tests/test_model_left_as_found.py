"""The contract every attribution method keeps: the model and the input are left exactly
as found (also after an error mid-way), bad input is named, dtype follows the input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from convlens.cam import gradcam, guided_gradcam
from convlens.evaluate import deletion_curve, insertion_curve, randomization_similarity
from convlens.features import feature_maps, saturation
from convlens.guided import deconvnet, guided_backprop
from convlens.occlusion_maps import occlusion
from convlens.path_integral import integrated_gradients
from convlens.saliency import gradient, gradient_x_input, smoothgrad

LAYER = "block.conv"

METHODS = {
    "gradient": lambda m, x, t: gradient(m, x, t),
    "smoothgrad": lambda m, x, t: smoothgrad(m, x, t, samples=3, batch_size=2),
    "deconvnet": lambda m, x, t: deconvnet(m, x, t),
    "guided_backprop": lambda m, x, t: guided_backprop(m, x, t),
    "gradcam": lambda m, x, t: gradcam(m, x, t, LAYER),
    "guided_gradcam": lambda m, x, t: guided_gradcam(m, x, t, LAYER),
    "occlusion": lambda m, x, t: occlusion(m, x, t, window=4, stride=2, batch_size=3),
    "gradient_x_input": lambda m, x, t: gradient_x_input(m, x, t),
    "integrated_gradients": lambda m, x, t: integrated_gradients(m, x, t, steps=3, batch_size=2),
    "deletion_curve": lambda m, x, t: deletion_curve(
        m, x, t, torch.rand(x.shape, dtype=torch.float64), steps=3, batch_size=3)[1],
    "insertion_curve": lambda m, x, t: insertion_curve(
        m, x, t, torch.rand(x.shape, dtype=torch.float64), steps=3, batch_size=3)[1],
    "randomization_similarity": lambda m, x, t: randomization_similarity(
        m, x, t, gradient, layers=["head", ["block.conv", "norm"]]).maps[-1],
}


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)  # shared: called twice

    def forward(self, x):
        return self.relu(self.relu(self.conv(x)) + x)


class SmallCNN(nn.Module):
    """In-place and shared ReLUs, a ReLU6, a frozen layer, a BatchNorm, training mode."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stem.requires_grad_(False)
        self.norm = nn.BatchNorm2d(4)
        self.act = nn.ReLU6(inplace=True)
        self.block = Block()
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        x = self.block(self.act(self.norm(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def snapshot(model: nn.Module) -> dict:
    modules = {}
    for name, m in model.named_modules():
        modules[name] = {
            "attributes": {k: type(v) for k, v in m.__dict__.items()},
            "hooks": [len(getattr(m, h)) for h in (
                "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")],
            "training": m.training,
            "inplace": getattr(m, "inplace", None),
        }
    tensors = {n: (t.detach().clone(), t.requires_grad, t.grad)
               for n, t in [*model.named_parameters(), *model.named_buffers()]}
    return {"modules": modules, "tensors": tensors,
            "global_hooks": len(nn.modules.module._global_forward_hooks)}


def assert_same(before: dict, after: dict):
    assert after["modules"] == before["modules"]
    assert after["global_hooks"] == before["global_hooks"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, (value, requires_grad, grad) in before["tensors"].items():
        value_after, requires_grad_after, grad_after = after["tensors"][name]
        assert torch.equal(value, value_after), name
        assert requires_grad == requires_grad_after and grad is None and grad_after is None, name


def fresh_model(train: bool):
    model = SmallCNN()
    model.train(train)
    model.norm.eval()  # keep BatchNorm's running statistics fixed, whatever the mode
    return model


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_model_and_input_left_as_found(method, train):
    model = fresh_model(train)
    before = snapshot(model)
    for hook_count in before["modules"].values():
        assert hook_count["hooks"] == [0] * 6
    x = torch.randn(2, 3, 8, 8)
    x_before = x.clone()
    METHODS[method](model, x, [1, 4])
    assert_same(before, snapshot(model))
    assert torch.equal(x, x_before) and not x.requires_grad and x.grad is None


@pytest.mark.parametrize("method", METHODS)
def test_left_as_found_after_error_mid_way(method):
    model = fresh_model(False)
    before = snapshot(model)
    with pytest.raises(ValueError, match="out of range"):
        METHODS[method](model, torch.randn(2, 3, 8, 8), [1, 99])  # fails after the forward
    assert_same(before, snapshot(model))
    METHODS[method](model, torch.randn(2, 3, 8, 8), [1, 2])  # still usable
    assert_same(before, snapshot(model))


def test_left_as_found_after_functional_activation_error():
    class Functional(SmallCNN):  # functional relu now gets the rule; silu is refused
        def forward(self, x):
            return super().forward(F.silu(x))

    model = Functional()
    before = snapshot(model)
    with pytest.raises(ValueError, match="functional silu"):
        guided_backprop(model, torch.randn(1, 3, 8, 8), 0)
    assert_same(before, snapshot(model))
    assert torch.equal(F.relu(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))


def test_feature_maps_leaves_model_as_found():
    model = fresh_model(False)
    before = snapshot(model)
    feature_maps(model, torch.randn(1, 3, 8, 8), LAYER)
    assert_same(before, snapshot(model))


def test_saturation_leaves_model_as_found():
    model = fresh_model(False)
    before = snapshot(model)
    x = torch.randn(1, 3, 8, 8)
    x_before = x.clone()
    stats = saturation(model, x)
    assert_same(before, snapshot(model))
    assert torch.equal(x, x_before)
    assert stats["block.relu"].units == 2 * 4 * 8 * 8  # the shared ReLU, called twice


# ---- bad input, named -------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("x, target, error, words", [
    (torch.randn(3, 8, 8), 0, ValueError, "4 dimensions"),
    (torch.ones(1, 3, 8, 8, dtype=torch.long), 0, TypeError, "floating-point"),
    (torch.randn(2, 3, 8, 8), [0, 1, 2], ValueError, "3 entries"),
    (torch.randn(1, 3, 8, 8), -1, ValueError, "negative"),
    (torch.randn(1, 3, 8, 8), 5, ValueError, "out of range"),
    (torch.randn(1, 3, 8, 8), 1.0, TypeError, "target"),
])
def test_bad_input_is_named(method, x, target, error, words):
    with pytest.raises(error, match=words):
        METHODS[method](fresh_model(False), x, target)


@pytest.mark.parametrize("function", [gradcam, guided_gradcam])
def test_unknown_layer_is_named(function):
    with pytest.raises(ValueError, match="unknown layer name 'block.conv2'"):
        function(fresh_model(False), torch.randn(1, 3, 8, 8), 0, "block.conv2")


# ---- dtype comes from the model and the input -------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_float64_model_and_input(method):
    model = fresh_model(False).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    result = METHODS[method](model, x, [0, 3])
    assert result.dtype == torch.float64 and result.device == x.device
    assert torch.isfinite(result).all()
    assert feature_maps(model, x, LAYER).dtype == torch.float64


# ---- feature visualisation: MACO, accentuation, dataset examples, checks ----------------

def _visualisations():
    """Each feature-visualisation function once, on SmallCNN (its shared ReLU is avoided:
    objectives sit on layers that run once)."""
    from convlens import natural_statistics
    from convlens.accentuation import accentuate
    from convlens.exemplars import dataset_examples
    from convlens.feature_visualization import ChannelObjective, ClassObjective, maco
    from convlens.visualization_checks import layer_similarity, transfer_scores

    generator = torch.Generator().manual_seed(0)
    photos = [Image.fromarray((torch.rand(20, 24, 3, generator=generator).numpy() * 255)
                              .astype("uint8")) for _ in range(2)]
    spectrum = natural_statistics.natural_spectrum(8, photos, cache=False)
    pictures = torch.rand(2, 3, 8, 8, generator=generator)
    return {
        "maco": lambda m: maco(m, [ChannelObjective("block.conv", 1), ClassObjective(2)], steps=2,
                               image_size=8, crops=2, spectrum=spectrum, diversity=1.0,
                               diversity_layer="norm"),
        "accentuate": lambda m: accentuate(m, pictures[0], ClassObjective(3), steps=2),
        "dataset_examples": lambda m: dataset_examples(m, "norm", 2, pictures, k=3),
        "transfer_scores": lambda m: transfer_scores(m, pictures, [0, 4]),
        "layer_similarity": lambda m: layer_similarity(m, ["norm", "block.conv"], pictures, pictures),
    }


@pytest.mark.parametrize("train", [False, True])
def test_feature_visualisations_leave_the_model_as_found(train):
    for run in _visualisations().values():
        model = fresh_model(train)
        before = snapshot(model)
        run(model)
        assert_same(before, snapshot(model))  # raises naming the first difference
