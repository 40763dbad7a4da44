"""Occlusion on a linear model, where the score drop is the weighted sum of the window; the
incremental and batched paths against the definition (one forward pass per window)."""

from __future__ import annotations

import dataclasses
import importlib
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from convlens.occlusion_maps import default_batch_size, occlusion, occlusion_plan


class WeightedSum(nn.Module):
    """logit k = sum(w_k * x): hiding a region changes it by sum_region w_k * (x - fill)."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", x, self.weight)


def test_hand_computed_3x3():
    w = torch.arange(9.0).view(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    drops = occlusion(WeightedSum(w), torch.ones(1, 1, 3, 3), 0, window=2, stride=1)
    torch.testing.assert_close(drops, torch.tensor([[[8.0, 12.0], [20.0, 24.0]]]))


@pytest.mark.parametrize("window, stride", [(2, 1), (3, 2), (4, 3), (5, 5)])
def test_drop_is_weighted_sum_of_window_minus_fill(window, stride):
    torch.manual_seed(0)
    weight = torch.randn(3, 2, 7, 9)
    x = torch.randn(2, 2, 7, 9)
    fill = 0.5
    drops = occlusion(WeightedSum(weight), x, [2, 0], window=window, stride=stride, fill=fill)
    rows, cols = (7 - window) // stride + 1, (9 - window) // stride + 1
    assert drops.shape == (2, rows, cols)
    for n, k in enumerate([2, 0]):
        for i in range(rows):
            for j in range(cols):
                region = (slice(None), slice(i * stride, i * stride + window),
                          slice(j * stride, j * stride + window))
                expected = (weight[k][region] * (x[n][region] - fill)).sum()
                torch.testing.assert_close(drops[n, i, j], expected, rtol=1e-5, atol=1e-5)


def test_batch_size_does_not_change_result(attribution_resnet18):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    reference = occlusion(attribution_resnet18, x, [3, 4], window=16, stride=8, batch_size=64)
    for batch_size in (1, 4):
        torch.testing.assert_close(
            occlusion(attribution_resnet18, x, [3, 4], window=16, stride=8, batch_size=batch_size),
            reference, rtol=1e-4, atol=1e-5)
    assert reference.shape == (2, 3, 3)
    for n, k in enumerate([3, 4]):  # batch of examples == one call each
        torch.testing.assert_close(
            occlusion(attribution_resnet18, x[n : n + 1], k, window=16, stride=8)[0], reference[n],
            rtol=1e-4, atol=1e-5)


def test_runs_without_grad_tracking():
    weight = torch.randn(2, 1, 4, 4, requires_grad=True)
    x = torch.randn(1, 1, 4, 4, requires_grad=True)
    drops = occlusion(WeightedSum(weight), x, 1, window=2, stride=2)
    assert not drops.requires_grad and drops.grad_fn is None


def test_output_follows_model_dtype():
    model = WeightedSum(torch.randn(2, 1, 5, 5, dtype=torch.float64))
    assert occlusion(model, torch.randn(1, 1, 5, 5, dtype=torch.float64), 0, window=2).dtype == torch.float64


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(window=6), ValueError, "larger than the image"),
    (dict(window=0), ValueError, "window"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=1.5), TypeError, "stride"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_bad_arguments(kwargs, error, words):
    model = WeightedSum(torch.randn(2, 1, 5, 5))
    with pytest.raises(error, match=words):
        occlusion(model, torch.randn(1, 1, 5, 5), 0, **kwargs)


def test_window_larger_than_one_side_only():
    model = WeightedSum(torch.randn(2, 1, 4, 8))
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion(model, torch.randn(1, 1, 4, 8), 0, window=5, stride=1)


# ---- the fast paths against the definition: one forward pass per window ------------------


def naive_occlusion(model, x, window, stride, fill=0.0):
    """D[n, k, i, j] = y_k(x_n) - y_k(x_n with window (i, j) set to fill), one pass each."""
    n, _, height, width = x.shape
    rows, cols = (height - window) // stride + 1, (width - window) // stride + 1
    with torch.no_grad():
        base = model(x)
        out = torch.empty(n, base.shape[1], rows, cols, dtype=base.dtype)
        for i in range(rows):
            for j in range(cols):
                occluded = x.clone()
                occluded[:, :, i * stride:i * stride + window, j * stride:j * stride + window] = fill
                out[:, :, i, j] = base - model(occluded)
    return out


def relative_error(ours, reference):
    return float((ours - reference).abs().max() / reference.abs().max())


class Tricky(nn.Module):
    """Every local layer kind, at awkward geometry: odd strides, dilation, padding='same',
    max pooling with padding (padded with -inf), average pooling, a residual add of two
    branches whose changed regions differ, a scalar multiply, then global pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 5, stride=2, padding=2)
        self.norm = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.dilated = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3)
        self.same = nn.Conv2d(6, 6, (3, 5), padding="same")
        self.short = nn.Conv2d(6, 6, 1, stride=1)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.down = nn.Conv2d(6, 8, 3, stride=3)
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-0.5, 0.5)
            self.norm.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = self.pool(F.relu(self.norm(self.stem(x))))
        x = torch.sigmoid(self.same(self.dilated(x))) * 2.0 + self.short(x)
        x = self.down(self.avg(x).relu())
        return self.head(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("size, window, stride", [((37, 41), 9, 4), ((30, 30), 7, 5)])
def test_incremental_is_exact_on_every_layer_kind(size, window, stride):
    torch.manual_seed(0)
    model = Tricky().eval().double()
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    assert occlusion_plan(model, x, window, stride).path == "incremental"
    ours = occlusion(model, x, None, window, stride, fill=0.3, batch_size=7, method="incremental")
    reference = naive_occlusion(model, x, window, stride, fill=0.3)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 1e-10  # float64: only rounding differs


def test_copies_of_several_batches_share_one_pass_through_the_tail(monkeypatch):
    """The steps after the last local layer run once for at least TAIL_ROWS copies, batch
    after batch gathered; the map is the same as with one pass per batch."""
    module = importlib.import_module("convlens.occlusion_maps.engine")
    torch.manual_seed(0)
    model = Tricky().eval().double()
    x = torch.randn(2, 2, 37, 41, dtype=torch.float64)
    rows = []
    tail = module.Incremental.tail

    def counted(self, heads):
        rows.append(sum(h[0].shape[0] for h in heads))
        return tail(self, heads)

    monkeypatch.setattr(module.Incremental, "tail", counted)
    maps = {}
    for tail_rows in (1, 10):
        monkeypatch.setattr(module, "TAIL_ROWS", tail_rows)
        rows.clear()
        maps[tail_rows] = occlusion(model, x, None, 9, 4, batch_size=3, method="incremental")
        check, *passes = rows  # the self-check's three positions come first
        assert check == 3 and sum(passes) == 2 * 8 * 9  # two images, 8 x 9 positions
        # a pass goes as soon as it holds max(TAIL_ROWS, batch_size) copies
        assert max(passes) < 2 * 3 if tail_rows == 1 else min(passes[:-1]) >= 10
    assert relative_error(maps[10], maps[1]) < 1e-12
    assert relative_error(maps[10], naive_occlusion(model, x, 9, 4)) < 1e-10


def _lite0():
    from convlens.models import load

    return load("efficientnet_lite0").model


@pytest.mark.parametrize("name, builder, size, window, stride", [
    ("alexnet", lambda: torchvision.models.alexnet(weights=None), 79, 24, 11),
    ("resnet18", lambda: torchvision.models.resnet18(weights=None), 70, 20, 9),
    ("efficientnet_lite0", _lite0, 67, 24, 13),
])
def test_torchvision_and_course_models_exact(name, builder, size, window, stride, single_thread):
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(1, 3, size, size)
    plan = occlusion_plan(model, x, window, stride)
    assert plan.path == "incremental", plan
    assert 0 < plan.recomputed_fraction < 1 and plan.local_layers > 0
    reference = naive_occlusion(model, x, window, stride)
    for method in ("incremental", "batched"):
        ours = occlusion(model, x, None, window, stride, method=method)
        assert relative_error(ours, reference) <= 1e-4, (name, method)


@pytest.mark.parametrize("rows, cols, side", [(25, 25, 5), (8, 9, 2), (6, 4, 3), (1, 7, 5)])
def test_position_blocks_hold_every_position_once_nearer_edges_first(rows, cols, side):
    module = importlib.import_module("convlens.occlusion_maps.windows")
    blocks = module.position_blocks(rows, cols, side, "cpu")
    every = torch.cat(blocks)
    assert sorted(every.tolist()) == list(range(rows * cols))
    assert all(0 < b.numel() <= side * side for b in blocks)
    # rows and columns are taken nearer edges first: the first block holds the four corners
    assert {0, cols - 1, (rows - 1) * cols, rows * cols - 1} <= set(blocks[0].tolist())


def test_blocks_near_the_edges_recompute_less_than_one_size_for_all():
    """The projective field of a window near an edge is cut off by the edge of the map; a
    block planned for such positions alone recomputes less than the middle block, and the
    whole map costs less than with one rectangle size for every position (one block)."""
    engine = importlib.import_module("convlens.occlusion_maps.engine")
    kernels = importlib.import_module("convlens.occlusion_maps.kernels")
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval()
    x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        runner = engine.Incremental(kernels.working_copy(model), x, 32, 8, 0.0, 25)
    middle = next(b for b in runner.blocks if 12 * 25 + 12 in b.positions.tolist())
    corner = runner.blocks[0]  # rows and columns 0, 24, 1, 23, 2
    assert corner.fraction < middle.fraction
    one_size = occlusion_plan(model, x, 32, 8, batch_size=625).recomputed_fraction
    blocks = occlusion_plan(model, x, 32, 8, batch_size=25).recomputed_fraction
    assert blocks == pytest.approx(runner.fraction)
    assert blocks < 0.9 * one_size


def test_a_large_classifier_gives_the_exact_map():
    """AlexNet's 9216 -> 4096 -> 4096 -> 1000 classifier after the shared tail: the map
    agrees with the naive loop."""
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval()
    x = torch.randn(1, 3, 79, 79)
    ours = occlusion(model, x, None, 24, 11, batch_size=9, method="incremental")
    assert relative_error(ours, naive_occlusion(model, x, 24, 11)) <= 1e-4


def test_full_maps_after_the_local_layers_give_the_exact_map(single_thread):
    """ResNet-18 in 9 blocks of 4 positions, its late layers on full maps: the map agrees
    with the naive loop."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 70, 70)
    ours = occlusion(model, x, None, 20, 9, batch_size=4, method="incremental")
    assert relative_error(ours, naive_occlusion(model, x, 20, 9)) <= 1e-4


class NoClock:
    """Stands in for the ``time`` functions a timing-based choice would read: any call fails."""

    def __call__(self, *args):
        raise AssertionError("the occlusion engine read a clock")


@pytest.mark.parametrize("builder, size, window, stride", [
    (lambda: torchvision.models.alexnet(weights=None), 79, 24, 11),
    (lambda: torchvision.models.resnet18(weights=None), 70, 20, 9),
])
def test_results_never_depend_on_timing(monkeypatch, builder, size, window, stride):
    """No kernel is chosen by a clock, and two runs (each path) give the same bits."""
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(1, 3, size, size)
    with monkeypatch.context() as patched:
        for name in ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time",
                     "time_ns", "process_time"):
            patched.setattr(f"time.{name}", NoClock())
        runs = [occlusion(model, x, None, window, stride, method=method)
                for method in ("incremental", "incremental", "batched", "batched")]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[2], runs[3])
    assert relative_error(runs[0], runs[2]) <= 1e-4


def test_target_none_gives_every_class_from_the_same_passes(attribution_resnet18):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 40, 40)
    every = occlusion(attribution_resnet18, x, None, window=16, stride=12)
    assert every.shape == (2, 1000, 3, 3)
    some = occlusion(attribution_resnet18, x, [5, 999], window=16, stride=12)
    torch.testing.assert_close(every[[0, 1], [5, 999]], some)


def test_default_batch_size_by_device_and_path():
    assert default_batch_size("cpu") == default_batch_size("cpu", "incremental") == 32
    assert default_batch_size("cpu", "batched") == 16
    assert default_batch_size(torch.device("cuda"), "batched") == 128
    with pytest.raises(ValueError, match="path must be"):
        default_batch_size("cpu", "fast")


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.conv(x).mean(dim=(2, 3))


class SharedInPlace(nn.Module):
    """An in-place ReLU overwrites a value that the residual add also reads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        a = self.conv(x)
        return (F.relu(a, inplace=True) + a).mean(dim=(2, 3))


class GlobalFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x.flip(-1)).mean(dim=(2, 3))


@pytest.mark.parametrize("model, words", [
    (WeightedSum(torch.randn(3, 1, 9, 9)), "no local layer"),
    (Untraceable(), "torch.fx cannot trace"),
    (SharedInPlace(), "in-place"),
    (GlobalFirst(), "no local layer"),
])
def test_falls_back_to_batched_and_says_why(model, words):
    torch.manual_seed(3)
    x = torch.randn(1, 1, 9, 9)
    plan = occlusion_plan(model, x, 3, 2)
    assert plan.path == "batched" and words in plan.reason
    assert plan.recomputed_fraction == 1.0
    torch.testing.assert_close(occlusion(model, x, None, 3, 2),
                               naive_occlusion(model, x, 3, 2), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="method='incremental' is not possible"):
        occlusion(model, x, 0, 3, 2, method="incremental")


def test_unknown_method_and_bad_fill_are_named():
    model = WeightedSum(torch.randn(2, 1, 5, 5))
    with pytest.raises(ValueError, match="method"):
        occlusion(model, torch.randn(1, 1, 5, 5), 0, window=2, method="fast")
    with pytest.raises(TypeError, match="fill"):
        occlusion(model, torch.randn(1, 1, 5, 5), 0, window=2, fill="mean")


def test_a_wrong_geometry_is_caught_by_the_self_check(monkeypatch):
    """If the traced geometry were wrong, the check against whole copies falls back."""
    module = importlib.import_module("convlens.occlusion_maps.crops")
    real = module.sliding_kernel

    def shifted(m, in_size):
        found = real(m, in_size)
        if found is not None:  # one row off
            rows, cols = found.geometry
            found = dataclasses.replace(
                found, geometry=(dataclasses.replace(rows, before=rows.before + 1), cols))
        return found

    monkeypatch.setattr(module, "sliding_kernel", shifted)
    torch.manual_seed(4)
    model = Tricky().eval()
    x = torch.randn(1, 2, 30, 30)
    with pytest.warns(UserWarning, match="self-check"):
        plan = occlusion_plan(model, x, 7, 5)
    assert plan.path == "batched" and "self-check" in plan.reason


def test_batch_norms_are_folded_into_a_private_convolution(attribution_resnet18):
    """ResNet-18: 20 convolution + batch-norm pairs (stem, 16 in blocks, 3 downsamples)."""
    engine = importlib.import_module("convlens.occlusion_maps.engine")
    kernels = importlib.import_module("convlens.occlusion_maps.kernels")
    x = torch.randn(1, 3, 32, 32)
    before = attribution_resnet18.conv1.weight.clone()
    with torch.no_grad():
        runner = engine.Incremental(kernels.working_copy(attribution_resnet18), x, 16, 8, 0.0)
        assert runner.check() is None
    assert runner.folded == 20
    assert type(runner.modules["bn1"]) is nn.Identity and "bn1" in dict(
        attribution_resnet18.named_modules())
    assert torch.equal(attribution_resnet18.conv1.weight, before)


class ScaledByItsMean(nn.Module):
    """conv(x) * mean(conv(x)): one number per example (numel 1 for one image), yet it
    changes with the occlusion."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return (y * y.mean(dim=(1, 2, 3), keepdim=True)).mean(dim=(2, 3))


def test_a_scalar_that_depends_on_the_input_is_not_a_constant():
    torch.manual_seed(5)
    model = ScaledByItsMean()
    x = torch.randn(1, 1, 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the self-check must not be what saves it
        assert occlusion_plan(model, x, 3, 2).path == "incremental"
    torch.testing.assert_close(occlusion(model, x, None, 3, 2),
                               naive_occlusion(model, x, 3, 2), rtol=1e-4, atol=1e-6)
