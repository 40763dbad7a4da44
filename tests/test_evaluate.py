"""Deletion/insertion, AUC, the pointing game and model randomisation, against hand values."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from convlens.evaluate import (
    auc,
    deletion_curve,
    gaussian_blur,
    insertion_curve,
    peak_location,
    pointing_game,
    randomization_similarity,
)
from convlens.saliency import gradient


class TwoClassLinear(nn.Module):
    """logits = [w . x, 0], so p(class 0) = sigmoid(w . x): each pixel's share of the logit is
    w_i x_i, and removing a pixel (to 0) takes exactly its share away."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        s = (x * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def linear_case():
    weight = torch.tensor([[[[0.5, -1.0], [2.0, 0.25]]]], dtype=torch.float64)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    return TwoClassLinear(weight[0]), x, weight * x  # shares [[0.5, -2], [6, 1]]


def test_linear_model_deletion_curve_is_known_exactly():
    model, x, shares = linear_case()
    fractions, scores = deletion_curve(model, x, 0, shares, steps=4)
    # order: 6 (pixel 2), 1 (pixel 3), 0.5 (pixel 0), -2 (pixel 1); logit 5.5 -> -0.5 -> ...
    logits = torch.tensor([5.5, -0.5, -1.5, -2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1.0],
                                                       dtype=torch.float64))
    torch.testing.assert_close(scores, torch.sigmoid(logits)[None])
    expected = 0.25 * (torch.sigmoid(logits)[:-1] + torch.sigmoid(logits)[1:]).sum() / 2
    torch.testing.assert_close(auc(fractions, scores), expected[None])


def test_linear_model_insertion_curve_from_a_given_start():
    model, x, shares = linear_case()
    fractions, scores = insertion_curve(model, x, 0, shares, steps=4, blur=torch.zeros(1))
    logits = torch.tensor([0.0, 6.0, 7.0, 7.5, 5.5], dtype=torch.float64)
    torch.testing.assert_close(scores, torch.sigmoid(logits)[None])


def test_deletion_baseline_and_rounded_steps():
    model, x, shares = linear_case()
    # baseline 1.0: removing pixel i changes the logit by w_i (1 - x_i); 3 steps of 4 pixels
    # change round(4/3) = 1, round(8/3) = 3, then 4 pixels.
    fractions, scores = deletion_curve(model, x, 0, shares, steps=3, baseline=1.0)
    torch.testing.assert_close(fractions, torch.tensor([0, 0.25, 0.75, 1.0], dtype=torch.float64))
    logits = torch.tensor([5.5, 5.5 - 6 + 2, 5.5 - 6 + 2 - 1 + 0.25 - 0.5 + 0.5, 1.75],
                          dtype=torch.float64)
    torch.testing.assert_close(scores[0], torch.sigmoid(logits))


def test_channels_are_summed_and_batch_size_is_invisible():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 5))
    x = torch.randn(3, 3, 6, 6)
    attribution = torch.randn(3, 3, 6, 6)
    reference = deletion_curve(model, x, [0, 3, 4], attribution, steps=5, batch_size=1)
    summed = deletion_curve(model, x, [0, 3, 4], attribution.sum(1), steps=5, batch_size=7)
    torch.testing.assert_close(summed, reference)
    one = deletion_curve(model, x[1:2], 3, attribution[1:2], steps=5)
    torch.testing.assert_close(one[1], reference[1][1:2])
    # the curve by hand for example 1: set the k * 36 / 5 top pixels (all channels) to zero
    order = attribution[1].sum(0).flatten().argsort(descending=True, stable=True)
    for k, fraction in enumerate(reference[0]):
        count = round(k * 36 / 5)
        assert math.isclose(float(fraction), count / 36, rel_tol=1e-6)
        image = x[1].clone().reshape(3, 36)
        image[:, order[:count]] = 0
        with torch.no_grad():
            p = model(image.reshape(1, 3, 6, 6)).softmax(1)[0, 3]
        torch.testing.assert_close(reference[1][1, k], p)


def test_insertion_starts_blurred_and_ends_at_the_image():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 6))
    x = torch.randn(2, 3, 16, 16)
    fractions, scores = insertion_curve(model, x, [1, 5], torch.rand(2, 16, 16), steps=8)
    with torch.no_grad():
        p_end = model(x).softmax(1)[[0, 1], [1, 5]]
        p_start = model(gaussian_blur(x, 11, 5.0)).softmax(1)[[0, 1], [1, 5]]
    torch.testing.assert_close(scores[:, -1], p_end)
    torch.testing.assert_close(scores[:, 0], p_start)


def test_gaussian_blur_against_a_naive_2d_kernel():
    x = torch.randn(1, 2, 20, 20, dtype=torch.float64)
    offsets = torch.arange(-5, 6, dtype=torch.float64)
    g = torch.exp(-offsets**2 / 50)
    kernel = torch.outer(g, g) / g.sum() ** 2
    naive = F.conv2d(x.reshape(2, 1, 20, 20), kernel[None, None]).reshape(1, 2, 10, 10)
    blurred = gaussian_blur(x, 11, 5.0)
    assert blurred.shape == x.shape
    torch.testing.assert_close(blurred[..., 5:-5, 5:-5], naive)
    constant = torch.full((1, 3, 8, 8), 0.7)  # reflected borders keep a flat image flat
    torch.testing.assert_close(gaussian_blur(constant), constant)


def test_auc_trapezoid_and_errors():
    fractions = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(auc(fractions, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])),
                               torch.tensor([0.25, 0.75]))
    with pytest.raises(ValueError, match="non-decreasing"):
        auc(torch.tensor([0.0, 1.0, 0.5]), torch.ones(3))
    with pytest.raises(ValueError, match="must match"):
        auc(fractions, torch.ones(2, 4))
    with pytest.raises(TypeError, match="scores"):
        auc(fractions, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("function", [deletion_curve, insertion_curve])
@pytest.mark.parametrize("attribution, kwargs, error, words", [
    (torch.rand(1, 3, 3), {}, ValueError, r"\(3, 3\) pixels but the images are \(2, 2\)"),
    (torch.rand(2, 2, 2), {}, ValueError, "2 maps but the batch has 1"),
    (torch.rand(1, 2), {}, ValueError, r"\[N, C, H, W\] or \[N, H, W\]"),
    ([[0.0]], {}, TypeError, "attribution must be a torch.Tensor"),
    (torch.full((1, 2, 2), float("nan")), {}, ValueError, "NaN"),
    (torch.rand(1, 2, 2), {"steps": 0}, ValueError, "steps must be >= 1"),
    (torch.rand(1, 2, 2), {"batch_size": 1.5}, TypeError, "batch_size must be an int"),
])
def test_curve_bad_input_is_named(function, attribution, kwargs, error, words):
    model, x, _ = linear_case()
    with pytest.raises(error, match=words):
        function(model, x, 0, attribution, **kwargs)


def test_curve_bad_baseline_and_target():
    model, x, shares = linear_case()
    with pytest.raises(ValueError, match="out of range"):
        deletion_curve(model, x, 2, shares)
    with pytest.raises(TypeError, match="baseline must be"):
        deletion_curve(model, x, 0, shares, baseline="black")
    with pytest.raises(TypeError, match="blur must be"):
        insertion_curve(model, x, 0, shares, blur=5)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        insertion_curve(model, x, 0, shares, blur=(4, 1.0))


# ---- pointing game ----------------------------------------------------------------------

def peak_map(rows, cols, height=40, width=60):
    maps = torch.zeros(len(rows), height, width)
    for i, (r, c) in enumerate(zip(rows, cols)):
        maps[i, r, c] = 1.0
    return maps


def test_pointing_game_distances_by_hand():
    maps = peak_map([10, 10, 10, 10], [20, 20, 20, 39])
    boxes = [(30, 0, 40, 5),   # dx = 30 - 20 = 10, dy = 10 - 4 = 6: distance 11.66
             (30, 0, 40, 5),
             (0, 0, 21, 11),    # inside (columns 0..20, rows 0..10)
             (30, 0, 39, 11)]   # column 39 is just outside the half-open box: distance 1
    torch.testing.assert_close(pointing_game(maps, boxes, tolerance=15)[:2],
                               torch.tensor([True, True]))
    assert pointing_game(maps[:1], boxes[:1], tolerance=11).tolist() == [False]
    assert pointing_game(maps[:1], boxes[:1], tolerance=11.7).tolist() == [True]
    assert pointing_game(maps[2:], torch.tensor(boxes[2:]), tolerance=0).tolist() == [True, False]
    assert pointing_game(maps[3:], boxes[3:], tolerance=1).tolist() == [True]


def test_pointing_game_sums_channels_and_takes_a_plateau_at_its_centre():
    maps = torch.zeros(1, 3, 10, 10)
    maps[0, 0, 2, 2] = 1.0
    maps[0, 1, 8, 8] = 0.8
    maps[0, 2, 8, 8] = 0.8  # channel sum 1.6 at (8, 8) beats 1.0 at (2, 2)
    assert pointing_game(maps, [(7, 7, 10, 10)], tolerance=0).tolist() == [True]
    flat = torch.zeros(1, 10, 10)  # every pixel ties: centroid (4.5, 4.5), first nearest (4, 4)
    assert peak_location(flat).tolist() == [[4, 4]]
    assert pointing_game(flat, [(4, 4, 5, 5)], tolerance=0).tolist() == [True]
    assert pointing_game(flat, [(0, 0, 1, 1)], tolerance=0).tolist() == [False]


def test_peak_location_of_blocks_is_their_centre_not_their_corner():
    # an occlusion-like map: 8x8 blocks of equal value, the best block at rows 8..15, cols 16..23
    maps = torch.zeros(2, 32, 32)
    maps[0, 8:16, 16:24] = 2.0
    maps[0, 0:8, 0:8] = 1.0
    assert peak_location(maps[:1]).tolist() == [[11, 19]]  # centroid (11.5, 19.5)
    # a small box on the block's centre is hit; with argmax's top-left corner it was not
    assert pointing_game(maps[:1], [(18, 10, 22, 14)], tolerance=0).tolist() == [True]
    # two separate plateaus: centroid between them, the nearest maximal pixel wins
    maps[1, 0, 0] = maps[1, 0, 10] = maps[1, 0, 11] = 1.0  # centroid column 7: pixel (0, 10)
    assert peak_location(maps[1:]).tolist() == [[0, 10]]
    with pytest.raises(ValueError, match="NaN"):
        peak_location(torch.full((1, 4, 4), float("nan")))


@pytest.mark.parametrize("boxes, kwargs, error, words", [
    ([(0, 0, 5)], {}, ValueError, r"\[N, 4\]"),
    ([(0, 0, 5, 5), (0, 0, 5, 5)], {}, ValueError, "2 boxes but there are 1 maps"),
    ([(5, 0, 5, 5)], {}, ValueError, "x0 < x1"),
    ([(0, 0, 5, 5)], {"tolerance": -1}, ValueError, "tolerance"),
    ("box", {}, TypeError, "boxes must be"),
])
def test_pointing_game_bad_input(boxes, kwargs, error, words):
    with pytest.raises(error, match=words):
        pointing_game(torch.rand(1, 10, 10), boxes, **kwargs)


# ---- model randomisation ----------------------------------------------------------------

def two_linear():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Linear(5, 4))


def test_default_layers_are_parameterised_modules_last_called_first():
    result = randomization_similarity(two_linear(), torch.randn(1, 1, 8, 8), 1, gradient)
    assert result.layers == ["2", "1"]
    assert result.spearman.shape == result.spearman_abs.shape == result.ssim.shape == (2, 1)


@pytest.mark.parametrize("order", ["cascading", "independent"])
def test_randomised_gradients_match_a_by_hand_reinitialisation(order):
    model = two_linear()
    x = torch.randn(2, 1, 8, 8)
    result = randomization_similarity(model, x, [1, 3], gradient, order=order, seed=7)
    reference = gradient(model, x, [1, 3])
    torch.testing.assert_close(result.reference, reference)
    given = randomization_similarity(model, x, [1, 3], gradient, order=order, seed=7,
                                     reference=reference)
    assert torch.equal(given.spearman, result.spearman) and given.reference is not None

    by_hand = copy.deepcopy(model)
    rng_state = torch.get_rng_state()
    torch.manual_seed(7)
    by_hand[2].reset_parameters()
    after_top = gradient(by_hand, x, [1, 3])
    if order == "independent":
        by_hand = copy.deepcopy(model)
    by_hand[1].reset_parameters()
    after_both = gradient(by_hand, x, [1, 3])
    torch.set_rng_state(rng_state)
    torch.testing.assert_close(result.maps[0], after_top)
    torch.testing.assert_close(result.maps[1], after_both)

    for step, maps in enumerate([after_top, after_both]):
        for i in range(2):
            signed_ref, signed = reference[i].sum(0).flatten(), maps[i].sum(0).flatten()
            abs_ref, absolute = reference[i].abs().sum(0), maps[i].abs().sum(0)
            assert math.isclose(result.spearman[step, i], spearmanr(signed_ref, signed)[0],
                                abs_tol=1e-6)
            assert math.isclose(result.spearman_abs[step, i],
                                spearmanr(abs_ref.flatten(), absolute.flatten())[0], abs_tol=1e-6)
            ssim = structural_similarity((abs_ref / abs_ref.max()).double().numpy(),
                                         (absolute / absolute.max()).double().numpy(),
                                         data_range=1.0)
            assert math.isclose(result.ssim[step, i], ssim, abs_tol=1e-6)


def test_a_map_that_ignores_the_model_passes_for_every_randomisation():
    # Adebayo et al.'s point: an edge detector "explains" any network equally well.
    def edges(model, x, target):
        return (x[..., 1:, :] - x[..., :-1, :]).abs()[..., :, :]

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    x = torch.randn(1, 3, 12, 12)
    result = randomization_similarity(model, x, 2, edges, layers=["6", ["3", "1"], "0"])
    assert result.layers == ["6", "3+1", "0"]
    torch.testing.assert_close(result.spearman, torch.ones(3, 1, dtype=torch.float64))
    torch.testing.assert_close(result.ssim, torch.ones(3, 1, dtype=torch.float64))
    gradients = randomization_similarity(model, x, 2, gradient, layers=["6", ["3", "1"], "0"])
    assert (gradients.spearman_abs[-1].abs() < 0.9).all()


def test_model_and_global_rng_left_as_found_and_seeded():
    model = two_linear()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(1, 1, 8, 8)
    state = torch.get_rng_state()
    first = randomization_similarity(model, x, 0, gradient, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    second = randomization_similarity(model, x, 0, gradient, seed=1)
    other = randomization_similarity(model, x, 0, gradient, seed=2)
    assert torch.equal(first.spearman, second.spearman)
    assert not torch.equal(first.maps[1], other.maps[1])


def test_constant_map_has_nan_correlation():
    model = two_linear()
    result = randomization_similarity(model, torch.randn(1, 1, 8, 8), 0,
                                      lambda m, x, t: torch.ones_like(x) if m is not model
                                      else gradient(m, x, t), layers=["2"])
    assert np.isnan(result.spearman[0, 0].item()) and np.isnan(result.spearman_abs[0, 0].item())


@pytest.mark.parametrize("kwargs, error, words", [
    ({"order": "bottom-up"}, ValueError, "order must be"),
    ({"layers": ["3"]}, ValueError, "unknown layer name '3'"),
    ({"layers": ["0"]}, ValueError, "no submodule with reset_parameters"),
    ({"layers": "2"}, TypeError, "layers must be a non-empty list"),
    ({"layers": []}, TypeError, "layers must be a non-empty list"),
    ({"layers": [2]}, TypeError, "each entry of layers"),
    ({"method": "gradient"}, TypeError, "method must be callable"),
    ({"method": lambda m, x, t: torch.zeros(2, 4)}, ValueError, "method must return"),
    ({"seed": 1.0}, TypeError, "seed must be an int"),
    ({"reference": torch.zeros(2, 1, 8, 8)}, ValueError, "reference must be"),
])
def test_randomization_bad_input_is_named(kwargs, error, words):
    arguments = {"method": gradient, **kwargs}
    with pytest.raises(error, match=words):
        randomization_similarity(two_linear(), torch.randn(1, 1, 8, 8), 0, **arguments)


def test_layers_top_down_follows_the_forward_pass_and_leaves_no_hook():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(4, 2)  # defined first, called last
            self.early = nn.Conv2d(1, 4, 3)
            self.norm = nn.BatchNorm2d(4)
            self.act = nn.ReLU()

        def forward(self, x):
            x = self.act(self.norm(self.early(x)))
            x = self.act(x)  # a module without parameters, called twice: not listed
            return self.late(x.mean(dim=(2, 3)))

    model = Branchy().eval()
    assert evaluate_layers(model) == ["late", "norm", "early"]
    assert all(len(m._forward_pre_hooks) == 0 for m in model.modules())


def evaluate_layers(model):
    from convlens.evaluate import layers_top_down

    return layers_top_down(model, torch.randn(2, 1, 6, 6))


# ---- top-k intersection -----------------------------------------------------------------


def test_top_k_intersection_counts_shared_brightest_pixels_by_hand():
    from convlens.evaluate import top_k_intersection

    a = torch.zeros(2, 1, 4, 5)  # 20 pixels, fraction 0.2 -> the top 4
    a[0, 0, 0, :4] = torch.tensor([9.0, 8.0, 7.0, 6.0])
    b = a.clone()
    b[0, 0, 0, 3] = 0.0          # pixel (0, 3) leaves the top 4 ...
    b[0, 0, 2, 2] = 5.0          # ... and (2, 2) enters: 3 of 4 kept
    a[1, 0] = torch.arange(20.0).reshape(4, 5)
    b[1, 0] = -a[1, 0]           # reversed order: no top pixel shared
    assert top_k_intersection(a, b, fraction=0.2).tolist() == [0.75, 0.0]
    assert top_k_intersection(a, a, fraction=0.2).tolist() == [1.0, 1.0]


def test_top_k_intersection_sums_channels_and_breaks_ties_by_pixel_order():
    from convlens.evaluate import top_k_intersection

    signed = torch.tensor([[[[3.0, -1.0]], [[-3.0, 2.0]]]])  # channel sums: [0, 1]
    brightest_second = torch.tensor([[[0.0, 1.0]]])
    assert top_k_intersection(signed, brightest_second, fraction=0.5).tolist() == [1.0]
    flat = torch.ones(1, 2, 2)   # a constant map: its "top" is its first pixels
    first = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert top_k_intersection(flat, first, fraction=0.25).tolist() == [1.0]
    # k never drops to zero: 1% of 4 pixels is still one pixel
    assert top_k_intersection(flat, first, fraction=0.01).tolist() == [1.0]


def test_top_k_intersection_of_unrelated_maps_is_near_the_fraction():
    from convlens.evaluate import top_k_intersection

    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 64, 128, 128, generator=generator)
    shares = top_k_intersection(a[:, None], b[:, None], fraction=0.1)
    assert shares.shape == (64,)
    assert abs(shares.mean().item() - 0.1) < 0.01


@pytest.mark.parametrize("second, fraction, message", [
    (torch.zeros(1, 3, 3), 0.1, "differ in shape"),
    (torch.zeros(1, 4, 4), 0.0, "fraction must be"),
    (torch.zeros(1, 4, 4), 1.5, "fraction must be"),
    (torch.full((1, 4, 4), float("nan")), 0.1, "NaN"),
])
def test_top_k_intersection_rejects_bad_input(second, fraction, message):
    from convlens.evaluate import top_k_intersection

    with pytest.raises(ValueError, match=message):
        top_k_intersection(torch.zeros(1, 4, 4), second, fraction=fraction)
    with pytest.raises(TypeError, match="first must be a torch.Tensor"):
        top_k_intersection(np.zeros((1, 4, 4)), torch.zeros(1, 4, 4))
