"""ROAD's noisy linear imputation and curve, and the evidence-mass metric, on hand cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convlens.evaluate import deletion_curve, evidence_mass, impute, road_curve


def ramp(height=6, width=7, channels=3):
    """A different linear ramp a*row + b*col + c per channel, [1, C, H, W], float64."""
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    cols = torch.arange(width, dtype=torch.float64)[None]
    planes = [0.3 * rows - 0.2 * cols + 1.0, -0.1 * rows + 0.5 * cols, 0.7 * rows + 0.0 * cols]
    return torch.stack(planes[:channels])[None]


class Linear(nn.Module):
    """Two logits: [w . x, 0], so p(class 0) = sigmoid(w . x)."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        s = (x * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_a_ramp_is_reproduced_when_every_interior_pixel_is_removed():
    x = ramp()
    interior = torch.zeros(6, 7, dtype=torch.bool)
    interior[1:-1, 1:-1] = True  # the border ring alone decides the whole interior
    torch.testing.assert_close(impute(x, interior, noise=0), x)
    scattered = torch.rand(6, 7, generator=torch.Generator().manual_seed(1)) < 0.5
    torch.testing.assert_close(impute(x, scattered & interior, noise=0), x)


def test_a_border_pixel_is_the_mean_of_its_three_neighbours():
    x = ramp(4, 4, 1)
    removed = torch.zeros(4, 4, dtype=torch.bool)
    removed[0, 1] = True  # neighbours (0, 0), (0, 2), (1, 1)
    expected = (x[0, 0, 0, 0] + x[0, 0, 0, 2] + x[0, 0, 1, 1]) / 3
    out = impute(x, removed, noise=0)
    torch.testing.assert_close(out[0, 0, 0, 1], expected)
    assert torch.equal(out[0, 0][~removed], x[0, 0][~removed])


def test_two_removed_pixels_solve_a_two_by_two_system():
    # a row of 4: [a, u, v, d] with u = (a + v) / 2 and v = (u + d) / 2 -> u = (2a + d) / 3
    x = torch.tensor([[[[3.0, 100.0, -100.0, 9.0]]]], dtype=torch.float64)
    removed = torch.tensor([[False, True, True, False]])
    out = impute(x, removed, noise=0)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([3.0, 5.0, 7.0, 9.0],
                                                          dtype=torch.float64))


def test_constant_image_whatever_is_removed_and_all_removed_is_zero():
    x = torch.full((2, 3, 5, 5), 0.4, dtype=torch.float64)
    removed = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(0)) < 0.8
    removed[:, 0, 0] = False  # one kept pixel is enough
    torch.testing.assert_close(impute(x, removed, noise=0), x)
    everything = torch.ones(5, 5, dtype=torch.bool)
    assert torch.equal(impute(x, everything, noise=0), torch.zeros_like(x))
    # a removed island with no kept neighbour is set to 0, the rest still imputed
    island = torch.zeros(5, 5, dtype=torch.bool)
    island[0, :] = True  # touches row 1: imputed
    torch.testing.assert_close(impute(x, island, noise=0), x)


def test_noise_touches_only_removed_pixels_is_seeded_and_has_its_scale():
    x = torch.zeros(1, 3, 40, 40, dtype=torch.float64)
    removed = torch.zeros(40, 40, dtype=torch.bool)
    removed[5:35, 5:35] = True
    a = impute(x, removed, noise=0.5, generator=torch.Generator().manual_seed(3))
    b = impute(x, removed, noise=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(a[..., ~removed], x[..., ~removed])
    assert math.isclose(float(a[..., removed].std()), 0.5, rel_tol=0.05)


def test_road_on_a_ramp_keeps_the_score_while_it_removes_interior_pixels():
    x = ramp(8, 8)
    model = Linear(torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64))
    attribution = torch.zeros(1, 8, 8, dtype=torch.float64)
    attribution[0, 1:-1, 1:-1] = torch.rand(6, 6, generator=torch.Generator().manual_seed(2),
                                            dtype=torch.float64) + 1  # interior first
    with torch.no_grad():
        p = model(x).softmax(1)[0, 0]
    steps = 9  # 36 interior pixels of 64: steps 0..5 remove at most round(5 * 64 / 9) = 36
    fractions, scores = road_curve(model, x, 0, attribution, steps=steps, noise=0)
    torch.testing.assert_close(scores[0, :6], p.expand(6))
    assert fractions[5] == 36 / 64 and scores[0, 6] != p  # then the border goes too
    # the last point removes everything: the image is 0, as in deletion to 0
    _, deletion = deletion_curve(model, x, 0, attribution, steps=steps)
    torch.testing.assert_close(scores[0, -1], deletion[0, -1])


def test_road_orders_are_reverse_rankings():
    torch.manual_seed(0)
    weight = torch.zeros(1, 1, 3)
    weight[0, 0, 2] = 4.0  # only the last pixel matters to the logit
    model = Linear(weight)
    x = torch.tensor([[[[0.0, 0.0, 1.0]]]])
    attribution = torch.tensor([[[0.1, 0.2, 0.9]]])
    _, most = road_curve(model, x, 0, attribution, steps=3, order="most", noise=0)
    _, least = road_curve(model, x, 0, attribution, steps=3, order="least", noise=0)
    # most: pixel 2 first, imputed from pixel 1 (0) -> logit 0 at once
    torch.testing.assert_close(most[0], torch.sigmoid(torch.tensor([4.0, 0.0, 0.0, 0.0])))
    # least: pixel 0 (imputed from pixel 1), then pixels 0 and 1 (both imputed from pixel
    # 2, which keeps its value 1), then pixel 2 with nothing left: 0
    torch.testing.assert_close(least[0], torch.sigmoid(torch.tensor([4.0, 4.0, 4.0, 0.0])))


@pytest.mark.parametrize("kwargs, error, words", [
    ({"order": "top"}, ValueError, "order must be 'most' or 'least'"),
    ({"noise": -1.0}, ValueError, "noise must be a standard deviation"),
    ({"steps": 0}, ValueError, "steps"),
    ({"attribution": torch.rand(1, 3, 3)}, ValueError, r"\(3, 3\) pixels"),
    ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
])
def test_road_bad_input_is_named(kwargs, error, words):
    model = Linear(torch.ones(3, 4, 4))
    arguments = {"attribution": torch.rand(1, 4, 4), **kwargs}
    with pytest.raises(error, match=words):
        road_curve(model, torch.rand(1, 3, 4, 4), 0, **arguments)


def test_impute_bad_mask_is_named():
    with pytest.raises(TypeError, match="removed must be a bool tensor"):
        impute(torch.rand(1, 3, 4, 4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="removed must be"):
        impute(torch.rand(1, 3, 4, 4), torch.ones(3, 3, dtype=torch.bool))


def test_evidence_mass_by_hand():
    attribution = torch.tensor([[[2.0, -5.0], [1.0, 1.0]],
                                [[-1.0, -1.0], [-1.0, 0.0]]])
    mask = torch.tensor([[True, True], [False, False]])
    mass = evidence_mass(attribution, mask)
    assert mass[0].item() == pytest.approx(2.0 / 4.0)  # negatives count for nothing
    assert math.isnan(mass[1].item())  # no positive value: no share
    # channels are summed first: +3 and -3 cancel at pixel (0, 0)
    rgb = torch.zeros(1, 2, 2, 2)
    rgb[0, 0, 0, 0], rgb[0, 1, 0, 0], rgb[0, 0, 1, 1] = 3.0, -3.0, 1.0
    assert evidence_mass(rgb, mask).item() == 0.0
    uniform = torch.ones(1, 4, 4)
    quarter = torch.zeros(4, 4, dtype=torch.bool)
    quarter[:2, :2] = True
    assert evidence_mass(uniform, quarter).item() == pytest.approx(0.25)


def test_evidence_mass_bad_input_is_named():
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        evidence_mass(torch.rand(1, 2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="mask must be"):
        evidence_mass(torch.rand(2, 2, 2), torch.ones(3, 2, 2, dtype=torch.bool))


def test_bootstrap_means_are_paired_and_seeded():
    from convlens.evaluate import bootstrap_means

    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]])
    b = bootstrap_means(values, resamples=500, generator=torch.Generator().manual_seed(0))
    assert b.shape == (500, 2)
    # the same images for both rows: the difference is exactly 1 in every resample
    torch.testing.assert_close(b[:, 1] - b[:, 0], torch.ones(500, dtype=torch.float64))
    assert 2.0 < float(b[:, 0].mean()) < 3.0 and float(b[:, 0].min()) >= 1.0
    again = bootstrap_means(values, resamples=500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, again)
    one = bootstrap_means(torch.tensor([5.0, float("nan"), 5.0]), resamples=20)
    assert torch.all((one == 5.0) | one.isnan())
    with pytest.raises(TypeError, match="values must be a floating-point tensor"):
        bootstrap_means(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_means(values, resamples=0)


def test_up_to_stops_early_on_the_same_grid():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))
    x, attribution = torch.randn(2, 3, 8, 8), torch.randn(2, 8, 8)
    full = deletion_curve(model, x, [0, 2], attribution, steps=8)
    half = deletion_curve(model, x, [0, 2], attribution, steps=4, up_to=0.5)
    torch.testing.assert_close(half[0], full[0][:5])
    torch.testing.assert_close(half[1], full[1][:, :5])
    road_full = road_curve(model, x, [0, 2], attribution, steps=8, noise=0)
    road_half = road_curve(model, x, [0, 2], attribution, steps=4, noise=0, up_to=0.5)
    torch.testing.assert_close(road_half[1], road_full[1][:, :5])
    with pytest.raises(ValueError, match="up_to must be a fraction"):
        road_curve(model, x, 0, attribution, up_to=0)
    with pytest.raises(ValueError, match="up_to must be a fraction"):
        deletion_curve(model, x, 0, attribution, up_to=1.5)
