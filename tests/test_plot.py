"""convlens.plot: display reductions checked on hand-computed values, figure helpers by
their axes, and the promise that importing convlens does not import matplotlib.pyplot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

import convlens
from convlens import plot

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_import_convlens_does_not_import_pyplot_or_timm():
    lib = str(Path(convlens.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": lib + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MPLBACKEND", None)
    code = ("import sys, convlens, convlens.plot; "
            "print(convlens.__file__); print('matplotlib.pyplot' in sys.modules); "
            "print('timm' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True, timeout=300)
    imported_from, pyplot_loaded, timm_loaded = result.stdout.split()
    assert Path(imported_from).resolve() == Path(convlens.__file__).resolve()
    assert pyplot_loaded == "False"
    # timm warns on import inside a notebook without ipywidgets; only a timm model needs it
    assert timm_loaded == "False"


# --- heatmap --------------------------------------------------------------------------------

# Two channels over a 1 x 5 image; max |value| over channels is 0, 1, 2, 3, 4.
ATTRIBUTION = torch.tensor([[[0.0, -1.0, 2.0, 0.5, -4.0]],
                            [[0.0, 0.5, -1.0, -3.0, 1.0]]])


def test_heatmap_divides_by_its_maximum():
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION), [[0.0, 0.25, 0.5, 0.75, 1.0]])
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION, reduce="abs_sum"),
                               [[0.0, 1.5, 3.0, 3.5, 5.0]] / np.float32(5.0))
    # channel sums 0, -0.5, 1, -2.5, -3: only the positive one survives
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION, reduce="positive"),
                               [[0.0, 0.0, 1.0, 0.0, 0.0]])


def test_heatmap_percentile_clips_then_scales():
    # the 75th percentile of 0, .25, .5, .75, 1 (linear interpolation) is 0.75: values are
    # divided by 0.75 and everything above saturates at 1
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION, percentile=75),
                               [[0.0, 1 / 3, 2 / 3, 1.0, 1.0]], rtol=1e-6)
    # the 50th is 0.5 (the middle value); 62.5 interpolates halfway between 0.5 and 0.75
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION, percentile=50),
                               [[0.0, 0.5, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION, percentile=62.5),
                               [[0.0, 0.4, 0.8, 1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(plot.heatmap(ATTRIBUTION, percentile=100), plot.heatmap(ATTRIBUTION))


def test_heatmap_shapes_and_range():
    torch.manual_seed(0)
    g = torch.randn(1, 3, 6, 7)
    for kwargs in ({}, {"percentile": 99}, {"reduce": "abs_sum", "percentile": 90}):
        m = plot.heatmap(g, **kwargs)
        assert m.shape == (6, 7)
        assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    assert plot.heatmap(g[0, 0]).shape == (6, 7)  # a single [H, W] map
    assert (plot.heatmap(torch.zeros(3, 2, 2), percentile=99) == 0).all()  # no division by 0


def test_heatmap_percentile_matches_the_lessons_former_formula():
    torch.manual_seed(1)
    g = torch.randn(1, 3, 32, 32) ** 3  # heavy tails, so clipping matters
    m = plot.heatmap(g)
    former = np.clip(m / max(np.percentile(m, 99), 1e-12), 0, 1)
    np.testing.assert_array_equal(plot.heatmap(g, percentile=99), former)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (100.5, ValueError), (-1, ValueError),
                                        ("99", TypeError), (True, TypeError)])
def test_percentile_is_checked(bad, error):
    with pytest.raises(error, match="percentile"):
        plot.heatmap(ATTRIBUTION, percentile=bad)
    with pytest.raises(error, match="percentile"):
        plot.signed_to_rgb(torch.zeros(3, 2, 2), percentile=bad)


def test_heatmap_unknown_reduce():
    with pytest.raises(ValueError, match="unknown reduce 'mean'"):
        plot.heatmap(ATTRIBUTION, reduce="mean")


# --- signed_to_rgb --------------------------------------------------------------------------

# Three channels over a 1 x 2 image. |values| sorted: 0, 0.5, 1, 1, 2, 4.
SIGNED = torch.tensor([[[-4.0, 2.0]], [[1.0, 0.0]], [[-1.0, 0.5]]])


def test_signed_to_rgb_scales_by_the_largest_value():
    rgb = plot.signed_to_rgb(SIGNED)  # 0.5 + 0.5 * a / 4
    assert rgb.shape == (1, 2, 3)
    np.testing.assert_allclose(rgb[0], [[0.0, 0.625, 0.375], [0.75, 0.5, 0.5625]])


def test_signed_to_rgb_percentile_clips():
    # the 80th percentile of the six |values| is the 5th smallest (index 0.8 * 5 = 4): 2
    rgb = plot.signed_to_rgb(SIGNED[None], percentile=80)  # 0.5 + 0.5 * a / 2, clipped
    np.testing.assert_allclose(rgb[0], [[0.0, 0.75, 0.25], [1.0, 0.5, 0.625]])


def test_signed_to_rgb_percentile_matches_the_lessons_former_formula():
    torch.manual_seed(2)
    a = torch.randn(1, 3, 24, 24) ** 3
    q = max(float(a.abs().quantile(0.995)), 1e-12)
    former = plot.signed_to_rgb(a.clamp(-q, q))
    np.testing.assert_allclose(plot.signed_to_rgb(a, percentile=99.5), former, atol=1e-6)
    assert former.min() == 0 and former.max() == 1


def test_signed_to_rgb_needs_three_dimensions():
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        plot.signed_to_rgb(torch.zeros(4, 4))


# --- correlation ----------------------------------------------------------------------------

def test_correlation_of_known_vectors():
    assert plot.correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert plot.correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): 4 / sqrt(5 * 5) = 0.8
    assert plot.correlation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # over all elements: shapes may differ when the sizes agree; tensors and arrays mix
    assert plot.correlation(torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
                            np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert plot.correlation([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert isinstance(plot.correlation([1, 2], [1, 2]), float)


def test_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8, 8)), rng.normal(size=(3, 8, 8))
    b = a + b
    assert plot.correlation(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1],
                                                   rel=1e-5)


def test_correlation_errors():
    with pytest.raises(ValueError, match="same size"):
        plot.correlation([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="constant"):
        plot.correlation([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        plot.correlation([1], [2])


# --- table ----------------------------------------------------------------------------------

def test_table_text_and_nothing_shown_in_plain_python(capsys):
    text = plot.table(["layer", "k"], [["conv|1", 3], ["pool", 2.5]])
    assert text == "| layer | k |\n|---|---|\n| conv\\|1 | 3 |\n| pool | 2.5 |"
    assert capsys.readouterr().out == ""


def test_table_displays_markdown_under_ipython(monkeypatch):
    IPython = pytest.importorskip("IPython")
    display = pytest.importorskip("IPython.display")

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(display, "display", shown.append)
    text = plot.table(["a"], [[1]])
    assert len(shown) == 1 and isinstance(shown[0], display.Markdown)
    assert shown[0].data == text == "| a |\n|---|\n| 1 |"
    plot.table(["a"], [[1]], display=False)
    assert len(shown) == 1


def test_table_rows_must_match_headers():
    with pytest.raises(ValueError, match=r"rows\[1\] has 1 values but there are 2 headers"):
        plot.table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="at least one header"):
        plot.table([], [])


# --- arrays and figures ---------------------------------------------------------------------

def test_collated_kernels_tiles_with_nan_gaps():
    w = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    tiled = plot.collated_kernels(w, gap=1)
    assert tiled.shape == (2 * 3 - 1, 3 * 3 - 1)
    assert np.isnan(tiled[2]).all() and np.isnan(tiled[:, 2]).all()
    np.testing.assert_allclose(tiled[:2, :2], [[0, 1 / 3], [2 / 3, 1]], rtol=1e-6)


def test_rgb_filter_mosaic_shape_and_zero_is_grey():
    w = torch.zeros(5, 3, 2, 2)
    w[0, 0, 0, 0] = 1.0
    mosaic = plot.rgb_filter_mosaic(w, ncols=2, per_filter=False)
    assert mosaic.shape == (3 * 3 - 1, 2 * 3 - 1, 3)
    assert mosaic[0, 0, 0] == 1.0 and mosaic[0, 1, 0] == 0.5  # the one weight, then a zero
    assert (mosaic[2] == 1).all()  # white gap row


def test_figure_helpers_return_figures_with_their_axes():
    torch.manual_seed(0)
    fig, axes = plot.grid_figure(5, 3, title="t")
    assert len(axes) == 5 and len(fig.axes) == 6 and not fig.axes[5].get_visible()
    assert len(plot.filters_rgb(torch.randn(8, 3, 3, 3), ncols=4).axes) == 8
    assert len(plot.kernel_heatmaps(torch.randn(4, 2, 3, 3), [0, 2]).axes) == 4
    assert len(plot.feature_map_grid(torch.randn(3, 4, 4), ncols=2).axes) == 4  # 3 shown
    fig = plot.image_row([np.zeros((4, 4)), np.zeros((4, 4, 3))], ["a", "b"], title="row")
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    ax = plot.overlay(plt.subplots()[1], np.zeros((8, 8, 3)), torch.rand(1, 2, 2), title="o")
    assert len(ax.images) == 2 and ax.get_title() == "o"


def test_figure_helpers_name_bad_shapes():
    with pytest.raises(ValueError, match=r"\[C_out, 3, k, k\]"):
        plot.filters_rgb(torch.zeros(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        plot.feature_map_grid(torch.zeros(4, 4))
