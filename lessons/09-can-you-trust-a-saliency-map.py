# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Can you trust a saliency map?
#
# **Summary.** Every method side by side, on a pretrained model and on a network whose evidence we know: randomisation, deletion (to a colour, a blur, by ROAD), insertion, pointing and evidence mass.
#
# **The question.** "The lessons gave me many ways to draw what the network looks at. Which
# of these maps should I believe, and for which question?"
#
# A saliency map is a claim about the network: *these pixels are why it said "cat"*. A claim
# can be tested. This lesson runs the tests of the literature on every method of the course,
# on two networks. The course model is pretrained on ImageNet, and nobody knows which pixels
# really decide its answers, so every test on it measures agreement with a proxy (an object's
# box, the effect of one way of removing pixels). The second network, `evidence_net`, is
# trained during the build on images whose deciding pixels we placed ourselves: on it some
# answers are known.
#
# - **Sanity** (Adebayo et al. 2018). If the map explains the *trained* network, destroying
#   the training must change it. Re-initialise the layers from the output down, one block
#   after another (*cascading randomisation*), and measure how similar each map stays to the
#   trained one, at every step. A map that does not change is not explaining what the network
#   learnt.
# - **Faithfulness** (Petsiuk et al. 2018; Rong et al. 2022). If the map ranks the pixels by
#   importance, removing the top-ranked pixels first should make the class probability
#   collapse (*deletion*), and putting them back first into a blurred copy should restore it
#   (*insertion*). *How* a pixel is removed matters, so we remove it three ways: to a constant
#   colour, to a blurred copy, and by ROAD's imputation from its neighbours.
# - **Localisation** (Zhang et al. 2016). On images where we know where the object is, does the
#   map's maximum land on it (*pointing game*)? On `evidence_net` we also measure how much of
#   the map lies on the known evidence (*evidence mass*).
#
# With $x^{(k)}$ the image after the $n_k$ top-ranked of the $P$ pixels have been changed,
# $f_k = n_k / P$ and $s_k = \mathrm{softmax}(\text{model}(x^{(k)}))_c$,
#
# $$ \mathrm{AUC} = \sum_{k=1}^{m} (f_k - f_{k-1})\,\frac{s_{k-1} + s_k}{2},
#    \qquad \text{deletion: lower is better,} \quad \text{insertion: higher is better,} $$
#
# and a pointing-game *hit* is a map whose maximum lies within 15 pixels of the object's box.
# Similarity under randomisation is Spearman's rank correlation $\rho$ between the trained and
# the randomised map (the Pearson correlation of the pixels' ranks), and the structural
# similarity SSIM (Wang et al. 2004).
#
# Papers: Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS 2018
# ([arXiv:1810.03292](https://arxiv.org/abs/1810.03292)); Petsiuk, Das & Saenko, *RISE:
# Randomized Input Sampling for Explanation of Black-box Models*, BMVC 2018
# ([arXiv:1806.07421](https://arxiv.org/abs/1806.07421)); Zhang et al., *Top-down Neural
# Attention by Excitation Backprop*, ECCV 2016 ([arXiv:1608.00507](https://arxiv.org/abs/1608.00507));
# Rong, Leemann, Borisov, Kasneci & Kasneci, *A Consistent and Efficient Evaluation Strategy
# for Attribution Methods* (ROAD), ICML 2022 ([arXiv:2202.00449](https://arxiv.org/abs/2202.00449));
# and, for networks with a known answer, Hesse, Schaub-Meyer & Roth, *FunnyBirds*, ICCV 2023
# ([arXiv:2308.06248](https://arxiv.org/abs/2308.06248)).
# Two methods are new here: **gradient × input** (Shrikumar et al. 2016,
# [arXiv:1605.01713](https://arxiv.org/abs/1605.01713)) and **Integrated Gradients**
# (Sundararajan, Taly & Yan 2017, [arXiv:1703.01365](https://arxiv.org/abs/1703.01365)),
#
# $$ \mathrm{IG}_i(x) = (x_i - x'_i)\int_0^1 \frac{\partial f_c}{\partial x_i}\big(x' + \alpha(x - x')\big)\,d\alpha,
#    \qquad \sum_i \mathrm{IG}_i(x) = f_c(x) - f_c(x'), $$
#
# the gradient averaged along the straight path from a baseline $x'$ (here zeros in the
# normalised input space, the mean colour) to the photo. The right-hand identity,
# *completeness*, holds for the exact integral; `convlens.integrated_gradients` approximates it
# with the trapezoid rule, and we check how close it gets.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython import get_ipython
from scipy.stats import spearmanr

import convlens
from convlens import evaluate, images, plot
from convlens.guided import rectifier_support
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
layer = ctx.layers["last_spatial"]
print("model:", ctx.name, "| device:", ctx.device, "| Grad-CAM layer:", layer)

x = ctx.image("chelsea")  # the cat photo, normalized, [1, 3, 224, 224]
top = ctx.top_classes(x, k=3)
for label, p in top:
    print(f"  {p:6.1%}  {label}")
target = ctx.class_index(top[0][0])
lesson.record("photo_class", top[0][0])
lesson.record("photo_probability", top[0][1], fmt="{:.0%}")

# The settings of every method, chosen so that the whole lesson stays within a few minutes on
# a 2-core CPU: 8 noisy samples, 24 path intervals, a 64-px occlusion window every 32 px.
SMOOTHGRAD_SAMPLES, IG_STEPS, WINDOW, STRIDE = 8, 24, 64, 32
IG_COARSE = 8  # a coarser path, once, to show what the number of intervals does
lesson.record("ig_steps", IG_STEPS)
lesson.record("ig_coarse_steps", IG_COARSE)
lesson.record("occlusion_windows", ((x.shape[-2] - WINDOW) // STRIDE + 1) * ((x.shape[-1] - WINDOW) // STRIDE + 1))


def seeded(device, offset=0):
    """A fresh generator: the same noise at every call (and so for every randomised model)."""
    return torch.Generator(device=device).manual_seed(ctx.seed + offset)


def occlusion_map(model, x, target, window=WINDOW, stride=STRIDE):
    """Occlusion as a per-pixel map: each pixel gets the mean drop of the windows covering it."""
    # target=None: the drops of every class from the same passes, so an image that comes twice
    # in a row (the pointing game asks each image once per object) is occluded only once.
    distinct, which = torch.unique_consecutive(x.flatten(1), dim=0, return_inverse=True)
    every = convlens.occlusion(model, distinct.view(-1, *x.shape[1:]), None, window=window,
                               stride=stride)  # [distinct images, classes, H', W']
    target = torch.as_tensor(target, device=x.device).expand(x.shape[0])
    drops = every[which, target]  # [N, H', W']
    box = torch.ones(1, 1, window, window, dtype=x.dtype, device=x.device)
    total = F.conv_transpose2d(drops[:, None].to(x.dtype), box, stride=stride)
    count = F.conv_transpose2d(torch.ones_like(total[:1, :, :drops.shape[1], :drops.shape[2]]),
                               box, stride=stride)
    pixels = total / count
    return F.pad(pixels, (0, x.shape[-1] - pixels.shape[-1], 0, x.shape[-2] - pixels.shape[-2]))


def methods_for(model, layer, window, stride):
    """Every method of the course for one network: its Grad-CAM layer, its occlusion window."""
    methods = {
        "occlusion": lambda m, x, t: occlusion_map(m, x, t, window, stride),
        "gradient": convlens.gradient,
        "gradient × input": convlens.gradient_x_input,
        "SmoothGrad": lambda m, x, t: convlens.smoothgrad(m, x, t, samples=SMOOTHGRAD_SAMPLES,
                                                          generator=seeded(x.device)),
        "Integrated Gradients": lambda m, x, t: convlens.integrated_gradients(m, x, t,
                                                                              steps=IG_STEPS),
        "deconvnet": convlens.deconvnet,
        "guided backprop": convlens.guided_backprop,
        "Grad-CAM": lambda m, x, t: convlens.gradcam(m, x, t, layer),
        "guided Grad-CAM": lambda m, x, t: convlens.guided_gradcam(m, x, t, layer),
    }
    # The three rectifier rules are defined for ReLU networks only (lesson 07); on a model with
    # another activation they refuse, and their rows are left out of every comparison here.
    support = rectifier_support(model)
    if support not in ("modules", "functional"):
        for name in RECTIFIER_METHODS:
            del methods[name]
        print(f"rectifier_support: {support}; left out: {', '.join(RECTIFIER_METHODS)}")
    return methods, support


RECTIFIER_METHODS = ("deconvnet", "guided backprop", "guided Grad-CAM")
METHODS, support = methods_for(model, layer, WINDOW, STRIDE)
lesson.expect(support in ("modules", "functional"),
              "deconvnet, guided backprop and guided Grad-CAM apply to this model (they are left "
              "out of every comparison on this page otherwise)", value=support)
lesson.record("n_methods", len(METHODS))


def text_of(table, name, fmt):
    """``table[name]`` formatted for the text, or a dash for a method left out on this model."""
    return format(table[name], fmt) if name in table else "– (left out)"


def random_map(model, x, target):
    """Baseline 1: uniform noise, the same for every call; it ignores model and image."""
    return torch.rand(x.shape[0], 1, *x.shape[-2:], generator=seeded(x.device, 1),
                      device=x.device, dtype=x.dtype)


def centre_map(model, x, target):
    """Baseline 2: minus the distance to the image centre; photographers centre objects."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device, dtype=x.dtype) - (h - 1) / 2
    cols = torch.arange(w, device=x.device, dtype=x.dtype) - (w - 1) / 2
    distance = (rows[:, None] ** 2 + cols[None] ** 2).sqrt()
    return (distance.max() - distance).expand(x.shape[0], 1, h, w)  # >= 0, largest at the centre


EVERY = {**METHODS, "random map": random_map, "centre map": centre_map}
BASELINE_STYLE = {"random map": dict(ls="--", color="black"),
                  "centre map": dict(ls=":", color="black")}
# Maps whose sign is not evidence for the class (the gradient family) are ranked by magnitude,
# as their lessons display them; additive ones (contributions, score drops, CAM) by value.
MAGNITUDE = {"gradient", "SmoothGrad", "deconvnet", "guided backprop", "guided Grad-CAM"}
RANKED_BY = {name: "|value|, max over RGB" if name in MAGNITUDE
             else "value (≥ 0 by construction)" if name == "Grad-CAM"
             else "value (one channel)" if name in ("random map", "centre map")
             else "signed value, sum over RGB" for name in EVERY}


def ranking(name, attribution):
    """The [N, H, W] map the metrics rank pixels by."""
    attribution = attribution.detach()
    if name in MAGNITUDE:
        return attribution.abs().amax(dim=1)
    return attribution.sum(dim=1)


def synchronize():
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()


convlens.gradient(model, x, target)  # warm-up: the first backward pass pays one-off costs
maps, seconds = {}, {}
for name, method in EVERY.items():
    synchronize()
    start = time.perf_counter()
    maps[name] = method(model, x, target)
    synchronize()
    seconds[name] = time.perf_counter() - start
    print(f"{name:>21}: {tuple(maps[name].shape)}, {seconds[name]:6.2f} s")

with torch.no_grad():
    logit, base_logit = model(x)[0, target], model(torch.zeros_like(x))[0, target]
change = (logit - base_logit).item()
coarse = convlens.integrated_gradients(model, x, target, steps=IG_COARSE)
gaps = {}
for steps, ig in [(IG_COARSE, coarse), (IG_STEPS, maps["Integrated Gradients"])]:
    gaps[steps] = abs(ig.sum().item() - change) / abs(change)
    print(f"completeness, {steps:2d} intervals: sum of IG = {ig.sum().item():7.3f}, "
          f"f(x) - f(baseline) = {change:.3f}, off by {gaps[steps]:.0%} of the change")
lesson.record("ig_sum", maps["Integrated Gradients"].sum().item(), fmt="{:.2f}")
lesson.record("ig_coarse_sum", coarse.sum().item(), fmt="{:.2f}")
lesson.record("ig_change", change, fmt="{:.2f}")
lesson.record("ig_gap", gaps[IG_STEPS], fmt="{:.0%}")
lesson.record("ig_coarse_gap", gaps[IG_COARSE], fmt="{:.0%}")
IG_TOLERANCE = 0.05  # Sundararajan et al. raise the steps until the sum is within 5%
lesson.record("ig_tolerance", IG_TOLERANCE, fmt="{:.0%}")
lesson.record("ig_verdict", "within it" if gaps[IG_STEPS] <= IG_TOLERANCE else
              "just above it" if gaps[IG_STEPS] <= 2 * IG_TOLERANCE else "above it")

# Why: the score along the straight path from the baseline (forward passes only).
alphas = torch.linspace(0, 1, 21, device=x.device)
with torch.no_grad():
    path_scores = model(alphas.view(-1, 1, 1, 1) * x)[:, target]
print("f along the path, alpha = 0, 0.05, ..., 1:", [round(v, 1) for v in path_scores.tolist()])
rise = ((path_scores[1] - path_scores[0]) / (path_scores[-1] - path_scores[0])).item()
lesson.record("ig_rise", rise, fmt="{:.0%}")
before = alphas < 1 / IG_COARSE  # the path's points before the coarse grid's first inner point
reached = ((path_scores[before][-1] - path_scores[0]) / (path_scores[-1] - path_scores[0])).item()
lesson.record("ig_rise_note",
              f"; the score has made {reached:.0%} of its change by α = "
              f"{alphas[before][-1].item():.2f}, before that grid's first inner point at "
              f"{1 / IG_COARSE:.3f}, so the grid has no point on "
              + ("most of the rise" if reached > 0.5 else f"only {reached:.0%} of it"))
_ = lesson.expect(gaps[IG_STEPS] < gaps[IG_COARSE], f"IG with {IG_STEPS} intervals misses "
                  f"completeness by less than with {IG_COARSE}", value=gaps)

# %% [markdown]
# With {{ ig_coarse_steps }} intervals, Integrated Gradients attributes {{ ig_coarse_sum }}
# logit units in total, against a change of {{ ig_change }} from the baseline to the photo: the
# trapezoid rule misses completeness by {{ ig_coarse_gap }} of the change. The printed path
# shows where the change happens (the sign of the sum comes from the derivatives at the
# grid's points, not printed here): the score makes {{ ig_rise }} of its whole change in the
# first twentieth of the path, between the mean-colour image and a faint copy of the photo,
# where an evenly spaced grid of {{ ig_coarse_steps }} intervals has no point
# inside{{ ig_rise_note }}. With the {{ ig_steps }}
# intervals used in the rest of the lesson the total is {{ ig_sum }}, off by {{ ig_gap }}.
# Sundararajan et al. raise the number of steps (they use 20 to 300) until the sum is within
# {{ ig_tolerance }} of the change; {{ ig_gap }} is {{ ig_verdict }}. Completeness checks only
# the total, not each pixel's value: read the map as a ranking of the pixels, and its sum as
# the change of the score up to that gap.
# (The library's tests check that the gap shrinks with the steps on a small network.)
#
# ## Every method side by side
#
# The same photo, the same class, {{ n_methods }} methods and the two baselines. Each panel shows the map
# the measurements below rank pixels by, divided by its own maximum: magnitudes in grey (dark
# = large) for the gradient family, signed maps in red (for the class) and blue (against) for
# gradient × input, Integrated Gradients and occlusion, and Grad-CAM as a heat map over the
# photo.

# %%
photo = ctx.to_display(x)
SIGNED = {"gradient × input", "Integrated Gradients", "occlusion"}


def draw(ax, name, attribution, image, title=None):
    shown = ranking(name, attribution)[0].cpu().double()
    shown = shown / shown.abs().max().clamp_min(1e-300)  # tiny maps of a randomised net too
    if name in ("Grad-CAM",):
        plot.overlay(ax, image, (shown / shown.max().clamp_min(1e-12)).numpy(), alpha=0.5)
    elif name in SIGNED:
        limit = max(float(np.percentile(shown.abs().numpy(), 99.5)), 1e-12)
        ax.imshow(shown.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    else:
        shown = shown - shown.min()
        ax.imshow(shown.numpy(), cmap="gray_r", vmin=0,
                  vmax=max(float(np.percentile(shown.numpy(), 99.5)), 1e-12))
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


fig, axes = plt.subplots(2, 6, figsize=(12, 4.5))
axes[0, 0].imshow(photo)
axes[0, 0].set_title(f"input: {ctx.labels[target]!r}", fontsize=8)
axes[0, 0].set_axis_off()
for ax, name in zip(axes.flat[1:], EVERY):
    draw(ax, name, maps[name], photo, name)
lesson.show(fig, f"Every method for {ctx.labels[target]!r} on one photo: the maps the "
                 "measurements rank by, each divided by its own maximum (signed maps clipped "
                 "at the 99.5th percentile of |value|).")
occlusion_negative = (ranking("occlusion", maps["occlusion"]) < 0).double().mean().item()
print(f"occlusion: {occlusion_negative:.0%} of the pixels have a negative value (greying the "
      "windows over them raises the score, on average)")
lesson.record("occlusion_negative", occlusion_negative, fmt="{:.0%}")
lesson.record("occlusion_colour", "mostly blue" if occlusion_negative > 0.5 else "mostly red")


# %% [markdown]
# Looking at these pictures decides nothing, and on this photo they do not even agree. The
# occlusion map is {{ occlusion_colour }}: {{ occlusion_negative }} of the pixels have a negative value,
# so greying the windows over them *raises* the score of the class on average. The deconvnet
# draws a regular grid in which the cat cannot be made out (lesson 07 explains why: on this
# model its map is an imprint of the weights). Gradient × input, Integrated Gradients, guided
# backprop and guided Grad-CAM trace the eyes and the nose, Grad-CAM marks one coarse blob,
# and the gradient and SmoothGrad show little structure at this size. The rest of the lesson
# measures them.
#
# ## Signed or absolute?
#
# Before a measurement can rank the pixels of a map it must decide what "important" means, and
# the methods answer differently. The table below is how the deletion, ROAD, insertion,
# pointing and evidence-mass measurements rank pixels. The randomisation test is the
# exception: like Adebayo et al., it compares the absolute maps (|value| summed over the
# channels) of every method, signed ones included, so a contribution that flips sign at the
# same place counts there as unchanged.
#
# - The **gradient family** (gradient, SmoothGrad, deconvnet, guided backprop, guided
#   Grad-CAM) is ranked by **magnitude**, the largest |value| over the three colour channels.
#   Its sign says in which direction a pixel would move the score, not whether the pixel is
#   evidence for the class: a large negative derivative marks a pixel the score depends on as
#   much as a large positive one. Lessons 06 and 07 display these maps the same way.
# - **Gradient × input, Integrated Gradients and occlusion** are read as **contributions**: a
#   positive value is evidence for the class and a negative one evidence against it. Each is
#   tied to a change of the score in its own way. Integrated Gradients' values add up to the
#   change from the baseline to the photo (off by {{ ig_gap }} above). Gradient × input is
#   the first-order estimate of the same change, and its sum is not checked on this page. An
#   occlusion window's drop is the exact change of the score when that window is greyed, but
#   the per-pixel map is the mean of the drops of the overlapping windows that cover each
#   pixel, so it adds up to nothing in particular. They are ranked by the **signed** value
#   summed over the channels, most positive first: removing a pixel with a negative
#   contribution should *raise* the score.
# - **Grad-CAM** is non-negative by construction (the ReLU at its end), so both readings
#   agree. The random and centre maps have one channel.
#
# The choice is part of the method: ranking gradient × input by magnitude would mix evidence
# for and against the class, and ranking the gradient by its signed value would call half of
# its most sensitive pixels the least important.

# %%
_ = plot.table(["method", "pixels ranked by"], [[name, RANKED_BY[name]] for name in EVERY])

# %% [markdown]
# ## Sanity: randomise the network from the top down
#
# Adebayo et al. re-initialise the weights of the network block by block, starting at the
# output, and recompute every map after each step. Here the steps follow the order in which the
# layers run (`evaluate.layers_top_down`), grouped by block: first the classifier alone, then
# three groups of blocks, the last one ending at the first convolution. Each step calls the
# modules' own `reset_parameters()` on a copy of the model (the course model is not touched),
# with a seeded generator. SmoothGrad and the random map draw the same noise at every step, so
# only the weights change.

# %%
groups = []  # consecutive layers of one block (the first two parts of the name) go together
for name in evaluate.layers_top_down(model, x):
    block = ".".join(name.split(".")[:2])
    if groups and groups[-1][0] == block:
        groups[-1][1].append(name)
    else:
        groups.append((block, [name]))
chunks = [groups[:1]] + [list(chunk) for chunk in np.array_split(np.array(groups[1:], dtype=object), 3)]
steps = [[layer_name for _, names in chunk for layer_name in names] for chunk in chunks]
step_labels = [chunk[0][0] if len(chunk) == 1 else f"…{chunk[-1][0]}" for chunk in chunks]
print("cascade:", " → ".join(f"{label} ({len(s)} layers)" for label, s in zip(step_labels, steps)))

randomised = {}
start = time.perf_counter()
for name, method in EVERY.items():
    randomised[name] = evaluate.randomization_similarity(
        model, x, target, method, order="cascading", layers=steps, seed=ctx.seed,
        reference=maps[name])
print(f"randomisation of {len(EVERY)} maps: {time.perf_counter() - start:.0f} s")
print(f"{'Spearman |map|':>21}: " + "  ".join(f"{label:>11}" for label in step_labels))
for name, result in randomised.items():
    print(f"{name:>21}: " + "  ".join(f"{v:11.2f}" for v in result.spearman_abs[:, 0].tolist()))

rho_top = {name: r.spearman_abs[0, 0].item() for name, r in randomised.items()}
rho_mean = {name: r.spearman_abs[:, 0].mean().item() for name, r in randomised.items()}

# %%
fig, axes = plt.subplots(len(METHODS), len(steps) + 1, figsize=(1.5 * (len(steps) + 1) + 0.6,
                                                               1.5 * len(METHODS)))
for index, (row, name) in enumerate(zip(axes, METHODS)):
    result = randomised[name]
    for col, (ax, attribution) in enumerate(zip(row, [result.reference, *result.maps])):
        draw(ax, name, attribution, photo)
        if col == 0:
            ax.set_ylabel(name, fontsize=8)
        if index == 0:
            ax.set_title("trained" if col == 0 else f"{step_labels[col - 1]}", fontsize=8)
lesson.show(fig, f"Cascading randomisation of {ctx.name}: each row is one method for "
                 f"{ctx.labels[target]!r}, each column re-initialises more layers, from the "
                 "classifier down to the first convolution. Drawn as in the first figure "
                 "(signed maps signed); ρ compares |map|.")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for name, result in randomised.items():
    style = BASELINE_STYLE.get(name, {})
    for ax, values in zip(axes, [result.spearman_abs, result.ssim]):
        ax.plot(range(len(steps)), values[:, 0].numpy(), marker="o", ms=3, label=name, **style)
for ax, title in zip(axes, ["Spearman ρ of |map| with the trained map", "SSIM of |map|"]):
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels(step_labels, fontsize=8)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("randomised down to")
axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
lesson.show(fig, "Similarity of each randomised map to the trained one (1 = unchanged). The "
                 "two baselines (black) ignore the network, so they stay at 1.")

# %% [markdown]
# What the two figures show, in numbers (we call a map *unchanged* when ρ > 0.8, *changed* when
# ρ < 0.6):
#
# - After re-initialising **only the classifier**, the layer that turns features into "cat",
#   guided backprop keeps ρ = {{ rho_top_guided }} and deconvnet ρ = {{ rho_top_deconvnet }}:
#   their pictures are those of the trained model although the classifier is now random. Guided
#   Grad-CAM {{ guided_gradcam_inherits }} (ρ = {{ rho_top_guided_gradcam }}). Guided backprop is still at
#   ρ = {{ rho_second_guided }} when everything down to {{ second_step }} is random.
# - The plain gradient ({{ rho_top_gradient }}), SmoothGrad ({{ rho_top_smoothgrad }}) and
#   occlusion ({{ rho_top_occlusion }}) change at the first step.
# - Grad-CAM, gradient × input and Integrated Gradients {{ three_rho }} Their brightest pixels
#   separate them: Grad-CAM keeps {{ top_kept_gradcam }} of its brightest 5% among the
#   brightest (its peak moves, Figure 2), gradient × input and Integrated Gradients
#   {{ top_kept_gxi }} and {{ top_kept_ig }} (`evaluate.top_k_intersection`; unrelated maps
#   share about 5%, the plain gradient {{ top_kept_gradient }}, guided backprop
#   {{ top_kept_guided }}). The gradient × input and Integrated Gradients rows in Figure 2 keep the cat's outline in every column: the
#   photo they multiply in stays. They pass only in part.
# - On this photo, with one random draw, methods unchanged by the first step are
#   {{ sanity_failures }}, {{ adebayo_agree }}, and the gradient changes, as in the paper.
#   Grad-CAM, which the paper found to pass, changes here too, by ρ and by its brightest
#   pixels; {{ gradcam_ssim }} (Figure 3).
# - Two more observations. Gradient × input and Integrated Gradients multiply by the input,
#   so part of their picture is the photo itself (Adebayo et al. make the same point about
#   gradient × input): with every layer
#   random they keep ρ = {{ rho_last_gxi }} and {{ rho_last_ig }}, against
#   {{ rho_last_gradient }} for the plain gradient{{ rho_last_others }}
#   {{ gradcam_last_reading }}
# - The deconvnet fails at the first step (ρ = {{ rho_top_deconvnet }}) and then
#   {{ deconvnet_later }} (ρ = {{ rho_third_deconvnet }} once everything down to
#   {{ third_step }} is random). That is no sign that it explains the decision: on this model
#   its map is an imprint of the convolution weights (lesson 07), so it changes when they do,
#   not when only the classifier does (the first step). Averaged over the cascade its ρ would
#   be {{ rho_mean_deconvnet }}, {{ deconvnet_mean_reading }}, which is why this page reports
#   every step and never the mean.
# - The two baselines ignore the network and stay at exactly 1: a "perfect" score on this
#   test is a failure.

# %%
rho_step = {name: r.spearman_abs[:, 0].tolist() for name, r in randomised.items()}
top_kept = {name: evaluate.top_k_intersection(r.reference.abs(), r.maps[0].abs()).item()
            for name, r in randomised.items()}  # share of the top 5% kept at the first step
unchanged = [name for name in METHODS if rho_top[name] > 0.8]
changed = [name for name in METHODS if rho_top[name] < 0.6]
print("after the classifier step, rho > 0.8:", unchanged, "; rho < 0.6:", changed)
print("top 5% kept:", {name: round(top_kept[name], 2) for name in METHODS})
for key, name in [("gxi", "gradient × input"), ("ig", "Integrated Gradients"),
                  ("gradient", "gradient"), ("guided", "guided backprop"),
                  ("gradcam", "Grad-CAM")]:
    lesson.record(f"rho_top_{key}", text_of(rho_top, name, ".2f"))
    lesson.record(f"top_kept_{key}", text_of(top_kept, name, ".0%"))
partial = all(rho_top[n] < 0.6 and top_kept["gradient"] + 0.1 < top_kept[n] < 0.9
              and top_kept[n] > top_kept["Grad-CAM"] + 0.2
              for n in ["gradient × input", "Integrated Gradients"])
lesson.expect(partial, "gradient × input and IG: rho below 0.6, and a share of the top 5% kept "
              "between the gradient's (by over 0.1) and 0.9, over Grad-CAM's by 0.2",
              value=top_kept)
for key, name in [("deconvnet", "deconvnet"),
                  ("guided_gradcam", "guided Grad-CAM"), ("smoothgrad", "SmoothGrad"),
                  ("occlusion", "occlusion")]:
    lesson.record(f"rho_top_{key}", text_of(rho_top, name, ".2f"))
lesson.record("rho_second_guided", text_of({k: v[1] for k, v in rho_step.items()},
                                           "guided backprop", ".2f"))
lesson.record("second_step", step_labels[1].lstrip("…"))
lesson.record("third_step", step_labels[2].lstrip("…"))
lesson.record("rho_third_deconvnet", text_of({k: v[2] for k, v in rho_step.items()},
                                             "deconvnet", ".2f"))
for key, name in [("deconvnet", "deconvnet"), ("ig", "Integrated Gradients")]:
    lesson.record(f"rho_mean_{key}", text_of(rho_mean, name, ".2f"))
for key, name in [("gxi", "gradient × input"), ("ig", "Integrated Gradients"),
                  ("gradient", "gradient"), ("gradcam", "Grad-CAM")]:
    lesson.record(f"rho_last_{key}", rho_step[name][-1], fmt="{:.2f}")
lesson.record("sanity_failures", ", ".join(unchanged) or "none")
inputless = ("guided backprop", "deconvnet", "Grad-CAM", "guided Grad-CAM", "SmoothGrad", "occlusion")
floor_last = min(rho_step["gradient × input"][-1], rho_step["Integrated Gradients"][-1])
as_high = [n for n in inputless if n in rho_step and rho_step[n][-1] >= floor_last]
lesson.record("rho_last_others",
              "; but " + " and ".join(f"{n} ({rho_step[n][-1]:.2f})" for n in as_high)
              + f" keep{'s' if len(as_high) == 1 else ''} as much without multiplying by the "
              "input, so ρ alone does not show this; Figure 2 does: the gradient × input and "
              "Integrated Gradients rows keep the cat's outline in every column." if as_high else ".")
three = [rho_top.get(n, float("nan")) for n in ("Grad-CAM", "gradient × input", "Integrated Gradients")]
lesson.record("three_rho", (f"have alike ρ ({three[0]:.2f}, {three[1]:.2f}, {three[2]:.2f}); their "
                            "SSIM differs more (Figure 3)." if max(three) - min(three) < 0.1 else
                            f"have ρ = {three[0]:.2f}, {three[1]:.2f} and {three[2]:.2f}."))
whole = [n for n in unchanged if top_kept[n] > 0.9]  # unchanged by rho and by the top 5%
mostly = "".join(f" {n} mostly survives too (ρ = {rho_top[n]:.2f}, {top_kept[n]:.0%} of its "
                 "brightest pixels kept), so most of what it draws does not come from the "
                 "decision." for n in unchanged if n not in whole)
lesson.record("sanity_answer",
              f"On {ctx.name} and this photo (one random draw), not for "
              f"{', '.join(whole or unchanged)}: they survive a random "
              "classifier, so what they draw does not come from the decision." + mostly * bool(whole) + (
                  " Gradient × input and Integrated Gradients pass only in part (more of "
                  "their brightest pixels stay than the gradient's)." if partial else "") if unchanged else
              "On this model no method stays unchanged (ρ > 0.8) when the classifier is "
              "re-initialised, so none fails this test at its first step.")
lesson.expect({"guided backprop", "deconvnet"} <= set(unchanged)
              and {"gradient", "SmoothGrad", "occlusion", "Grad-CAM"} <= set(changed),
              "guided backprop and deconvnet are unchanged (rho > 0.8) after the classifier is "
              "randomised; gradient, SmoothGrad, occlusion and Grad-CAM change (rho < 0.6)",
              value=rho_top)
lesson.expect("guided backprop" in rho_step and rho_step["guided backprop"][1] > 0.8,
              "guided backprop is still unchanged after the second step", value=rho_step)
lesson.expect(min(rho_step["gradient × input"][-1], rho_step["Integrated Gradients"][-1])
              > rho_step["gradient"][-1] + 0.1, "with every layer random, gradient x input and "
              "IG keep a higher rho than the gradient", value=rho_step)
guided_gradcam_top = rho_top.get("guided Grad-CAM", float("nan"))
lesson.record("guided_gradcam_inherits", "inherits this" if guided_gradcam_top > 0.8 else
              "inherits part of this" if guided_gradcam_top > 0.6 else "does not inherit this")
lesson.record("adebayo_agree",
              "as Adebayo et al. found for guided backprop and guided Grad-CAM"
              if "guided Grad-CAM" in unchanged else
              "as Adebayo et al. found for guided backprop (they found guided Grad-CAM "
              f"unchanged too; here its ρ is {guided_gradcam_top:.2f})")
gradcam_ssim = randomised["Grad-CAM"].ssim[:, 0].min().item()
lesson.record("gradcam_ssim", f"its SSIM stays at {gradcam_ssim:.2f} or above at every step, but two "
              "smooth heat maps upsampled from a coarse grid can have a high SSIM even when "
              "unrelated (not measured here), so we do not read that as unchanged"
              if gradcam_ssim > 0.5 else f"its SSIM falls too, to {gradcam_ssim:.2f}")
gradcam_last = rho_step["Grad-CAM"][-1]
lesson.record("gradcam_last_reading",
              f"Grad-CAM's ρ with every layer random is {gradcam_last:.2f}; that is one draw of a "
              "coarse map, and this page does not measure how much ρ varies between random draws, so "
              "it cannot tell a lasting tie to the trained map from chance.")
deconvnet_third = rho_step["deconvnet"][2] if "deconvnet" in rho_step else float("nan")
lesson.record("deconvnet_later", "changes completely" if deconvnet_third < 0.3 else "changes")
mean_gap = abs(rho_mean.get("deconvnet", float("nan")) - rho_mean["Integrated Gradients"])
lesson.record("deconvnet_mean_reading",
              f"close to Integrated Gradients' {rho_mean['Integrated Gradients']:.2f} although "
              "the two behave oppositely at the first step" if mean_gap < 0.15 else
              f"against Integrated Gradients' {rho_mean['Integrated Gradients']:.2f}; a single "
              "mean would hide the step at which each map changes")

# %% [markdown]
# ## Faithfulness: deletion three ways, and insertion
#
# Deletion changes the top-ranked pixels of the photo, all channels of a pixel at once, in
# {{ curve_steps }} steps of 1/{{ curve_steps }} of the pixels, and records the class
# probability. *What* a deleted pixel becomes is a choice, and the three choices below are
# not equally fair:
#
# - **to 0** in the model's normalised input space, the dataset's mean colour (a grey-brown),
#   as in RISE. This is exactly the baseline Integrated Gradients integrates from, and the
#   point gradient × input linearises towards: both estimate how the score changes when a
#   pixel goes to 0, so this test asks the very question they answer, which can favour them.
#   (Whether it does on this photo is read below.) And a scatter of grey
#   specks is itself a pattern the network can react to.
# - **to a blur** of the photo (RISE's Gaussian, kernel 11, σ 5): a deleted pixel keeps its
#   local colour, and loses only its detail.
# - **by ROAD** (Rong et al. 2022): each deleted pixel is imputed from its neighbours (here
#   the mean of its four neighbours, where Rong et al. weight eight; all deleted pixels solved
#   together as one sparse linear system, plus noise of standard deviation {{ road_noise }}),
#   so that the deleted region is filled from its surroundings and its shape is meant to
#   give less away than grey specks do (below, the deconvnet's grid, which does not depend on
#   the photo, still beats the random map under ROAD, for a reason this page does not test)
#   (`evaluate.road_curve`, most important pixels first).
#
# Insertion starts from the blurred photo and puts the top-ranked pixels back. All
# {{ n_every }} maps are ranked in one batch, on the photo above; the curves of one photo are
# one measurement each, with no error bar (the known-answer network below is measured over
# many images, with intervals of its own, which do not carry over to this photo).

# %%
CURVE_STEPS = 6  # 6 steps keep the lesson's CPU time in budget (ROAD solves one system per step)
ROAD_NOISE = 0.01
names = list(EVERY)
batch = x.expand(len(names), -1, -1, -1)
ranks = torch.cat([ranking(name, maps[name]) for name in names])  # [11, 224, 224]
start = time.perf_counter()
fractions, deletion = evaluate.deletion_curve(model, batch, target, ranks, steps=CURVE_STEPS,
                                              batch_size=32)
_, blur_deletion = evaluate.deletion_curve(model, batch, target, ranks, steps=CURVE_STEPS,
                                           baseline=evaluate.gaussian_blur(x), batch_size=32)
_, road = evaluate.road_curve(model, batch, target, ranks, steps=CURVE_STEPS, noise=ROAD_NOISE,
                              generator=seeded("cpu", 2), batch_size=32)
_, insertion = evaluate.insertion_curve(model, batch, target, ranks, steps=CURVE_STEPS,
                                        batch_size=32)
print(f"four curves for {len(names)} maps: {time.perf_counter() - start:.1f} s")
CURVES = {"deletion to 0": deletion, "deletion to blur": blur_deletion, "ROAD": road,
          "insertion": insertion}
area = {kind: dict(zip(names, evaluate.auc(fractions, c).tolist())) for kind, c in CURVES.items()}
deletion_auc, insertion_auc = area["deletion to 0"], area["insertion"]
lesson.record("curve_steps", CURVE_STEPS)
lesson.record("road_noise", ROAD_NOISE)
lesson.record("n_every", len(names))
print(f"{'AUC':>21}: " + "  ".join(f"{kind:>16}" for kind in CURVES))
for name in names:
    print(f"{name:>21}: " + "  ".join(f"{area[kind][name]:16.3f}" for kind in CURVES))

fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharey=True)
for ax, (kind, curves) in zip(axes, CURVES.items()):
    for i, name in enumerate(names):
        ax.plot(fractions.cpu(), curves[i].cpu(), label=name, **BASELINE_STYLE.get(name, {}))
    better = "higher" if kind == "insertion" else "lower"
    ax.set_title(f"{kind} ({better} area is better)", fontsize=9)
    ax.set_xlabel("fraction of pixels changed")
axes[0].set_ylabel(f"p({ctx.labels[target]!r})")
axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
lesson.show(fig, f"Deletion to the mean colour, to a blur and by ROAD's imputation, and "
                 f"insertion, for every map of {ctx.labels[target]!r} on the photo; the "
                 "baselines in black (random dashed, centre dotted).")

# %%
MARGIN_FLOOR = 0.01  # one photo, one ROAD draw: areas this close to the best are ties
# how much one more draw of ROAD's noise moves the areas: the noise the margin must cover
_, road_again = evaluate.road_curve(model, batch, target, ranks, steps=CURVE_STEPS,
                                    noise=ROAD_NOISE, generator=seeded("cpu", 5), batch_size=32)
road_redraw = float((evaluate.auc(fractions, road_again) - evaluate.auc(fractions, road))
                    .abs().max())
print(f"a second ROAD draw moves the areas by up to {road_redraw:.4f}")
lesson.record("road_redraw", road_redraw, ".3f")
# the margin must cover at least that movement: the floor, or the redraw rounded up to 0.01
TIE_MARGIN = max(MARGIN_FLOOR, math.ceil(road_redraw * 100) / 100)
print(f"tie margin: {TIE_MARGIN}")


def tied_at_top(table, higher_is_better=False):
    """The methods (baselines excluded) within TIE_MARGIN of the best area, best first."""
    sign = -1 if higher_is_better else 1
    order = sorted(METHODS, key=lambda n: sign * table[n])
    return [n for n in order if sign * (table[n] - table[order[0]]) <= TIE_MARGIN]


def with_areas(table, names):
    """'a (0.044) and b (0.045)': the names with their areas, for the text."""
    parts = [f"{n} ({table[n]:.3f})" for n in names]
    if not parts:  # a model on which some methods do not run (another activation)
        return "none"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


deletion_kinds = ("deletion to 0", "deletion to blur", "ROAD")
tied_area = {kind: tied_at_top(area[kind]) for kind in deletion_kinds}
tied_area["insertion"] = tied_at_top(insertion_auc, higher_is_better=True)
for kind, tied in tied_area.items():
    print(f"{kind:>16}: tied at the top (within {TIE_MARGIN} of the best): {tied}")
lesson.record("tie_margin", TIE_MARGIN)
contribution = [n for n in ("gradient × input", "Integrated Gradients") if n in METHODS]
for kind, key in zip(deletion_kinds, ("zero", "blur", "road")):
    lesson.record(f"tied_{key}", with_areas(area[kind], tied_area[kind]))
    lesson.record(f"random_{key}_auc", area[kind]["random map"], fmt="{:.3f}")
    beats = [n for n in sorted(METHODS, key=area[kind].get)
             if area[kind][n] < area[kind]["random map"] - TIE_MARGIN]
    lesson.record(f"beats_random_{key}", ", ".join(beats) or "none")
for key, kind, name in [("road_ig", "ROAD", "Integrated Gradients"),
                        ("zero_gradcam", "deletion to 0", "Grad-CAM")]:
    lesson.record(key, text_of(area[kind], name, ".3f"))
next_zero = [n for n in sorted(METHODS, key=area["deletion to 0"].get) if n not in contribution]
lesson.record("next_zero", with_areas(area["deletion to 0"], next_zero[:1]))
for kind, key in zip(deletion_kinds, ("zero", "blur", "road")):  # methods worse than random
    lesson.record(f"random_beats_{key}", sum(area[kind][n] > area[kind]["random map"] + TIE_MARGIN
                                              for n in METHODS))
# the centre map ignores the network too: how many methods does ROAD put below it?
centre_beats_road = sum(area["ROAD"][n] > area["ROAD"]["centre map"] + TIE_MARGIN for n in METHODS)
lesson.record("centre_beats_road", centre_beats_road)
lesson.record("road_centre", area["ROAD"]["centre map"], fmt="{:.3f}")
lesson.record("road_centre_reading", (
    f" On the photo, though, ROAD scores the centre map, which ignores the network, better by "
    f"more than {TIE_MARGIN} than {centre_beats_road} of the {len(METHODS)} methods, so report "
    "it next to that baseline.") if centre_beats_road else "")


def ordinal(n):
    """1st, 2nd, 3rd, 4th, ..."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def deleting_changes():
    """What the way of deleting changes on this photo, read from the areas."""
    at_top = {kind: [n for n in contribution if n in tied_area[kind]] for kind in deletion_kinds}
    both = len(contribution) == 2
    if both and len(at_top["deletion to 0"]) == 2:
        text = ("Gradient × input and Integrated Gradients share deletion to 0's baseline, and "
                "they are tied at the top there. ")
        if len(at_top["deletion to blur"]) == 2:
            text += ("This photo does not show that the baseline is what puts them ahead: they "
                     "are also tied at the top with a blur")
        else:
            text += ("With a blur " + (f"only {at_top['deletion to blur'][0]} is"
                                       if at_top["deletion to blur"] else "neither is")
                     + " tied at the top, so part of their lead may come from the baseline")
        road = at_top["ROAD"]
        text += (", and under ROAD " + ("both still are" if len(road) == 2 else
                                        f"{road[0]} still is" if road else "neither is") + ". ")
    else:
        text = ("Gradient × input and Integrated Gradients share deletion to 0's baseline, yet "
                "they are not both tied at the top there on this photo (tied: "
                f"{lesson.and_list(tied_area['deletion to 0'])}). ")
    order_zero = sorted(METHODS, key=area["deletion to 0"].get)
    order_road = sorted(METHODS, key=area["ROAD"].get)
    worst = order_zero[-2:]
    road_place = ("both tied at the top under ROAD" if set(worst) <= set(tied_area["ROAD"]) else
                  f"{ordinal(order_road.index(worst[0]) + 1)} and "
                  f"{ordinal(order_road.index(worst[1]) + 1)} of {len(METHODS)} under ROAD")
    moved_up = all(order_road.index(n) < len(METHODS) - 2 for n in worst)
    text += (("The rest of the order changes too: " if moved_up else "The bottom stays: ")
             + f"{worst[0]} ({area['deletion to 0'][worst[0]]:.3f}) and {worst[1]} "
             f"({area['deletion to 0'][worst[1]]:.3f}), the two worst methods at deletion to 0, "
             f"are {road_place} ({area['ROAD'][worst[0]]:.3f}, {area['ROAD'][worst[1]]:.3f}).")
    return text


lesson.record("deleting_changes", deleting_changes())
deconvnet_beats = ("deconvnet" in METHODS and all(
    area[kind]["deconvnet"] < area[kind]["random map"] - TIE_MARGIN
    for kind in ("deletion to 0", "ROAD")))
lesson.record("deconvnet_comment",
              "The deconvnet's map, a grid in which the cat cannot be made out (Figure 1"
              + ("; without max-pooling switches, which this model lacks, it does not depend on "
                 "the photo at all: lesson 07" if not any(isinstance(m, torch.nn.MaxPool2d)
                                                          for m in model.modules()) else "")
              + f"), deletes better "
              f"than the random map at deletion to 0 ({area['deletion to 0']['deconvnet']:.3f} "
              f"against {area['deletion to 0']['random map']:.3f}) and under ROAD "
              f"({area['ROAD']['deconvnet']:.3f} against {area['ROAD']['random map']:.3f}). "
              "That is a point against these two tests rather than for the deconvnet: such a "
              "map can beat the random map (one draw), so on this photo beating it "
              "does not show that a map found what the score depends on. (Why the grid does "
              "better is not tested here; one guess is that a regular grid of changed pixels "
              "damages the photo faster than random specks.)" if deconvnet_beats else "")
gradcam_curve = deletion[names.index("Grad-CAM")]
peak = int(gradcam_curve.argmax())
lesson.record("gradcam_rise",
              f", and Grad-CAM's curve even rises, to p = {gradcam_curve[peak].item():.2f} with "
              f"{fractions[peak].item():.0%} of the pixels grey" if peak > 0 else "")
lesson.record("deletion_centre", area["deletion to 0"]["centre map"], fmt="{:.3f}")
lesson.record("blurred_p", insertion[0, 0].item(), fmt="{:.2f}")
dips = int((insertion[:, 1] < insertion[:, 0]).sum())
lesson.record("insertion_dips", dips)
by_insertion = sorted(METHODS, key=insertion_auc.get, reverse=True)
lesson.record("insertion_tied", with_areas(insertion_auc, tied_area["insertion"]))
lesson.record("insertion_next", with_areas(insertion_auc, [
    n for n in by_insertion if n not in tied_area["insertion"]][:1]))
lesson.record("insertion_random", insertion_auc["random map"], fmt="{:.3f}")
beats_random_insertion = [n for n in by_insertion
                          if insertion_auc[n] > insertion_auc["random map"] + TIE_MARGIN]
lesson.record("beats_random_insertion", ", ".join(beats_random_insertion) or "none")
lesson.expect(deletion_auc["Grad-CAM"] > deletion_auc["random map"]
              and deletion_auc["centre map"] > deletion_auc["random map"],
              "Grad-CAM and the centre map delete to 0 worse than the random map",
              value=deletion_auc)
_ = lesson.expect(dips >= 1, "the first insertion step lowers the score for some maps",
                  value=dips)

# %% [markdown]
# Read each area against the random map's, not against zero. With one photo, one class and one
# draw of ROAD's noise, small differences mean little: a second draw of the noise moves the ROAD
# areas by up to {{ road_redraw }}. So areas within {{ tie_margin }} of the best are reported
# as tied, not ranked (0.01, or that movement rounded up to the next 0.01 where it is larger:
# a margin we chose, not a confidence interval: deletion to 0 or to a blur
# has no draw at all, and another photo, not measured here, may move the areas by more):
#
# - **Deletion to 0.** Tied at the top: {{ tied_zero }}; the next method is
#   {{ next_zero }}, and the random map {{ random_zero_auc }}. Better than the random map by
#   more than {{ tie_margin }}: {{ beats_random_zero }}. The random map is hard to beat here
#   (better by more than {{ tie_margin }} than {{ random_beats_zero }} of the {{ n_methods }} methods; with a blur,
#   {{ random_beats_blur }}; under ROAD, {{ random_beats_road }}), and why is not tested on this
#   page. Grad-CAM ({{ zero_gradcam }}) and the centre map ({{ deletion_centre }}), which
#   delete whole regions, do worse than it{{ gradcam_rise }}.
# - **Deletion to a blur.** Tied at the top: {{ tied_blur }} (random {{ random_blur_auc }}).
#   Better than the random map by more than {{ tie_margin }}: {{ beats_random_blur }}.
# - **ROAD.** Tied at the top: {{ tied_road }} (random {{ random_road_auc }}); Integrated
#   Gradients is at {{ road_ig }}. Better than the random map by more than {{ tie_margin }}:
#   {{ beats_random_road }}. The centre map scores {{ road_centre }}, better by more than
#   {{ tie_margin }} than {{ centre_beats_road }} of the {{ n_methods }} methods.
#   {{ deconvnet_comment }}
# - **What the way of deleting changes.** {{ deleting_changes }} A deletion score is a
#   statement about one way of removing pixels, and must be reported with it.
# - **Insertion.** The blurred photo already scores p = {{ blurred_p }}; putting back the first
#   1/{{ curve_steps }} of the pixels *lowers* the score for {{ insertion_dips }} of the
#   {{ n_every }} maps (why, this page does not test). At the top:
#   {{ insertion_tied }}; the next, {{ insertion_next }}, is more than {{ tie_margin }} behind.
#   The maps above the random map's {{ insertion_random }} by more than {{ tie_margin }} are
#   {{ beats_random_insertion }}.
#
# This is one photo and one class: a case study of how the baseline changes the verdict, not a
# ranking of the methods in general.

# %% [markdown]
# ## Localisation: the pointing game
#
# For the pointing game we need images where we *know* where the object is.
# `images.ground_truth_set` builds them from the two bundled photos with a seed: the cat and the
# cup cropped from their photos and pasted, without overlap, on a plain grey or a textured
# background, plus the cat|coffee composite. Each pasted object is small (its longer side
# {{ object_low }} to {{ object_high }} of the frame) and placed anywhere in the frame; in the
# composite each object fills its half. The image centre lies inside an object's box for
# {{ centre_inside }} of the {{ n_explanations }} explanations, and within the tolerance below
# of one for {{ centre_hits }}.
# Each object is explained for its own class (the model's most probable among
# `images.OBJECT_CLASSES`), so every image is asked twice, once per object, and every
# explanation of the set counts. The noise of a hit rate is estimated by resampling the
# explanations (a paired bootstrap, 2000 resamples): methods whose difference from the best
# lies within the 95% interval of the paired differences are reported as tied.

# %%
# 160-px images keep the CPU build short; a GPU affords more of them at the model's own size.
GPU_TRUTH = 32
N_TRUTH, TRUTH_SIZE = (10, 160) if ctx.device.type == "cpu" else (GPU_TRUTH, 224)
truth = images.ground_truth_set(N_TRUTH, size=TRUTH_SIZE,
                                generator=torch.Generator().manual_seed(ctx.seed))
lesson.record("object_low", images.OBJECT_SIZE[0], fmt="{:.0%}")
lesson.record("object_high", images.OBJECT_SIZE[1], fmt="{:.0%}")
hits = {name: [] for name in EVERY}
inside = {name: [] for name in EVERY}  # the same maxima with no tolerance: inside the box?
peaks = {name: [] for name in EVERY}  # (column, row) of each map's maximum, in item order
# Every method runs once on a batch: the wide composite alone, then all square images.
for group in ([truth[0]], truth[1:]):
    xs = torch.cat([images.prepare(item.image, ctx.preprocess, size=item.image.size[::-1])
                    for item in group]).to(ctx.device)
    batch, classes, boxes = [], [], []
    for i, item in enumerate(group):
        for obj, box in item.boxes.items():
            batch.append(i)
            # the object's most probable class; a model without any of them: its top class
            classes.append(ctx.most_probable(images.OBJECT_CLASSES[obj], xs[i:i + 1]))
            boxes.append(box)
        print(f"{item.background:>8} {item.image.size}: " + ", ".join(
            f"{o} as {ctx.labels[c]!r}" for o, c in zip(item.boxes, classes[-len(item.boxes):])))
    pairs = xs[torch.tensor(batch, device=xs.device)]  # each image once per object
    for name, method in EVERY.items():
        ranked = ranking(name, method(model, pairs, torch.tensor(classes)))
        hits[name] += evaluate.pointing_game(ranked, boxes, tolerance=15).tolist()
        inside[name] += evaluate.pointing_game(ranked, boxes, tolerance=0).tolist()
        peaks[name] += [(int(c), int(r)) for r, c in evaluate.peak_location(ranked)]
explanations = len(hits["gradient"])
cam_grid = tuple(convlens.feature_maps(model, xs[:1], layer).shape[-2:])  # a square image
hit_table = torch.tensor([hits[name] for name in EVERY], dtype=torch.float64)  # [methods, N]
boot = evaluate.bootstrap_means(hit_table, resamples=2000, generator=seeded("cpu", 3))
low, high = boot.quantile(0.025, dim=0), boot.quantile(0.975, dim=0)
pointing = {name: hit_table[i].mean().item() for i, name in enumerate(EVERY)}
pointing_interval = {name: (low[i].item(), high[i].item()) for i, name in enumerate(EVERY)}
for name in EVERY:
    lo, hi = pointing_interval[name]
    print(f"{name:>21}: {int(sum(hits[name])):2d} of {explanations} hits ({pointing[name]:.0%}, "
          f"95% interval {lo:.0%}-{hi:.0%}), {int(sum(inside[name])):2d} inside the box")
print(f"Grad-CAM's map at {TRUTH_SIZE} px: a {cam_grid[0]}x{cam_grid[1]} grid, upsampled")


def tied_with_best(table, boot, candidates, higher_is_better=True):
    """The best of ``candidates`` and those whose paired difference from it has a 95%
    bootstrap interval that contains 0."""
    names = list(table)
    sign = 1 if higher_is_better else -1
    best = max(candidates, key=lambda n: sign * table[n])
    tied = []
    for name in candidates:
        diff = boot[:, names.index(name)] - boot[:, names.index(best)]
        if name == best or (diff.quantile(0.025) <= 0 <= diff.quantile(0.975)):
            tied.append(name)
    return best, tied


best_pointing, pointing_tied = tied_with_best(pointing, boot, list(METHODS))
beats_centre = [name for name in METHODS
                if (boot[:, list(EVERY).index(name)]
                    - boot[:, list(EVERY).index("centre map")]).quantile(0.025) > 0]
print("best:", best_pointing, "| tied with it:", pointing_tied,
      "| above the centre map beyond noise:", beats_centre)
lesson.expect(0.2 <= pointing["centre map"] <= 0.8, "the centre of the image is often but not "
              "always on an object (the centre map hits 20-80% of the objects)",
              value=pointing["centre map"])
lesson.record("pointing_explanations", explanations)
lesson.record("pointing_images", len(truth))
pointing_top = [n for n in METHODS if pointing[n] == pointing[best_pointing]]
top_intervals = [f"{pointing_interval[n][0]:.0%} to {pointing_interval[n][1]:.0%}"
                 for n in pointing_top]
lesson.record("pointing_best_acc", pointing[best_pointing], fmt="{:.0%}")
lesson.record("pointing_best_hits", int(sum(hits[best_pointing])))
lesson.record("pointing_top", ", ".join(pointing_top[:-1]) + " and " + pointing_top[-1]
              + " alike" if len(pointing_top) > 1 else pointing_top[0] + " alone")
lesson.record("pointing_top_interval", top_intervals[0] if len(set(top_intervals)) == 1 else
              "; ".join(f"{t} for {n}" for n, t in zip(pointing_top, top_intervals)))
others_tied = [n for n in pointing_tied if n not in pointing_top]
lesson.record("pointing_tied_clause",
              f", and within the noise of it are also {lesson.and_list(others_tied)}: these "
              f"{len(pointing_tied)} methods are tied" if others_tied else
              ", and no other method is within the noise of it")
lesson.record("n_truth_pastes", N_TRUTH)
lesson.record("cam_grid", f"{cam_grid[0]}×{cam_grid[1]}")
lesson.record("truth_size", TRUTH_SIZE)
lesson.record("gradcam_inside", text_of({n: int(sum(v)) for n, v in inside.items()}, "Grad-CAM", "d"))
lesson.record("gradcam_hits", text_of({n: int(sum(v)) for n, v in hits.items()}, "Grad-CAM", "d"))
lesson.record("centre_inside", int(sum(inside["centre map"])))
lesson.record("centre_hits", int(sum(hits["centre map"])))
lesson.record("n_explanations", explanations)
lesson.record("beats_centre", ", ".join(beats_centre) or "no method")
lesson.record("one_hit", 1 / explanations, fmt="{:.0%}")
for key, name in [("centre", "centre map"), ("random", "random map"), ("gradcam", "Grad-CAM"),
                  ("guided", "guided backprop"), ("gradient", "gradient"),
                  ("occlusion", "occlusion"), ("smoothgrad", "SmoothGrad")]:
    lesson.record(f"pointing_{key}", text_of(pointing, name, ".0%"))
lesson.record("pointing_answer",
              (f"No single method: {lesson.and_list(pointing_tied)} are tied at the top of the pointing "
               if len(pointing_tied) > 1 else
               f"{best_pointing} alone is at the top of the pointing ")
              + f"game (best {pointing[best_pointing]:.0%})"
              + (f", and only {', '.join(beats_centre)} beat the centre map beyond the noise."
                 if beats_centre else ", and none beats the centre map beyond the noise.")
              + (f" Grad-CAM's hits are mostly maxima just outside the box ({sum(inside['Grad-CAM'])}"
                 f" of {explanations} inside, the centre map {sum(inside['centre map'])}), so it "
                 "says roughly where, not which pixels."
                 if "Grad-CAM" in METHODS and 2 * sum(inside["Grad-CAM"]) < sum(hits["Grad-CAM"])
                 else ""))
_ = lesson.expect("Grad-CAM" in METHODS and 2 * sum(inside["Grad-CAM"]) < sum(hits["Grad-CAM"]),
                  "most of Grad-CAM's hits lie outside the box and count only through the "
                  "tolerance", value=(sum(inside["Grad-CAM"]), sum(hits["Grad-CAM"])))

# %% [markdown]
# On {{ pointing_explanations }} explanations ({{ pointing_images }} images, two objects each)
# one hit is {{ one_hit }}. The highest hit rate, {{ pointing_best_acc }}
# ({{ pointing_best_hits }} of {{ pointing_explanations }}; 95% interval
# {{ pointing_top_interval }}), is reached by {{ pointing_top }}{{ pointing_tied_clause }}.
# Grad-CAM hits
# {{ pointing_gradcam }} (mostly through the tolerance, below), SmoothGrad {{ pointing_smoothgrad }}, occlusion
# {{ pointing_occlusion }}, the gradient {{ pointing_gradient }} and guided backprop
# {{ pointing_guided }}; the centre map {{ pointing_centre }} and the random map
# {{ pointing_random }}. Above the centre map by more than the noise: {{ beats_centre }}.
#
# Two limits of these numbers. First, the bootstrap treats the {{ pointing_explanations }}
# explanations as independent, but they show two objects only: one crop of the cat and one of
# the cup, pasted {{ n_truth_pastes }} times at other sizes and places, plus the composite
# made of the same two photos. The intervals measure how stable a hit rate is over placements
# of these two objects, not over objects in general. Second, the 15-pixel tolerance matters
# for the coarse maps: at {{ truth_size }} px Grad-CAM's map is a {{ cam_grid }} grid,
# upsampled, and only {{ gradcam_inside }} of its {{ gradcam_hits }} hits lie inside the box
# (the centre map: {{ centre_inside }}); the others are maxima just outside it (the printed "inside the box" column gives every
# method's count). The figure shows where two of the maps put their maximum.

# %%
shown_truth = truth[:9]  # the composite and (up to) eight square images, two rows of five units
first = 0
fig = plt.figure(figsize=(12, 5))
grid = fig.add_gridspec(2, 5)
cells = [grid[0, :2]] + [grid[r, c] for r, c in [(0, 2), (0, 3), (0, 4)] + [(1, c) for c in range(5)]]
for item, cell in zip(shown_truth, cells):
    ax = fig.add_subplot(cell)
    ax.imshow(np.asarray(item.image))
    width, height = item.image.size
    ax.plot((width - 1) / 2, (height - 1) / 2, "+", color="black", ms=8, mew=1.5)
    for index, ((x0, y0, x1, y1), colour) in enumerate(zip(item.boxes.values(),
                                                            ["tab:red", "tab:blue"])):
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   ec=colour, lw=1.5))
        for name, marker in [("Grad-CAM", "o"), ("guided backprop", "x")]:
            if name in peaks:
                px, py = peaks[name][first + index]
                ax.plot(px, py, marker, color=colour, ms=6, mew=1.5)
    first += len(item.boxes)
    ax.set_axis_off()
    ax.set_title(item.background, fontsize=8)
marked = "Grad-CAM (o) and of guided backprop (x)" if "guided backprop" in peaks else "Grad-CAM (o)"
lesson.show(fig, f"The first {len(shown_truth)} images of the ground-truth set with their boxes "
                 f"(cat red, cup blue), the maximum of {marked} for each object's class, and the "
                 "image centre (+), where the centre map points.")

# %% [markdown]
# ## A network whose evidence we know
#
# Every test so far measured agreement with a proxy: a box drawn around an object, or the
# effect of one way of removing pixels. On a pretrained network nothing better exists, since
# nobody knows which pixels really decided its answer. So the course also trains a network
# where we do know. `convlens.images.evidence_set` draws 64×64 images that each hold one small
# shape, a plus, a cross, a ring or a corner, anywhere on a cluttered background; the shape
# decides the class, and the clutter (discs, squares and single bars, drawn without regard to
# the class, never touching the shape) cannot. `evidence_net`, a small VGG-style network
# (a 7×7 convolution, then 3×3 convolutions, ReLUs and max-pooling; lesson 07 uses it for the
# deconvnet's switches), is trained on such images during the build. Below it classifies
# {{ ev_accuracy }} of {{ n_ev }} new images correctly.
#
# On these images the shape's square patch, a {{ ev_patch_share }} share of the pixels, is the
# only place that can tell the classes apart. A map of the class score may still give some
# weight to the clutter (it moves every class's score), but a map that points away from the
# patch, or puts no more of its mass on it than a uniform map would, is not showing what
# decided the class. Three
# measurements follow from that:
#
# - **pointing**: does the map's maximum lie on the patch (no tolerance)?
# - **evidence mass** (`evaluate.evidence_mass`): the share of the map's positive values
#   (of |value| for the gradient family) that lies on the patch;
# - **deletion to 0 and ROAD**: as above, averaged over the images. The evidence is small, so
#   the curves stop at {{ ev_up_to }} of the pixels, in {{ ev_steps }} steps of
#   {{ ev_step_share }} (about the patch's size); the number is the mean class probability over
#   that range (`evaluate.auc` divided by the range), lower is better.
#
# Every number comes with a 95% bootstrap interval over the images, and methods within the
# noise of the best are marked as tied.

# %%
evidence = lesson.load_model("evidence_net")
N_EV, EV_WINDOW, EV_STRIDE, EV_STEPS, EV_UP_TO = 32, 16, 8, 8, 0.25
ev_pixels, ev_labels, ev_truth = images.evidence_set(
    N_EV, generator=torch.Generator().manual_seed(ctx.seed + 100))
ev_x = convlens.evidence_net.normalize(ev_pixels).to(ctx.device)
ev_labels = ev_labels.to(ctx.device)
with torch.no_grad():
    ev_accuracy = (evidence.model(ev_x).argmax(1) == ev_labels).float().mean().item()
EV_METHODS, _ = methods_for(evidence.model, evidence.layers["last_spatial"], EV_WINDOW, EV_STRIDE)
EV_EVERY = {**EV_METHODS, "random map": random_map, "centre map": centre_map}
start = time.perf_counter()
ev_maps = {name: method(evidence.model, ev_x, ev_labels) for name, method in EV_EVERY.items()}
ev_ranks = {name: ranking(name, a) for name, a in ev_maps.items()}
print(f"{len(EV_EVERY)} maps of {N_EV} images: {time.perf_counter() - start:.1f} s")
ev_boxes = []
for mask in ev_truth.numpy():
    rows, cols = np.nonzero(mask)
    ev_boxes.append((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
print(f"evidence_net: {ev_accuracy:.0%} of {N_EV} new images classified correctly; the "
      f"deciding patch is {ev_truth.float().mean().item():.1%} of the pixels")
lesson.record("ev_accuracy", ev_accuracy, fmt="{:.0%}")
lesson.record("n_ev", N_EV)
lesson.record("ev_patch_share", ev_truth.float().mean().item(), fmt="{:.1%}")
lesson.expect(ev_accuracy >= 0.9, "evidence_net classifies at least 90% of new images correctly",
              value=ev_accuracy)

# per image: [methods, images] for every measurement
ev_names = list(EV_EVERY)
ev_scores = {
    "pointing": torch.stack([evaluate.pointing_game(ev_ranks[n], ev_boxes, tolerance=0).double()
                             for n in ev_names]),
    "evidence mass": torch.stack([evaluate.evidence_mass(ev_ranks[n], ev_truth.to(ev_x.device))
                                  .cpu() for n in ev_names]),
}
stacked = torch.cat([ev_ranks[n] for n in ev_names])
batch_x = ev_x.repeat(len(ev_names), 1, 1, 1)
batch_t = ev_labels.repeat(len(ev_names))
start = time.perf_counter()
ev_fractions, ev_curve = evaluate.deletion_curve(evidence.model, batch_x, batch_t, stacked,
                                                 steps=EV_STEPS, batch_size=256, up_to=EV_UP_TO)
_, ev_road = evaluate.road_curve(evidence.model, batch_x, batch_t, stacked, steps=EV_STEPS,
                                 noise=ROAD_NOISE, generator=seeded("cpu", 4), batch_size=256,
                                 up_to=EV_UP_TO)
for metric, curve in (("deletion to 0", ev_curve), ("ROAD", ev_road)):
    # the mean probability over the first quarter of the pixels: the area divided by 1/4
    ev_scores[metric] = (evaluate.auc(ev_fractions, curve) / ev_fractions[-1]).view(
        len(ev_names), N_EV).cpu()
lesson.record("ev_steps", EV_STEPS)
lesson.record("ev_up_to", EV_UP_TO, fmt="{:.0%}")
lesson.record("ev_step_share", EV_UP_TO / EV_STEPS, fmt="{:.1%}")
print(f"deletion and ROAD curves of {len(ev_names)} x {N_EV} maps: "
      f"{time.perf_counter() - start:.1f} s")
HIGHER = {"pointing": True, "evidence mass": True, "deletion to 0": False, "ROAD": False}
ev_mean, ev_interval, ev_tied = {}, {}, {}
for i_metric, (metric, values) in enumerate(ev_scores.items()):
    b = evaluate.bootstrap_means(values.double(), resamples=2000,
                                 generator=seeded("cpu", 10 + i_metric))
    ev_mean[metric] = dict(zip(ev_names, values.double().nanmean(dim=1).tolist()))
    ev_interval[metric] = dict(zip(ev_names, zip(b.quantile(0.025, 0).tolist(),
                                                 b.quantile(0.975, 0).tolist())))
    _, ev_tied[metric] = tied_with_best(ev_mean[metric], b, list(EV_METHODS), HIGHER[metric])
    print(f"{metric}: best (with ties) {ev_tied[metric]}")


def with_interval(metric, name, fmt):
    low, high = ev_interval[metric][name]
    star = " *" if name in ev_tied[metric] else ""
    return (f"{format(ev_mean[metric][name], fmt)} "
            f"({format(low, fmt)}–{format(high, fmt)}){star}")


ev_rows = [[name] + [with_interval(m, name, ".0%" if m in ("pointing", "evidence mass")
                                   else ".3f") for m in ev_scores] for name in ev_names]
ev_summary = plot.table(["method", "pointing ↑", "evidence mass ↑", "deletion to 0 ↓", "ROAD ↓"],
                        ev_rows)
if get_ipython() is None:
    print(ev_summary)

# %%
ev_show = [0, 1, 2, 3]  # one image of each class
ev_panels = [n for n in EV_METHODS]
fig, axes = plt.subplots(len(ev_show), len(ev_panels) + 1,
                         figsize=(1.25 * (len(ev_panels) + 1), 1.35 * len(ev_show)))
for row, i in enumerate(ev_show):
    axes[row, 0].imshow(ev_pixels[i].permute(1, 2, 0).numpy())
    x0, y0, x1, y1 = ev_boxes[i]
    axes[row, 0].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                         ec="red", lw=1.2))
    axes[row, 0].set_ylabel(evidence.labels[int(ev_labels[i])], fontsize=8)
    for col, name in enumerate(ev_panels, start=1):
        draw(axes[row, col], name, ev_maps[name][i:i + 1], ev_pixels[i].permute(1, 2, 0).numpy(),
             name if row == 0 else None)
for ax in axes[:, 0]:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
lesson.show(fig, "evidence_net: one image of each class (the deciding patch outlined in red) "
                 "and every method's map for the image's class, drawn as in the first figure.",
            model="evidence_net")

# %% [markdown]
# The table gives the mean over the {{ n_ev }} images with its 95% bootstrap interval; a star
# marks the best method and those tied with it (their difference from the best is within
# the interval of the paired differences). What the known answer says:
#
# - **Pointing.** {{ ev_sentence_pointing }} The random map lands on the patch
#   {{ ev_random_pointing }} of the time and the centre map {{ ev_centre_pointing }}.
# - **Evidence mass.** {{ ev_sentence_mass }} The best puts {{ ev_best_mass }} of its mass on a
#   patch that covers {{ ev_patch_share }} of the image; the plain gradient puts
#   {{ ev_gradient_mass }} there, SmoothGrad {{ ev_smoothgrad_mass }}.
# - **Deletion to 0.** {{ ev_sentence_zero }}
# - **ROAD.** {{ ev_sentence_road }}
#
# Here the deletion tests themselves can be checked: a method that puts its mass on the patch
# should delete well. Over the methods, the rank correlation between evidence mass and the
# deletion area is {{ ev_mass_vs_zero }} for deletion to 0 and {{ ev_mass_vs_road }} for ROAD
# (−1: the order of the methods by evidence mass is exactly their order by deletion).
# ROAD orders the methods much as the known evidence does. Deletion to 0 cannot tell them
# apart on these images (all {{ n_ev_methods }} tied), so its correlation says little; which
# property of ROAD makes the difference is not tested here.

# %%
def spearman_over_methods(a, b):
    return spearmanr([a[n] for n in EV_METHODS], [b[n] for n in EV_METHODS])[0]


ev_mass_vs_zero = spearman_over_methods(ev_mean["evidence mass"], ev_mean["deletion to 0"])
ev_mass_vs_road = spearman_over_methods(ev_mean["evidence mass"], ev_mean["ROAD"])
print(f"rank correlation over methods: evidence mass vs deletion to 0 {ev_mass_vs_zero:.2f}, "
      f"vs ROAD {ev_mass_vs_road:.2f}")
lesson.record("ev_mass_vs_zero", ev_mass_vs_zero, fmt="{:.2f}")
lesson.record("ev_mass_vs_road", ev_mass_vs_road, fmt="{:.2f}")
def tie_sentence(metric):
    """Who is best on one measurement, with the methods tied with it."""
    tied = ev_tied[metric]
    if len(tied) == len(EV_METHODS):
        return "No method is told apart from the best: on these images the test cannot rank them."
    if len(tied) == 1:
        return f"{tied[0]} is best, beyond the noise."
    return f"Tied at the top: {', '.join(tied)}."


for key, metric in [("pointing", "pointing"), ("mass", "evidence mass"),
                    ("zero", "deletion to 0"), ("road", "ROAD")]:
    lesson.record(f"ev_tied_{key}", ", ".join(ev_tied[metric]))
    lesson.record(f"ev_sentence_{key}", tie_sentence(metric))
zero_all_tied = len(ev_tied["deletion to 0"]) == len(EV_METHODS)
lesson.record("n_ev_methods", len(EV_METHODS))
best_mass = max(EV_METHODS, key=ev_mean["evidence mass"].get)
lesson.record("ev_best_mass", ev_mean["evidence mass"][best_mass], fmt="{:.0%}")
lesson.record("ev_random_pointing", ev_mean["pointing"]["random map"], fmt="{:.0%}")
lesson.record("ev_centre_pointing", ev_mean["pointing"]["centre map"], fmt="{:.0%}")
lesson.record("ev_gradient_mass", ev_mean["evidence mass"]["gradient"], fmt="{:.0%}")
lesson.record("ev_smoothgrad_mass", ev_mean["evidence mass"]["SmoothGrad"], fmt="{:.0%}")
lesson.expect(ev_mean["evidence mass"][best_mass] > 3 * ev_truth.float().mean().item(),
              "the best method puts more than three times the patch's share of its mass on it",
              value=ev_mean["evidence mass"])
_ = lesson.expect(ev_mass_vs_road < -0.6 and zero_all_tied,
                  "ROAD orders the methods much as the evidence mass does; deletion to 0 ties "
                  "them all", value=(ev_mass_vs_road, ev_tied["deletion to 0"]))

# %% [markdown]
# ### Randomisation on the known-answer network
#
# The same cascade, on {{ ev_random_images }} of the images: the classifier, then each
# convolution from the top down.

# %%
EV_RANDOM_IMAGES = 4
ev_steps = [[name] for name in evaluate.layers_top_down(evidence.model, ev_x)]
ev_step_labels = [s[0] for s in ev_steps]
ev_randomised = {name: evaluate.randomization_similarity(
    evidence.model, ev_x[:EV_RANDOM_IMAGES], ev_labels[:EV_RANDOM_IMAGES], method,
    order="cascading", layers=ev_steps, seed=ctx.seed,
    reference=ev_maps[name][:EV_RANDOM_IMAGES]) for name, method in EV_METHODS.items()}
ev_rho = {name: r.spearman_abs.nanmean(dim=1).tolist() for name, r in ev_randomised.items()}
print(f"{'Spearman |map|':>21}: " + "  ".join(f"{label:>11}" for label in ev_step_labels))
for name, values in ev_rho.items():
    print(f"{name:>21}: " + "  ".join(f"{v:11.2f}" for v in values))
lesson.record("ev_random_images", EV_RANDOM_IMAGES)
first_step = {name: values[0] for name, values in ev_rho.items()}
least_changed = sorted(EV_METHODS, key=first_step.get, reverse=True)[:2]
least_changed_course = sorted(METHODS, key=rho_top.get, reverse=True)[:2]
lesson.record("ev_least_changed", " and ".join(least_changed))
for key, name in [("guided", "guided backprop"), ("deconvnet", "deconvnet"),
                  ("gradient", "gradient"), ("gradcam", "Grad-CAM")]:
    lesson.record(f"ev_rho_top_{key}", text_of(first_step, name, ".2f"))
for key, name in [("gxi", "gradient × input"), ("ig", "Integrated Gradients"),
                  ("gradcam", "Grad-CAM")]:
    lesson.record(f"ev_rho_last_{key}", text_of({n: v[-1] for n, v in ev_rho.items()}, name,
                                                ".2f"))
third = sorted(EV_METHODS, key=first_step.get, reverse=True)[2]

moved = {n: first_step[n] - rho_top[n] for n in EV_METHODS if n in METHODS}  # course → here
flip, rise = min(moved, key=moved.get), max(moved, key=moved.get)
for key, n in [("ev_flip", flip), ("ev_rise", rise)]:
    lesson.record(key, f"{n} ({rho_top[n]:.2f} → {first_step[n]:.2f})")
lesson.record("ev_flip_kind", ", from unchanged to changed"
              if rho_top[flip] > 0.8 and first_step[flip] < 0.6 else "")
lesson.record("ev_gradcam_falls", "" if flip == "Grad-CAM" else
              f"; Grad-CAM {'falls too' if moved['Grad-CAM'] < 0 else 'rises'} "
              f"({rho_top['Grad-CAM']:.2f} → {first_step['Grad-CAM']:.2f})")
lesson.record("ev_third", third)
course_last, ev_gradcam_last = rho_step["Grad-CAM"][-1], ev_rho["Grad-CAM"][-1]
lesson.record("gradcam_last_compare",
              f"Grad-CAM's final ρ is {course_last:.2f} on {ctx.name} and {ev_gradcam_last:.2f} on "
              "`evidence_net`, each one draw of a coarse map, which this page does not read as "
              "a lasting tie or its absence.")
lesson.record("ev_third_rho", first_step[third], fmt="{:.2f}")
lesson.expect(set(least_changed) == {"guided backprop", "deconvnet"}
              and set(least_changed_course) == {"guided backprop", "deconvnet"}
              and max(first_step.values()) < 0.8
              and first_step[third] > min(first_step[n] for n in least_changed) - 0.1,
              "on both networks guided backprop and the deconvnet have the two highest rho after "
              "the classifier step; on evidence_net no map reaches 0.8 and the third is within "
              "0.1 of them", value=(first_step, rho_top))
lesson.record("gradcam_keep_note",
              f"After the classifier step Grad-CAM's ρ is {rho_top['Grad-CAM']:.2f} on the course "
              f"model and {first_step['Grad-CAM']:.2f} here; why they differ is not tested on this "
              "page (on both networks its channel weights are gradients through the randomised "
              "classifier)." if rho_top["Grad-CAM"] > 0.3 and first_step["Grad-CAM"] < 0.2
              else "Grad-CAM changes at this step on both networks (ρ = "
              f"{rho_top['Grad-CAM']:.2f} and {first_step['Grad-CAM']:.2f}): on both its channel "
              "weights are gradients through the randomised classifier."
              if max(rho_top["Grad-CAM"], first_step["Grad-CAM"]) < 0.3 else
              f"Grad-CAM keeps ρ = {rho_top['Grad-CAM']:.2f} on the course model and "
              f"{first_step['Grad-CAM']:.2f} here.")
_ = lesson.expect(first_step["Grad-CAM"] < 0.2 and moved[rise] > 0
                  and min(ev_rho["gradient × input"][-1], ev_rho["Integrated Gradients"][-1]) > 0.25
                  and abs(ev_rho["Grad-CAM"][-1]) < 0.1,
                  "Grad-CAM changes at the classifier step on evidence_net; one map rises; with "
                  "every layer random, "
                  "evidence_net's gradient x input and IG keep rho > 0.25, its Grad-CAM about 0",
                  value=(first_step, {n: v[-1] for n, v in ev_rho.items()}))

# %% [markdown]
# The order is not the course model's. With the classifier randomised, the two highest ρ are
# again those of {{ ev_least_changed }} (ρ = {{ ev_rho_top_guided }} for guided backprop,
# {{ ev_rho_top_deconvnet }} for the deconvnet), but neither reaches the 0.8 we call
# unchanged, and {{ ev_third }} follows close behind at {{ ev_third_rho }}, on
# {{ ev_random_images }} images and one random draw. The gradient keeps
# {{ ev_rho_top_gradient }}; this classifier has only four outputs, so a random replacement
# is a different mixture of the same 64 features, which may be why these maps keep part of
# their picture (a guess, not tested here). Against the course model (ρ there → here),
# {{ ev_flip }} falls most{{ ev_flip_kind }}{{ ev_gradcam_falls }}, and {{ ev_rise }} rises
# most. {{ gradcam_keep_note }} Over the methods, the two networks' orders at this step have
# a rank correlation of {{ agree_models_sanity }} (the table at the end of the page).

# %% [markdown]
# ## Two tables
#
# The main numbers above in one place (deletion to a blur, insertion and SSIM are in the
# outputs and figures above). First the course model, {{ model_name }}: deletion to 0
# and ROAD on the one photo (no interval), the pointing game over its
# {{ pointing_explanations }} usable explanations (a star: tied with the best), and Spearman's
# ρ of |map| after each of the {{ cascade_steps }} steps of the cascade (near 0: the map
# changed with the weights, as it should; near 1: it did not), again on the one photo. Time
# is the wall time of one map of one image on this machine, measured above.

# %%
lesson.record("cascade_steps", len(steps))
lesson.record("model_name", ctx.name)


def star(name, tied):
    return " *" if name in tied else ""


HEADERS = (["method", "ranked by", "deletion to 0 ↓", "ROAD ↓", "pointing ↑"]
           + [f"ρ after {label}" for label in step_labels] + ["seconds (one run)"])
rows = [[name, RANKED_BY[name], f"{area['deletion to 0'][name]:.3f}", f"{area['ROAD'][name]:.3f}",
         f"{pointing[name]:.0%}{star(name, pointing_tied)}"]
        + [f"{v:.2f}" for v in rho_step[name]] + [f"{seconds[name]:.2f} s"] for name in EVERY]
table = plot.table(HEADERS, rows)
if get_ipython() is None:  # plain Python: print what a notebook renders
    print(table)

# %% [markdown]
# Then `evidence_net`, on {{ n_ev }} images with a known answer: means with their 95%
# intervals as above (a star: tied with the best), and ρ after each step of its cascade (the
# mean over {{ ev_random_images }} images; the random and centre maps ignore the network, so
# they are not randomised: their map is the same at every step).

# %%
EV_HEADERS = (["method", "pointing ↑", "evidence mass ↑", "deletion to 0 ↓", "ROAD ↓"]
              + [f"ρ after {label}" for label in ev_step_labels])
ev_table_rows = [row + ([f"{v:.2f}" for v in ev_rho[row[0]]] if row[0] in ev_rho
                        else ["n/a (same map)"] * len(ev_step_labels)) for row in ev_rows]
ev_table = plot.table(EV_HEADERS, ev_table_rows)
if get_ipython() is None:
    print(ev_table)

# %% [markdown]
# ## Where the two networks agree
#
# For each measurement that both tables hold, the rank correlation over the methods between
# the two networks (1: the same order; 0: unrelated), and the methods at the top on each, with
# their values: on {{ model_name }} the areas within {{ tie_margin }} of the best and the
# pointing game's bootstrap ties, on `evidence_net` its bootstrap ties. The randomisation step
# has no tie rule (one photo, or {{ ev_random_images }} images, and one random draw): its row
# lists the three lowest ρ, the maps that changed most. The two sides were not measured
# alike (pointing with a tolerance on one and none on the other; deletion over one photo or
# many images), so a low correlation may come from the protocol as much as from the network.

# %%
common = [n for n in METHODS if n in EV_METHODS]
shared = {
    "deletion to 0": (area["deletion to 0"], ev_mean["deletion to 0"],
                      tied_area["deletion to 0"], ev_tied["deletion to 0"], ".3f", False),
    "ROAD": (area["ROAD"], ev_mean["ROAD"], tied_area["ROAD"], ev_tied["ROAD"], ".3f", False),
    "pointing": (pointing, ev_mean["pointing"], pointing_tied, ev_tied["pointing"], ".0%", True),
    f"ρ after {step_labels[0]}": (
        {n: rho_step[n][0] for n in METHODS}, {n: ev_rho[n][0] for n in EV_METHODS},
        sorted(common, key=lambda n: rho_step[n][0])[:3],
        sorted(common, key=lambda n: ev_rho[n][0])[:3], ".2f", False),
}


def top_cell(table, names, fmt, tie_rule, higher):
    """The methods at the top of one column, best first, with their values."""
    names = sorted((n for n in names if n in common), key=table.get, reverse=higher)
    head = ("lowest three: " if not tie_rule else "best: " if len(names) == 1
            else f"{len(names)} of {len(common)} tied: ")
    return head + ", ".join(f"{n} ({format(table[n], fmt)})" for n in names)


agreement_rows, agreement, p_values, noise_level = [], {}, {}, []
for metric, (pre, known, top_pre, top_known, fmt, higher) in shared.items():
    rho, p = spearmanr([pre[n] for n in common], [known[n] for n in common])
    agreement[metric], p_values[metric] = rho, p
    tie_rule = not metric.startswith("ρ")
    agreement_rows.append([metric, f"{rho:.2f} (p = {p:.2f})",
                           top_cell(pre, top_pre, fmt, tie_rule, higher),
                           top_cell(known, top_known, fmt, tie_rule, higher)])
    for network, top in ((ctx.name, top_pre), ("evidence_net", top_known)):
        tied_common = [n for n in top if n in common]
        if tie_rule and len(tied_common) > len(common) // 2:
            noise_level.append(f"{metric} ({len(tied_common)} of {len(common)} tied on "
                               f"{network})")
_ = plot.table(["measurement", "rank correlation", f"at the top on {ctx.name}",
                "at the top on evidence_net"], agreement_rows)
if get_ipython() is None:
    print(agreement_rows)
print("orders mostly within the noise:", noise_level)
for key, metric in [("zero", "deletion to 0"), ("road", "ROAD"), ("pointing", "pointing"),
                    ("sanity", f"ρ after {step_labels[0]}")]:
    lesson.record(f"agree_models_{key}", agreement[metric], fmt="{:.2f}")
beyond_chance = [metric for metric in shared if p_values[metric] < 0.05]
lesson.record("agree_beyond_chance", ", ".join(beyond_chance) or "none of them")
lesson.record("n_common", len(common))
ev_zero = ev_mean["deletion to 0"]
lesson.record("ev_random_zero", ev_zero["random map"], fmt="{:.3f}")
lesson.record("ev_random_zero_place",
              "worse than every method" if all(ev_zero[n] < ev_zero["random map"] for n in EV_METHODS)
              else f"better than {sum(ev_zero[n] > ev_zero['random map'] for n in EV_METHODS)} "
              f"of its {len(EV_METHODS)} methods")
lesson.record("agree_noise", "; ".join(noise_level) or "none")
zero_noise = len([n for n in ev_tied["deletion to 0"] if n in common]) == len(common)
lesson.record("agree_comment",
              "So deletion to 0's correlation, although beyond chance, is no evidence that its "
              "ranking carries over: on evidence_net no method's deletion to 0 is told apart "
              "from the best, gradient × input and Integrated Gradients included."
              if "deletion to 0" in beyond_chance and zero_noise else "")
not_beyond = [metric for metric in shared if metric not in beyond_chance]
_ = lesson.record("agree_not_beyond", (f"The orders of {lesson.and_list(not_beyond)} are not alike beyond "
                                       "chance, and two" if not_beyond else "Two"))

# %% [markdown]
# With {{ n_common }} methods, a rank correlation has to be large before it is more than
# chance (p < 0.05 in the table). The correlations are {{ agree_models_sanity }} for the first
# randomisation step, {{ agree_models_zero }} for deletion to 0, {{ agree_models_road }} for
# ROAD and {{ agree_models_pointing }} for the pointing game; beyond chance:
# {{ agree_beyond_chance }}. Where most methods are tied on one network, the correlation is
# built on an order within the noise: {{ agree_noise }}. {{ agree_comment }}
# {{ agree_not_beyond }} networks are too few to tell how far a ranking of methods carries over to another; on the pretrained model it also rests on
# a proxy. What the two networks share is coarser: after the classifier step, guided backprop
# and the deconvnet stay among the most similar maps on both ({{ rho_top_guided }} and
# {{ rho_top_deconvnet }} on {{ model_name }}, {{ ev_rho_top_guided }} and
# {{ ev_rho_top_deconvnet }} on `evidence_net`, where {{ ev_third }}, at {{ ev_third_rho }},
# is close behind on {{ ev_random_images }} images and one draw).
#
# ## Which method for which question
#
# Each answer is read off the tables, for these networks and these images, with ties kept as
# ties; on another model the build derives them again from its own measurements (and flags
# the sentences that no longer hold).
#
# - *"Which pixels does this score depend on: change them and the score changes?"* Measure it
#   with ROAD rather than deletion to a constant, on the evidence of one small network: on the
#   network with a known answer, ROAD's order of the methods follows the evidence mass (rank
#   correlation {{ ev_mass_vs_road }}), while deletion to 0 ties all {{ n_ev_methods }}
#   methods there and gives no order to compare.{{ road_centre_reading }}
#   That is agreement with a known answer on one network, not a proof that ROAD measures
#   dependence on every model. The best by ROAD there:
#   {{ ev_tied_road }}. Deletion to 0 uses the baseline of gradient × input and Integrated
#   Gradients, which can favour them; whatever the test, state how pixels were removed next to
#   the number. Check
#   Integrated Gradients' completeness gap before reading its values as shares of the score
#   ({{ ig_gap }} off at {{ ig_steps }} steps here).
# - *"Where in the image is the evidence for this class?"* On the pretrained model:
#   {{ pointing_answer }} On the network with a known answer the most mass on the evidence
#   goes to {{ ev_tied_mass }}, and the pointing game's best are {{ ev_tied_pointing }}.
# - *"Is the picture about what this network learnt?"* {{ sanity_answer }} With every layer
#   random, gradient × input and Integrated Gradients keep part of their picture on both
#   networks (ρ = {{ rho_last_gxi }} and {{ rho_last_ig }} on {{ model_name }},
#   {{ ev_rho_last_gxi }} and {{ ev_rho_last_ig }} on `evidence_net`). {{ gradcam_last_compare }}
# - *"What can I afford?"* Count the passes per image: one backward pass for the gradient,
#   gradient × input, the deconvnet, guided backprop and Grad-CAM; one per sample for
#   SmoothGrad ({{ smoothgrad_samples }} here) and per point of the path for Integrated
#   Gradients ({{ ig_points }}); one forward pass per window for occlusion ({{ occlusion_windows }}).
#   The table's last column is one timed run of each on the machine that built this page, a
#   rough guide that other load on the machine can move.
#
# No method wins every column. Together the tests say what each map is evidence *of*: the
# deletion curves test the ranking of pixels under one way of removing them, the pointing game
# the location of the maximum, the evidence mass the whole map against a known answer, and
# randomisation the dependence on the weights; a method can pass one and fail another.

# %%
lesson.record("smoothgrad_samples", SMOOTHGRAD_SAMPLES)
_ = lesson.record("ig_points", IG_STEPS + 1)  # the trapezoid rule evaluates both ends of every interval

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: which way is better?</p>
# <p>For deletion a <em>lower</em> area is better (the score should collapse), for insertion a
# <em>higher</em> one. Tools and papers report both as "AUC"; check which curve a number comes
# from before comparing.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: what "removed" means</p>
# <p>Zero in the normalised input space is the dataset's mean colour, not black. Black is
# <code>preprocess.normalize(torch.zeros(3, 1, 1))</code>; a blurred copy is another choice
# (<code>baseline=evaluate.gaussian_blur(x)</code>), ROAD's imputation
# (<code>evaluate.road_curve</code>) a third. Each choice gives different curves and can
# reorder the methods, and a constant that is also a method's own baseline (zero, for
# Integrated Gradients and gradient × input) can favour that method: state the choice next to
# the number.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: a ranking within the noise</p>
# <p>With a few dozen images, one or two hits of the pointing game, or a few hundredths of a
# deletion area, can be noise. Resample the images (<code>evaluate.bootstrap_means</code>) and
# report the methods whose difference from the best lies within the interval as tied, not as
# a winner and its runners-up.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: no baselines</p>
# <p>A random ranking can delete well: on the photo its deletion-to-0 area,
# {{ random_zero_auc }}, is better by more than {{ tie_margin }} than that of {{ random_beats_zero }} of the
# {{ n_methods }} methods (on <code>evidence_net</code> it is {{ ev_random_zero }},
# {{ ev_random_zero_place }}). On photos a centre map points well because
# photographers centre their subject (Zhang et al.'s centre baseline already scores high on
# PASCAL VOC); on this page's pasted objects only {{ centre_inside }} of its
# {{ centre_hits }} hits lie inside a box. A method's number means something only next to
# theirs.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: a similarity of 1 is not a pass</p>
# <p>In the randomisation test high similarity is the <em>failure</em>: a map that does not
# change when the weights are destroyed is not explaining them. The random and centre maps,
# which ignore the network, score a perfect 1.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: randomising the model you use</p>
# <p><code>reset_parameters()</code> works in place. <code>evaluate.randomization_similarity</code>
# randomises a deep copy; doing it by hand on <code>ctx.model</code> silently breaks every later
# cell of the notebook.</p></div>
#
# ## Exercises
#
# 1. Run the deletion curves with black (`preprocess.normalize(torch.zeros(3, 1, 1))`) as the
#    baseline, and ROAD with `order="least"` (least important pixels first: a higher area is
#    better). Which methods change rank?
# 2. Raise `IG_STEPS` until the completeness gap is below {{ ig_tolerance }}. How many steps does that take on
#    this photo, and do the deletion and insertion areas of Integrated Gradients change?
# 3. Repeat the randomisation with `order="independent"`: re-initialise one block at a time,
#    the others trained. Which block does guided backprop depend on?
# 4. Make the pointing game harder: tolerance 0, and only the textured backgrounds. How does
#    the gap between the centre map and the methods change?
# 5. Run the lesson on another model (`nox -s site -- --model resnet18` where its weights are
#    available, or `--model evidence_net`) and compare the table. Which sentences of this page
#    does the build flag?
# 6. Add a fifth class to `evidence_set` that differs from "ring" only inside the ring (a dot
#    in the hollow), retrain `evidence_net`, and measure whether the evidence mass of each
#    method moves to the inside.
