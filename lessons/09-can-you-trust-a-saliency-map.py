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
# **Summary.** Every method side by side, measured: model randomisation, deletion and insertion, the pointing game.
#
# **The question.** "Eight lessons gave me nine ways to draw what the network looks at. Which
# of these maps should I believe, and for which question?"
#
# A saliency map is a claim about the network: *these pixels are why it said "cat"*. A claim
# can be tested. This lesson runs three tests from the literature on every method of the
# course, on the course model, and puts the results in one table.
#
# - **Sanity** (Adebayo et al. 2018). If the map explains the *trained* network, destroying
#   the training must change it. Re-initialise the layers from the output down, one block
#   after another (*cascading randomisation*), and measure how similar each map stays to the
#   trained one. A map that does not change is not explaining what the network learnt.
# - **Faithfulness** (Petsiuk et al. 2018). If the map ranks the pixels by importance, removing
#   the top-ranked pixels first should make the class probability collapse (*deletion*), and
#   putting them back first into a blurred copy should restore it (*insertion*).
# - **Localisation** (Zhang et al. 2016). On images where we know where the object is, does the
#   map's maximum land on it (*pointing game*)?
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
# Attention by Excitation Backprop*, ECCV 2016 ([arXiv:1608.00507](https://arxiv.org/abs/1608.00507)).
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
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython import get_ipython

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


def seeded(device, offset=0):
    """A fresh generator: the same noise at every call (and so for every randomised model)."""
    return torch.Generator(device=device).manual_seed(ctx.seed + offset)


def occlusion_map(model, x, target):
    """Occlusion as a per-pixel map: each pixel gets the mean drop of the windows covering it."""
    # target=None: the drops of every class from the same passes, so an image that comes twice
    # in a row (the pointing game asks each image once per object) is occluded only once.
    distinct, which = torch.unique_consecutive(x.flatten(1), dim=0, return_inverse=True)
    every = convlens.occlusion(model, distinct.view(-1, *x.shape[1:]), None, window=WINDOW,
                               stride=STRIDE)  # [distinct images, classes, H', W']
    target = torch.as_tensor(target, device=x.device).expand(x.shape[0])
    drops = every[which, target]  # [N, H', W']
    box = torch.ones(1, 1, WINDOW, WINDOW, dtype=x.dtype, device=x.device)
    total = F.conv_transpose2d(drops[:, None].to(x.dtype), box, stride=STRIDE)
    count = F.conv_transpose2d(torch.ones_like(total[:1, :, :drops.shape[1], :drops.shape[2]]),
                               box, stride=STRIDE)
    pixels = total / count
    return F.pad(pixels, (0, x.shape[-1] - pixels.shape[-1], 0, x.shape[-2] - pixels.shape[-2]))


METHODS = {
    "occlusion": occlusion_map,
    "gradient": convlens.gradient,
    "gradient × input": convlens.gradient_x_input,
    "SmoothGrad": lambda m, x, t: convlens.smoothgrad(m, x, t, samples=SMOOTHGRAD_SAMPLES,
                                                      generator=seeded(x.device)),
    "Integrated Gradients": lambda m, x, t: convlens.integrated_gradients(m, x, t, steps=IG_STEPS),
    "deconvnet": convlens.deconvnet,
    "guided backprop": convlens.guided_backprop,
    "Grad-CAM": lambda m, x, t: convlens.gradcam(m, x, t, layer),
    "guided Grad-CAM": lambda m, x, t: convlens.guided_gradcam(m, x, t, layer),
}
# The three rectifier rules are defined for ReLU networks only (lesson 07); on a model with
# another activation they refuse, and their rows are left out of every comparison here.
RECTIFIER_METHODS = ("deconvnet", "guided backprop", "guided Grad-CAM")
support = rectifier_support(model)
if support not in ("modules", "functional"):
    for name in RECTIFIER_METHODS:
        del METHODS[name]
    print(f"rectifier_support: {support}; left out: {', '.join(RECTIFIER_METHODS)}")
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
    return -(rows[:, None] ** 2 + cols[None] ** 2).sqrt().expand(x.shape[0], 1, h, w)


EVERY = {**METHODS, "random map": random_map, "centre map": centre_map}
BASELINE_STYLE = {"random map": dict(ls="--", color="black"),
                  "centre map": dict(ls=":", color="black")}
# Maps whose sign is not evidence for the class (the gradient family) are ranked by magnitude,
# as their lessons display them; additive ones (contributions, score drops, CAM) by value.
MAGNITUDE = {"gradient", "SmoothGrad", "deconvnet", "guided backprop", "guided Grad-CAM"}


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
if gaps[IG_STEPS] <= 0.1:
    verdict = ("close to the few percent they ask for: its values can be read, approximately, "
               "as shares of the change of the score")
elif gaps[IG_STEPS] <= 0.25:
    verdict = ("more than the few percent they ask for: read the values below as a fair "
               "approximation, not as exact shares of the score")
else:
    verdict = ("far from it: at the budget of this lesson the Integrated Gradients below are "
               "a coarse approximation, and we say so rather than hide it")
lesson.record("ig_verdict", verdict)

# Why: the score along the straight path from the baseline (forward passes only).
alphas = torch.linspace(0, 1, 21, device=x.device)
with torch.no_grad():
    path_scores = model(alphas.view(-1, 1, 1, 1) * x)[:, target]
print("f along the path, alpha = 0, 0.05, ..., 1:", [round(v, 1) for v in path_scores.tolist()])
rise = ((path_scores[1] - path_scores[0]) / (path_scores[-1] - path_scores[0])).item()
lesson.record("ig_rise", rise, fmt="{:.0%}")
lesson.expect(gaps[IG_COARSE] > 0.5 and gaps[IG_STEPS] < 0.5 * gaps[IG_COARSE] and rise > 0.3,
              f"IG with {IG_COARSE} intervals misses completeness by more than half of the "
              f"change, {IG_STEPS} intervals by less than half of that, and the score makes a "
              "large part of its change in the first 5% of the path",
              value=(gaps[IG_COARSE], gaps[IG_STEPS], rise))

# %% [markdown]
# With {{ ig_coarse_steps }} intervals, Integrated Gradients attributes {{ ig_coarse_sum }}
# logit units in total, against a change of {{ ig_change }} from the baseline to the photo: the
# trapezoid rule misses completeness by {{ ig_coarse_gap }} of the change. The printed path
# shows why: the score makes {{ ig_rise }} of its whole change in the first twentieth of the
# path, between the mean-colour image and a faint copy of the photo, where an evenly spaced
# grid of {{ ig_coarse_steps }} intervals has no point inside. With the {{ ig_steps }}
# intervals used in the rest of the lesson the total is {{ ig_sum }}, off by {{ ig_gap }}.
# Sundararajan et al. recommend checking the gap and raising the number of steps (they use 20
# to 300) until it is within a few percent; {{ ig_gap }} is {{ ig_verdict }}. (The library's
# tests check that the gap shrinks with the steps on a small network.)
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

# %% [markdown]
# Looking at these pictures decides nothing: each looks plausible in its own way. The rest of
# the lesson measures them.
#
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
                 "classifier down to the first convolution.")

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
#   Grad-CAM inherits this (ρ = {{ rho_top_guided_gradcam }}). Guided backprop is still at
#   ρ = {{ rho_second_guided }} when everything down to {{ second_step }} is random.
# - The plain gradient ({{ rho_top_gradient }}), SmoothGrad ({{ rho_top_smoothgrad }}),
#   occlusion ({{ rho_top_occlusion }}) and Grad-CAM ({{ rho_top_gradcam }}) change at the first
#   step.
# - This reproduces Adebayo et al.'s finding on this model: methods unchanged by the first
#   step here are {{ sanity_failures }}; the paper found guided backprop and guided Grad-CAM
#   to fail and the gradient and Grad-CAM to pass.
# - Two more observations. Gradient × input and Integrated Gradients multiply by the input,
#   so part of their picture is the photo itself (Adebayo et al. make the same point about
#   gradient × input): with every layer
#   random they keep ρ = {{ rho_last_gxi }} and {{ rho_last_ig }}, against
#   {{ rho_last_gradient }} for the plain gradient. And Grad-CAM, although it changes at once,
#   never becomes unrelated to its trained map (ρ = {{ rho_last_gradcam }} with every layer
#   random): part of that coarse map does not come from the learnt weights.
# - The two baselines ignore the network and stay at exactly 1: a "perfect" score on this
#   test is a failure.

# %%
rho_step = {name: r.spearman_abs[:, 0].tolist() for name, r in randomised.items()}
unchanged = [name for name in METHODS if rho_top[name] > 0.8]
changed = [name for name in METHODS if rho_top[name] < 0.6]
print("unchanged after the classifier step:", unchanged)
print("changed after the classifier step:", changed)
for key, name in [("guided", "guided backprop"), ("deconvnet", "deconvnet"),
                  ("guided_gradcam", "guided Grad-CAM"), ("gradient", "gradient"),
                  ("smoothgrad", "SmoothGrad"), ("occlusion", "occlusion"),
                  ("gradcam", "Grad-CAM")]:
    lesson.record(f"rho_top_{key}", text_of(rho_top, name, ".2f"))
lesson.record("rho_second_guided", text_of({k: v[1] for k, v in rho_step.items()},
                                           "guided backprop", ".2f"))
lesson.record("second_step", step_labels[1].lstrip("…"))
for key, name in [("gxi", "gradient × input"), ("ig", "Integrated Gradients"),
                  ("gradient", "gradient"), ("gradcam", "Grad-CAM")]:
    lesson.record(f"rho_last_{key}", rho_step[name][-1], fmt="{:.2f}")
lesson.record("sanity_failures", ", ".join(unchanged) or "none")
lesson.record("sanity_answer",
              f"Not for {', '.join(unchanged)}: they survive a random classifier, so what they "
              "draw is mostly the image, not the decision." if unchanged else
              "On this model no method stays unchanged (ρ > 0.8) when the classifier is "
              "re-initialised, so none fails this test at its first step.")
lesson.expect({"guided backprop", "deconvnet", "guided Grad-CAM"} <= set(unchanged)
              and {"gradient", "SmoothGrad", "occlusion", "Grad-CAM"} <= set(changed),
              "guided backprop, deconvnet and guided Grad-CAM are unchanged (rho > 0.8) after "
              "the classifier is randomised; gradient, SmoothGrad, occlusion and Grad-CAM "
              "change (rho < 0.6)", value=rho_top)
lesson.expect("guided backprop" in rho_step and rho_step["guided backprop"][1] > 0.8,
              "guided backprop is still unchanged after the second step", value=rho_step)
lesson.expect(min(rho_step["gradient × input"][-1], rho_step["Integrated Gradients"][-1])
              > rho_step["gradient"][-1] + 0.1 and rho_step["Grad-CAM"][-1] > 0.3,
              "with every layer random, gradient x input and IG keep a higher rho than the "
              "gradient, and Grad-CAM keeps rho > 0.3", value=rho_step)

# %% [markdown]
# ## Faithfulness: deletion and insertion
#
# Deletion sets the top-ranked pixels to zero in the model's normalised input space, which is
# the dataset's mean colour (a grey-brown), not black; insertion starts from the photo blurred
# with RISE's Gaussian (kernel 11, σ 5) and puts the top-ranked pixels back. Both take
# {{ curve_steps }} steps of 1/{{ curve_steps }} of the pixels, all channels of a pixel at once.
# All eleven maps are ranked in one batch: `deletion_curve` builds the
# {{ curve_images }} modified images and sends them through the model 32 at a time.

# %%
CURVE_STEPS = 10
names = list(EVERY)
batch = x.expand(len(names), -1, -1, -1)
ranks = torch.cat([ranking(name, maps[name]) for name in names])  # [11, 224, 224]
fractions, deletion = evaluate.deletion_curve(model, batch, target, ranks, steps=CURVE_STEPS,
                                              batch_size=32)
_, insertion = evaluate.insertion_curve(model, batch, target, ranks, steps=CURVE_STEPS,
                                        batch_size=32)
deletion_auc = dict(zip(names, evaluate.auc(fractions, deletion).tolist()))
insertion_auc = dict(zip(names, evaluate.auc(fractions, insertion).tolist()))
lesson.record("curve_steps", CURVE_STEPS)
lesson.record("curve_images", 2 * len(names) * (CURVE_STEPS + 1))
for name in names:
    print(f"{name:>21}: deletion AUC {deletion_auc[name]:.3f}   insertion AUC "
          f"{insertion_auc[name]:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for i, name in enumerate(names):
    style = BASELINE_STYLE.get(name, {})
    axes[0].plot(fractions.cpu(), deletion[i].cpu(), label=name, **style)
    axes[1].plot(fractions.cpu(), insertion[i].cpu(), label=name, **style)
axes[0].set_title("deletion (lower area is better)", fontsize=9)
axes[1].set_title("insertion (higher area is better)", fontsize=9)
for ax in axes:
    ax.set_xlabel("fraction of pixels changed")
axes[0].set_ylabel(f"p({ctx.labels[target]!r})")
axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
lesson.show(fig, f"Deletion and insertion curves of every map for {ctx.labels[target]!r} on "
                 "the photo; the baselines in black (random dashed, centre dotted).")

# %% [markdown]
# Read the areas against the baselines, not against zero:
#
# - **Deletion.** {{ deletion_first }} and {{ deletion_second }} have by far the lowest areas
#   ({{ deletion_first_auc }} and {{ deletion_second_auc }}): the pixels they rank first are
#   those whose removal takes the score away. The *random map* scores {{ deletion_random }},
#   better than every method except {{ beats_random_deletion }}. Deleting scattered pixels
#   riddles the image with grey dots, which destroys the class by itself, whatever the
#   ranking: a deletion area means something only next to the random map's.
# - Grad-CAM ({{ deletion_gradcam }}) and the centre map ({{ deletion_centre }}) delete whole
#   regions, and the photo with those regions painted grey keeps its class: Grad-CAM's
#   deletion curve even *rises*, to p = {{ gradcam_peak }} with {{ gradcam_peak_fraction }}
#   of the pixels grey.
# - **Insertion.** The blurred photo already scores p = {{ blurred_p }}; putting back the first
#   tenth of the pixels *lowers* the score for {{ insertion_dips }} of the 11 maps (sharp
#   specks in a blurred image are unnatural too). The best areas are {{ insertion_first }}
#   ({{ insertion_first_auc }}) and {{ insertion_second }} ({{ insertion_second_auc }}); the
#   maps above the random map's {{ insertion_random }} by more than 0.01 are
#   {{ beats_random_insertion }}.
#
# This is one photo and one class; the curves are a measurement of these maps, not a ranking of
# the methods in general.

# %%
by_deletion = sorted(METHODS, key=deletion_auc.get)
by_insertion = sorted(METHODS, key=insertion_auc.get, reverse=True)
beats_random_deletion = [n for n in by_deletion if deletion_auc[n] < deletion_auc["random map"]]
beats_random_insertion = [n for n in by_insertion
                          if insertion_auc[n] > insertion_auc["random map"] + 0.01]
print("deletion, best first:", by_deletion)
print("insertion, best first:", by_insertion)
for rank, name in zip(["first", "second"], by_deletion[:2]):
    lesson.record(f"deletion_{rank}", name)
    lesson.record(f"deletion_{rank}_auc", deletion_auc[name], fmt="{:.3f}")
for rank, name in zip(["first", "second"], by_insertion[:2]):
    lesson.record(f"insertion_{rank}", name)
    lesson.record(f"insertion_{rank}_auc", insertion_auc[name], fmt="{:.3f}")
for key, name in [("random", "random map"), ("centre", "centre map"), ("gradcam", "Grad-CAM")]:
    lesson.record(f"deletion_{key}", deletion_auc[name], fmt="{:.3f}")
lesson.record("insertion_random", insertion_auc["random map"], fmt="{:.3f}")
lesson.record("beats_random_deletion", ", ".join(beats_random_deletion))
lesson.record("beats_random_insertion", ", ".join(beats_random_insertion) or "none")
gradcam_curve = deletion[names.index("Grad-CAM")]
peak = int(gradcam_curve.argmax())
lesson.record("gradcam_peak", gradcam_curve[peak].item(), fmt="{:.2f}")
lesson.record("gradcam_peak_fraction", fractions[peak].item(), fmt="{:.0%}")
lesson.record("blurred_p", insertion[0, 0].item(), fmt="{:.2f}")
dips = int((insertion[:, 1] < insertion[:, 0]).sum())
lesson.record("insertion_dips", dips)
lesson.expect(set(by_deletion[:2]) == {"gradient × input", "Integrated Gradients"}
              and deletion_auc[by_deletion[2]] > 1.5 * deletion_auc[by_deletion[1]],
              "gradient x input and IG have by far the lowest deletion AUC", value=deletion_auc)
lesson.expect(len(beats_random_deletion) <= 4 and not {"gradient", "guided backprop"}
              & set(beats_random_deletion),
              "the random map beats most methods at deletion, the gradient and guided "
              "backprop among them", value=deletion_auc)
lesson.expect(deletion_auc["Grad-CAM"] > deletion_auc["random map"]
              and deletion_auc["centre map"] > deletion_auc["random map"]
              and gradcam_curve.max() > gradcam_curve[0],
              "Grad-CAM and the centre map delete worse than the random map, and Grad-CAM's "
              "deletion curve rises above its start", value=deletion_auc)
lesson.expect(dips >= 8, "the first insertion step lowers the score for most maps", value=dips)

# %% [markdown]
# ## Localisation: the pointing game
#
# For the pointing game we need images where we *know* where the object is.
# `images.ground_truth_set` builds them from the two bundled photos with a seed: the cat and the
# cup cropped from their photos and pasted, without overlap, on a plain grey or a textured
# background, plus the cat|coffee composite. Each object is small (its longer side
# {{ object_low }} to {{ object_high }} of the frame) and placed anywhere in the frame, so
# that, as in photo benchmarks, the centre of the image is often but not always on an object.
# Each object is explained for its own class (the model's most probable among
# `images.OBJECT_CLASSES`), so every image is asked twice, once per object.

# %%
# 160-px images keep the CPU build short; a GPU affords more of them at the model's own size.
GPU_TRUTH = 32
N_TRUTH, TRUTH_SIZE = (8, 160) if ctx.device.type == "cpu" else (GPU_TRUTH, 224)
truth = images.ground_truth_set(N_TRUTH, size=TRUTH_SIZE,
                                generator=torch.Generator().manual_seed(ctx.seed))
lesson.record("object_low", images.OBJECT_SIZE[0], fmt="{:.0%}")
lesson.record("object_high", images.OBJECT_SIZE[1], fmt="{:.0%}")
hits = {name: [] for name in EVERY}
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
        flat = ranked.flatten(1).argmax(1).cpu()
        peaks[name] += [(int(p % ranked.shape[-1]), int(p // ranked.shape[-1])) for p in flat]
pointing = {name: float(np.mean(h)) for name, h in hits.items()}
explanations = len(hits["gradient"])
lesson.expect(0.2 <= pointing["centre map"] <= 0.8, "the centre of the image is often but not "
              "always on an object (the centre map hits 20-80% of the objects)",
              value=pointing["centre map"])
lesson.record("pointing_explanations", explanations)
lesson.record("pointing_images", len(truth))
for name in EVERY:
    print(f"{name:>21}: {sum(hits[name]):2d} of {explanations} hits ({pointing[name]:.0%})")
best_pointing = max(pointing[name] for name in METHODS)
pointing_best = [name for name in METHODS if pointing[name] == best_pointing]
lesson.record("pointing_best", ", ".join(pointing_best))
lesson.record("one_hit", 1 / explanations, fmt="{:.0%}")
if best_pointing > pointing["centre map"]:
    answer = (f"{' and '.join(pointing_best)}: "
              f"{'its maximum lands' if len(pointing_best) == 1 else 'their maxima land'} "
              f"on the object in "
              f"{best_pointing:.0%} of the cases here, above the centre map's "
              f"{pointing['centre map']:.0%}. Measure on more images before relying on a "
              "difference of a few hits.")
else:
    answer = (f"On this set no method points better than the centre map "
              f"({pointing['centre map']:.0%}; best method {best_pointing:.0%}): the pointing "
              "game cannot separate them here. Use more images (a GPU build uses "
              f"{GPU_TRUTH}).")
lesson.record("pointing_answer", answer)
lesson.record("pointing_best_acc", best_pointing, fmt="{:.0%}")
for key, name in [("centre", "centre map"), ("random", "random map"), ("gradcam", "Grad-CAM"),
                  ("guided", "guided backprop"), ("gradient", "gradient"),
                  ("occlusion", "occlusion")]:
    lesson.record(f"pointing_{key}", text_of(pointing, name, ".0%"))

# %% [markdown]
# On {{ pointing_explanations }} explanations ({{ pointing_images }} images, two objects each),
# the best score among the methods, {{ pointing_best_acc }}, goes to {{ pointing_best }}. Grad-CAM hits
# {{ pointing_gradcam }}, occlusion {{ pointing_occlusion }}, the gradient
# {{ pointing_gradient }} and guided backprop {{ pointing_guided }}; the centre map
# {{ pointing_centre }} and the random map {{ pointing_random }}. With so few explanations one
# hit is {{ one_hit }}, so differences of a hit or two are noise. The figure shows where two of
# the maps put their maximum.

# %%
shown_truth = truth[:9]  # the composite and (up to) eight square images, two rows of five units
fig = plt.figure(figsize=(12, 5))
grid = fig.add_gridspec(2, 5)
cells = [grid[0, :2]] + [grid[r, c] for r, c in [(0, 2), (0, 3), (0, 4)] + [(1, c) for c in range(5)]]
first = 0
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
            if name not in peaks:
                continue
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
# ## One table
#
# Every number above in one place. Randomisation is the mean of Spearman's ρ of |map| over the
# {{ cascade_steps }} steps of the cascade (near 0: the map depends on the weights, as it
# should; near 1: it does not). Time is the wall time of one map of one image on this machine,
# measured above, without the warm-up.

# %%
lesson.record("cascade_steps", len(steps))


HEADERS = ["method", "deletion AUC ↓", "insertion AUC ↑", "pointing ↑", "randomisation ρ ↓",
           "time per image"]
rows = [[name, f"{deletion_auc[name]:.3f}", f"{insertion_auc[name]:.3f}",
         f"{pointing[name]:.0%}", f"{rho_mean[name]:.2f}", f"{seconds[name]:.2f} s"]
        for name in EVERY]
table = plot.table(HEADERS, rows)
if get_ipython() is None:  # plain Python: print what a notebook renders
    print(table)

# %% [markdown]
# ## Which method for which question
#
# Each answer is read off the table, for this model and these images; on another model the
# build derives them again from its own measurements (and flags the sentences that no longer
# hold).
#
# - *"Which pixels does this score depend on: change them and the score changes?"* Gradient ×
#   input and Integrated Gradients. Their top pixels are those whose deletion removes the score
#   fastest ({{ deletion_first }}: {{ deletion_first_auc }}, against {{ deletion_random }} for
#   a random ranking). Check Integrated Gradients' completeness gap before reading its values
#   as shares of the score ({{ ig_gap }} off at {{ ig_steps }} steps here).
# - *"Where in the image is the evidence for this class?"* {{ pointing_answer }}
# - *"Is the picture about what this network learnt?"* {{ sanity_answer }} The
#   input-times-gradient maps and Grad-CAM keep part of their picture even after every layer
#   is random.
# - *"What can I afford?"* One backward pass (gradient, gradient × input, deconvnet, guided
#   backprop, Grad-CAM) costs {{ time_one_pass }} per image here; SmoothGrad and Integrated
#   Gradients pay one pass per sample or step, and occlusion one forward pass per window
#   ({{ time_occlusion }}).
#
# No method wins every column. Together the three tests say what each map is evidence *of*:
# the deletion curve tests the ranking of pixels, the pointing game the location of the
# maximum, randomisation the dependence on the weights, and a method can pass one and fail
# another.

# %%
one_pass = [seconds[n] for n in ("gradient", "gradient × input", "deconvnet", "guided backprop",
                                  "Grad-CAM") if n in seconds]
lesson.record("time_one_pass", f"{min(one_pass):.2f}–{max(one_pass):.2f} s")
lesson.record("time_occlusion", seconds["occlusion"], fmt="{:.2f} s")

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
# (<code>baseline=evaluate.gaussian_blur(x)</code>). Each choice gives different curves and can
# reorder the methods: state it next to the number.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: no baselines</p>
# <p>A random ranking deletes well because scattered grey pixels are unnatural, and a centre
# map points well because photographers centre their subject (Zhang et al.'s centre baseline
# already scores high on PASCAL VOC). A method's number means something only next to
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
# 1. Run the deletion curves with black (`preprocess.normalize(torch.zeros(3, 1, 1))`) and with
#    a blurred copy as the baseline. Which methods change rank?
# 2. Raise `IG_STEPS` until the completeness gap is below 5%. How many steps does that take on
#    this photo, and do the deletion and insertion areas of Integrated Gradients change?
# 3. Repeat the randomisation with `order="independent"`: re-initialise one block at a time,
#    the others trained. Which block does guided backprop depend on?
# 4. Make the pointing game harder: tolerance 0, and only the textured backgrounds. Does the
#    centre map still keep up?
# 5. Run the lesson on another model (`nox -s site -- --model resnet18` where its weights are
#    available) and compare the table. Which sentences of this page does the build flag?
