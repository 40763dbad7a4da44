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
# # Input optimisation
#
# **Summary.** Synthesising an image that excites a unit or a class, and the regularisers that make it look like something.
#
# **The question.** "To see what a filter detects, people start from a random image and
# follow the gradient that raises the mean of that filter's feature map. But for a first-layer
# filter, that mean is just a weighted sum of the pixels: every pixel pushed to $\pm\infty$ with
# the right sign makes it as large as you like. The optimisation never converges. Why does
# this technique work at all?"
#
# The doubt is correct, and it is the best way into the method. For a first-layer map without
# a nonlinearity, the objective *is* linear in the pixels, and with nothing bounding the
# pixels it diverges. Two things make input optimisation meaningful. First, the input is kept
# in a **bounded set** (real images live in $[0,1]$): a squashing parameterisation, clamping, a
# norm penalty, or simply a fixed budget of small steps. Second, the interesting units are
# **deep**: after many nonlinearities the objective is no longer linear, and the best bounded
# image is no longer a trivial pattern of signs but a picture of what the unit responds to.
#
# With $a_{c}(x)$ the mean activation of channel $c$ of a layer, and $x = g(\theta)$ an image
# produced from free parameters $\theta$ (the parameterisation), the method solves
#
# $$ \theta^\star = \arg\max_\theta\; a_c\big(g(\theta)\big) \;-\; \frac{\lambda_2}{n}\,\lVert g(\theta) - \tfrac12\rVert^2
#    \;-\; \lambda_{TV}\,\mathrm{TV}\big(g(\theta)\big) $$
#
# by gradient ascent on $\theta$, with the network's weights frozen ($n$ is the number of
# pixel values, pixels times colours: the penalty is a mean). The idea goes back to
# Erhan et al. 2009, [Visualizing Higher-Layer Features of a Deep Network](https://www.researchgate.net/publication/265022827);
# Simonyan et al. 2013 ([arXiv:1312.6034](https://arxiv.org/abs/1312.6034)) applied it to
# class scores with an $L_2$ penalty; Mordvintsev et al. 2015
# ([Inceptionism](https://research.google/blog/inceptionism-going-deeper-into-neural-networks/))
# and Olah et al. 2017, [Feature Visualization](https://distill.pub/2017/feature-visualization/)
# (Distill), added jitter, the Fourier parameterisation and decorrelated colour that make the
# pictures clean.

# %%
import time
import warnings

import matplotlib.pyplot as plt
import torch

import convlens
from convlens import plot
from convlens.hooks import capture
from convlens.input_optimization import Transforms
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
modules = dict(model.named_modules())
print("model:", ctx.name, "| device:", ctx.device, "| layers:", ctx.layers)
start_time = time.perf_counter()

# %% [markdown]
# ## The linear argument, made concrete
#
# Take the first convolution, with no bias or activation after it (we hook the convolution
# itself). Its channel $c$ at output position $o$ is $y_c(o) = \sum_{p} w_c(p - s\,o)\,x(p)$,
# a sum over the pixels $p$ under the kernel. The objective averages this over the $N$ output
# positions, so
#
# $$ a_c(x) = \frac1N \sum_o \sum_p w_c(p - s\,o)\, x(p) = \sum_p \underbrace{\Big(\frac1N \sum_{o\,:\,p \text{ under } o} w_c(p - s\,o)\Big)}_{\alpha_p}\, x(p). $$
#
# Each pixel (and colour) has exactly one coefficient $\alpha_p$: the sum of the kernel weights
# that touch it, over all the windows it falls in, divided by $N$ (and by the normalisation's
# standard deviation, since the model sees $(x-\mu)/\sigma$). Two checks: the gradient of
# $a_c$ is the same at any two images (it is the constant vector $\alpha$), and it matches this
# formula pixel by pixel.

# %%
first_name = ctx.layers["first_conv"]
first = modules[first_name]
weight = first.weight.detach()
channel = int(weight.flatten(1).norm(dim=1).argmax())  # the strongest first-layer filter
size = 64
std = ctx.preprocess.std


def first_layer_objective_gradient(pixels):
    """Gradient of the mean of channel `channel` of the first conv w.r.t. [0, 1] pixels."""
    pixels = pixels.clone().requires_grad_(True)
    with capture(model, first_name) as records:
        model(ctx.preprocess.normalize(pixels))
    objective = records[first_name][0][:, channel].mean()
    return torch.autograd.grad(objective, pixels)[0][0], records[first_name][0].shape[-2:]


g = torch.Generator().manual_seed(ctx.seed)
grad_a, out_shape = first_layer_objective_gradient(torch.rand(1, 3, size, size, generator=g).to(ctx.device))
grad_b, _ = first_layer_objective_gradient(torch.rand(1, 3, size, size, generator=g).to(ctx.device) * 5 - 2)
gradient_change = float((grad_a - grad_b).abs().max() / grad_a.abs().max())
print(f"channel {channel} of {first_name}: max |gradient(image A) - gradient(image B)| = "
      f"{(grad_a - grad_b).abs().max():.2e}  (the objective is linear)")
_ = lesson.expect(gradient_change < 1e-4, "the gradient is the same at two different images",
                  gradient_change)

# the same coefficients by hand: which kernel taps touch pixel (py, px)?
pad = convlens.receptive_field(model, (size, size))[first_name].padding  # incl. TF-style dynamic padding
(s_y, s_x), (d_y, d_x), (k_y, k_x) = first.stride, first.dilation, first.kernel_size
n_out = out_shape[0] * out_shape[1]


def coefficient(colour, py, px):
    total = 0.0
    for u in range(k_y):
        for v in range(k_x):
            oy, ry = divmod(py + pad[0] - u * d_y, s_y)
            ox, rx = divmod(px + pad[1] - v * d_x, s_x)
            if ry == rx == 0 and 0 <= oy < out_shape[0] and 0 <= ox < out_shape[1]:
                total += float(weight[channel, colour, u, v])
    return total / (std[colour] * n_out)


worst = 0.0
for colour, py, px in [(0, 0, 0), (1, 10, 10), (1, 10, 11), (2, 31, 40)]:
    by_hand, by_autograd = coefficient(colour, py, px), float(grad_a[colour, py, px])
    worst = max(worst, abs(by_hand - by_autograd) / float(grad_a.abs().max()))
    print(f"  pixel ({'RGB'[colour]}, {py:2d}, {px:2d}): by hand {by_hand:+.6f}, autograd {by_autograd:+.6f}")
_ = lesson.expect(worst < 1e-4, "the formula matches autograd pixel by pixel", worst)

# %%
crop = grad_a[:, :12, :12].cpu()
limit = float(crop.abs().max())
fig, axes = plt.subplots(1, 4, figsize=(10, 2.9), gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
for colour, ax in enumerate(axes[:3]):
    image = ax.imshow(crop[colour], cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"{'RGB'[colour]} coefficients α (top-left 12×12)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(image, cax=axes[3])
lesson.show(fig, f"Coefficient of each pixel in the mean of channel {channel} of {first_name} "
                 f"(a {size}×{size} input): a periodic pattern of kernel-weight sums, different "
                 "along the border, where fewer windows reach.")

# %% [markdown]
# With stride $s$, the pixels fall into $s\times s$ classes by their position in the stride
# grid, each touched by a different subset of the kernel's taps: the coefficient map is a
# tiling of $s^2$ numbers per colour, with a different rim where windows stop. So for this
# objective, the "best image" is known without any optimisation: each pixel goes as far as it
# is allowed in the direction of the sign of its coefficient.
#
# ## Unbounded pixels diverge
#
# `convlens.maximize_activation` runs the ascent (Adam steps on the parameters). With
# `parameterization="pixel"` the parameters *are* the pixels, nothing bounds them, and
# the result's `history` holds the objective and the pixel range at every step.

# %%
def seeded():
    """A fresh generator for each run: every run starts from the same noise."""
    return torch.Generator().manual_seed(ctx.seed)


settings = dict(steps=128, image_size=(size, size), normalize=ctx.preprocess.normalize)
runs = {}
for kind in ("pixel", "sigmoid"):
    runs[kind] = convlens.maximize_activation(model, first_name, channel, parameterization=kind,
                                              generator=seeded(), **settings)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for kind, style in (("pixel", "-"), ("sigmoid", "--")):
    history = runs[kind].history
    axes[0].plot(history["objective"], style, label=kind)
    axes[1].plot(history["pixel_max"], style, label=f"{kind}: max")
    axes[1].plot(history["pixel_min"], style, label=f"{kind}: min")
axes[0].set(xlabel="step", ylabel="mean activation", title=f"objective: {first_name}, channel {channel}")
axes[1].set(xlabel="step", ylabel="pixel value", title="range of the image")
axes[1].axhspan(0, 1, color="0.9", zorder=0)
axes[0].legend(fontsize=8)
axes[1].legend(fontsize=8, ncol=2)
lesson.show(fig, f"Gradient ascent on the mean of channel {channel} of {first_name}: with raw "
                 "pixels (solid) the objective and the pixel range grow without limit; with a "
                 "sigmoid (dashed) the image stays in [0, 1] (grey band) and the objective levels off.")
for kind, history in ((kind, run.history) for kind, run in runs.items()):
    print(f"{kind:8s} after {len(history['objective'])} steps: objective "
          f"{history['objective'][-1]:8.2f}, pixels in [{history['pixel_min'][-1]:.2f}, "
          f"{history['pixel_max'][-1]:.2f}]")
steps, lr = settings["steps"], 0.05  # maximize_activation's default learning rate
reach = float(max(runs["pixel"].history["pixel_max"][-1] - 0.5, 0.5 - runs["pixel"].history["pixel_min"][-1]))
lesson.record("pixel_reach", reach, ".2f")
lesson.record("predicted_reach", lr * steps, ".2f")
_ = lesson.expect(abs(reach - lr * steps) < 0.15 * lr * steps,
                  "the raw pixels move about lr per step, 0.5 ± lr·T after T steps", reach)
sig = runs["sigmoid"].history["objective"]
late_share = float((sig[-1] - sig[-33]) / (sig[-1] - sig[0]))
lesson.record("late_share", late_share, ".0%")
_ = lesson.expect(late_share < 0.1, "with a sigmoid the objective levels off", late_share)

# %% [markdown]
# The growth is linear, not explosive: Adam moves every parameter by about its learning rate
# per step when the gradient is constant, so after $T$ steps the pixels are about $0.5 \pm
# \text{lr}\cdot T$ (here the farthest pixel is {{ pixel_reach }} from 0.5, against
# $\text{lr}\cdot T =$ {{ predicted_reach }}), and the objective, linear in them, follows. Ten
# times more steps would make both ten times larger: there is no maximum to converge to. The
# sigmoid run, by contrast, gains only {{ late_share }} of its total rise in its last 32 steps.
#
# ## What bounds it
#
# Four ways, side by side:
#
# - a **bounded parameterisation**: $x = \mathrm{sigmoid}(\theta)$, always in $(0, 1)$;
# - **clamping** to $[0,1]$; for a linear objective the exact answer is then known in closed
#   form: $x_p = 1$ where $\alpha_p > 0$, else $0$;
# - an **$L_2$ penalty**. `maximize_activation` uses the *mean* over the $n$ pixel values
#   (pixels times colours), $\frac{\lambda}{n}\sum_p (x_p - \frac12)^2$, which makes the
#   objective concave with the finite maximiser $x_p = \frac12 + n\,\alpha_p/(2\lambda)$
#   (set the derivative $\alpha_p - 2\lambda (x_p - \frac12)/n$ to zero);
# - a **fixed step budget**: stop early. The raw-pixel image grows, but its *pattern* is fixed
#   from the first steps on; what you display (rescaled to $[0, 1]$) stops changing.

# %%
short = convlens.maximize_activation(model, first_name, channel, parameterization="pixel",
                                     generator=seeded(), **{**settings, "steps": 16}).image
lam = 150.0
penalised_run = convlens.maximize_activation(
    model, first_name, channel, parameterization="pixel", l2=lam, generator=seeded(), **settings)
penalised, penalised_history = penalised_run.image, penalised_run.history
clamped = (grad_a > 0).float()  # the exact maximiser over [0, 1]^n of a linear objective
pictures = {"pixel, 16 steps\n(rescaled)": short, "pixel, 128 steps\n(rescaled)": runs["pixel"].image,
            "sigmoid, 128 steps": runs["sigmoid"].image, "clamp to [0, 1]\n(exact optimum)": clamped,
            f"L2 penalty λ={lam:g}\n(128 steps)": penalised.clamp(0, 1)}
crop_px = 16  # show pixels as blocks: the pattern repeats every stride, too fine for a thumbnail
fig, axes = plt.subplots(1, len(pictures), figsize=(10, 2.5))
for ax, (title, picture) in zip(axes, pictures.items()):
    ax.imshow(picture[:, :crop_px, :crop_px].permute(1, 2, 0).cpu(), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
lesson.show(fig, f"The maximiser of the mean of channel {channel} of {first_name} under different "
                 f"bounds: the top-left {crop_px}×{crop_px} pixels of each {size}×{size} image, "
                 "one block per pixel. All show the same tiled sign pattern, with a different rim "
                 "at the border.")
agree = lambda a, b: float(((a - 0.5).sign() == (b - 0.5).sign()).float().mean())  # noqa: E731
agreements = {"pixel@16": agree(short, clamped), "pixel@128": agree(runs["pixel"].image, clamped),
              "sigmoid": agree(runs["sigmoid"].image, clamped)}
print("sign agreement with the exact optimum:",
      ", ".join(f"{k} {v:.1%}" for k, v in agreements.items()))
_ = lesson.expect(min(agreements.values()) > 0.95,
                  "every bound gives the same sign pattern as the exact optimum", min(agreements.values()))
# the L2 optimum in closed form, with n the number of pixel values the penalty averages over
n_values = grad_a.numel()
predicted = 0.5 + n_values * grad_a / (2 * lam)
reached = (penalised_history["pixel_min"][-1], penalised_history["pixel_max"][-1])
rescaled = (predicted - predicted.min()) / (predicted.max() - predicted.min())  # as the image is shown
gap = max(abs(float(reached[0] - predicted.min())), abs(float(reached[1] - predicted.max())),
          float((penalised - rescaled).abs().max()))
print(f"L2 penalty: pixels settle in [{reached[0]:.3f}, {reached[1]:.3f}]; the formula "
      f"1/2 + n α/(2λ) with n = {n_values} predicts [{float(predicted.min()):.3f}, "
      f"{float(predicted.max()):.3f}]; largest gap (range, and pixel by pixel) {gap:.1e}")
lesson.record("n_values", n_values)
lesson.record("l2_gap", gap, ".0e")
_ = lesson.expect(gap < 0.01, "the L2-penalised ascent reaches the closed-form optimum", gap)

# %% [markdown]
# Every bound gives the same picture: the filter's sign pattern, tiled (the $L_2$ version in
# shades of grey, since its pixels stop at $\frac12 + n\,\alpha_p/(2\lambda)$ instead of at 0
# or 1; with $n =$ {{ n_values }} the formula and the ascent agree to {{ l2_gap }}). That answers the
# question. The divergence is real but harmless for *looking*: the direction is found at once
# and more steps only scale it (this is why tutorials that stop after a fixed number of steps
# never notice). It also shows the limit of the method at the first layer: the "optimal image"
# of a linear unit is nothing more than its weights, which you can just plot
# ([Filters and feature maps](01-filters-and-feature-maps.ipynb)).
#
# ## Deeper units: where it means something
#
# Deeper, the objective passes through many nonlinearities and is no longer linear: which
# pixels should be bright depends on the other pixels, and the best bounded image is a
# structured picture.
#
# One practical catch first. The lesson's `last_spatial` layer is, on this model, the output of
# the last batch norm *with its ReLU6*, which clips at 0 and 6. A channel that is 0 for the
# starting image has zero gradient and never moves; one that reaches 6 everywhere has nothing
# left to gain, and its picture stops improving there. Twelve steps on the four channels most
# active on the cat photo, each from the usual near-grey start:

# %%
photo = ctx.image("chelsea")


def most_active(layer, k=4):
    maps = convlens.feature_maps(model, photo, layer)[0]
    return maps.flatten(1).mean(dim=1).argsort(descending=True)[:k].tolist()


deep_settings = dict(steps=48, lr=0.08, image_size=(112, 112), normalize=ctx.preprocess.normalize,
                     transforms=Transforms(jitter=4))
stuck = {"dead": 0, "saturated": 0}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for c in most_active(ctx.layers["last_spatial"]):
        history = convlens.maximize_activation(model, ctx.layers["last_spatial"], c, generator=seeded(),
                                               **{**deep_settings, "steps": 12}).history
        objective = history["objective"]
        print(f"{ctx.layers['last_spatial']} channel {c}: objective at steps 1, 6, 12 = "
              f"{objective[0]:.3f}, {objective[5]:.3f}, {objective[11]:.3f}")
        stuck["dead"] += bool((objective == 0).all())
        stuck["saturated"] += bool((objective[5:] > 5.99).all())
if caught:
    print(f"{len(caught)} warning(s), e.g.: {caught[0].message}")
print("channels that stay at 0 (dead start):", stuck["dead"], "| pinned at 6 (saturated):", stuck["saturated"])
lesson.record("n_dead", stuck["dead"])
_ = lesson.expect(stuck["dead"] > 0, "some of these channels are dead at the grey start", stuck)

# %% [markdown]
# {{ n_dead }} of the four stay at exactly 0 for all twelve steps: the channels that fire most
# on a cat photo are off for a grey image, and with a zero gradient the ascent cannot even
# begin (convlens warns). So for the deep example we take the last *convolution* of the network (found generically:
# the last `nn.Conv2d`), whose output comes before the batch norm and the clipping. First the
# parameterisation alone: two channels (the most active on the cat photo), one of the middle
# layer and one of that convolution, optimised from the same grey noise with the sigmoid of raw
# pixels and with the Fourier ("fft") parameterisation in decorrelated colour, 112×112
# pixels, {{ param_steps }} steps, jitter of 4 pixels.

# %%
last_conv_name = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]
deep = {ctx.layers["middle"]: most_active(ctx.layers["middle"], 2), last_conv_name: most_active(last_conv_name, 2)}
print("channels:", deep)
param_steps = lesson.record("param_steps", 64)
compare = {}  # (layer, parameterisation) -> Visualization
for layer_name, channels in deep.items():
    for kind in ("sigmoid", "fft"):
        compare[layer_name, kind] = convlens.maximize_activation(
            model, layer_name, channels[0], parameterization=kind, decorrelate=kind == "fft",
            generator=seeded(), **{**deep_settings, "steps": param_steps})

fig, axes = plt.subplots(1, 4, figsize=(9.6, 2.9))
for ax, ((layer_name, kind), run) in zip(axes, compare.items()):
    ax.imshow(run.image.permute(1, 2, 0).cpu())
    ax.set_title(f"{layer_name} ch {deep[layer_name][0]}, {kind}\nobjective "
                 f"{run.history['objective'][-1]:.1f}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
lesson.show(fig, f"One channel of {ctx.layers['middle']} and one of {last_conv_name}: sigmoid of raw "
                 f"pixels versus Fourier parameterisation with decorrelated colour ({param_steps} "
                 "steps each); titles: channel, parameterisation and final mean activation.")
gains = {name: float(compare[name, "fft"].history["objective"][-1]
                     / compare[name, "sigmoid"].history["objective"][-1]) for name in deep}
print("final objective, fft / sigmoid:", {k: round(v, 2) for k, v in gains.items()})
lesson.record("fft_gain_low", min(gains.values()) - 1, ".0%")
lesson.record("fft_gain_high", max(gains.values()) - 1, ".0%")
_ = lesson.expect(all(g > 1 for g in gains.values()),
                  "for the same number of steps the Fourier parameterisation reaches higher activations",
                  min(gains.values()))

# %% [markdown]
# For the same number of steps the Fourier parameterisation reaches higher activations (by
# {{ fft_gain_low }} and {{ fft_gain_high }} here) and bolder, larger-scale structure, while the
# sigmoid of raw pixels stays a fine, low-contrast speckle: the Fourier parameters are scaled
# so that coarse structure moves first, and the colours are decorrelated the way natural
# images are. Both still carry a pixel-level grain at this number of steps.
#
# ## The whole recipe: transformation robustness
#
# The pictures in Olah et al. 2017 add one more ingredient and many more steps: before every
# forward pass the image is jittered, zoomed and rotated at random (`Transforms(jitter=8,
# scale=(0.9, 1.1), degrees=10)` here), so only a pattern that works at every offset, scale
# and small angle survives, and they run for many more steps at full resolution. Below: the
# two most active channels of each of the two layers, Fourier parameterisation in decorrelated
# colour, {{ recipe_steps }} steps at {{ recipe_size }}×{{ recipe_size }} pixels, as much as
# this page can afford to build on a CPU.

# %%
recipe_steps = lesson.record("recipe_steps", 192)
recipe_size = lesson.record("recipe_size", 128)
robust = Transforms(jitter=8, scale=(0.9, 1.1), degrees=10)
recipe = {}
for layer_name, channels in deep.items():
    for c in channels:
        recipe[layer_name, c] = convlens.maximize_activation(
            model, layer_name, c, parameterization="fft", decorrelate=True, transforms=robust,
            steps=recipe_steps, lr=0.05, image_size=(recipe_size, recipe_size),
            normalize=ctx.preprocess.normalize, generator=seeded())

fig, axes = plt.subplots(1, 4, figsize=(10, 3.0))
for ax, ((layer_name, c), run) in zip(axes, recipe.items()):
    ax.imshow(run.image.permute(1, 2, 0).cpu())
    ax.set_title(f"{layer_name} ch {c}\nobjective {run.history['objective'][-1]:.1f}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
lesson.show(fig, f"Two channels of {ctx.layers['middle']} and two of {last_conv_name}: Fourier "
                 "parameterisation, decorrelated colour, random jitter, zoom and rotation, "
                 f"{recipe_steps} steps at {recipe_size}×{recipe_size}; titles: final mean activation.")
recipe_gain = {name: float(recipe[name, deep[name][0]].history["objective"][-1]
                           / compare[name, "fft"].history["objective"][-1]) for name in deep}
print(f"final objective, whole recipe / fft at {param_steps} steps without zoom and rotation:",
      {k: round(v, 2) for k, v in recipe_gain.items()})
lesson.record("recipe_gain_low", min(recipe_gain.values()) - 1, ".0%")
lesson.record("recipe_gain_high", max(recipe_gain.values()) - 1, ".0%")
_ = lesson.expect(all(g > 1 for g in recipe_gain.values()),
                  "the whole recipe reaches higher activations than the short fft runs, although "
                  "each step sees a randomly moved, zoomed and rotated image", min(recipe_gain.values()))

# %% [markdown]
# Look at what these pictures show, and what they do not. The middle-layer channels come out as
# textures: one motif (a lattice of colour blobs, a band of parallel strokes) repeated over the
# whole image, because the objective averages over every position and the middle layer's
# units see only a patch of it. The last convolution's channels are larger-scale compositions
# of curved contours and blocky shapes that do not repeat. The activations rise with the
# longer, transformed runs ({{ recipe_gain_low }} to {{ recipe_gain_high }} above the short
# Fourier runs of the same channels); but the pictures are still far from the published ones: a high-frequency grain remains, the colours are
# saturated, and nothing in them is a recognisable object. Olah et al. optimise GoogLeNet (Inception V1)
# for many more steps, at full size, with more transformations; this page, built on a CPU, can
# afford {{ recipe_steps }} steps at {{ recipe_size }} pixels. So read these images as the
# scale and kind of pattern a channel prefers, not as a portrait of what it detects: for that,
# compare with the photo patches that activate it most (exercise 4) and check that the
# picture holds across seeds (exercise 3).
#
# ## Regularisers and their effect
#
# Even bounded, the ascent likes high-frequency patterns that real images don't have (the
# network's equivalent of an adversarial example). Three cheap priors fix much of it:
#
# - an **$L_2$ penalty** pulls pixels towards grey, so only pixels that matter leave it;
# - **total variation**, $\mathrm{TV}(x)$ = the mean of $|x_{i+1,j}-x_{i,j}|$ plus the mean of
#   $|x_{i,j+1}-x_{i,j}|$, penalises differences between neighbours: flatter regions, fewer
#   speckles;
# - **jitter** shifts the image by a few random pixels every step, so a pattern has to work at
#   every offset, not only on one exact pixel grid (Mordvintsev et al. 2015).
#
# The weights look large because `maximize_activation` uses *means*: the penalties average
# over all pixels (typical values 0.01 to 0.1) while the objective is a mean activation of
# order 10. What matters is the balance between the two. One middle-layer channel, sigmoid
# parameterisation, 112×112, 40 steps each:

# %%
channel_mid = deep[ctx.layers["middle"]][0]
variants = {"none": {}, "L2, λ = 3000": {"l2": 3000.0}, "TV, λ = 1000": {"tv": 1000.0},
            "jitter 8 px": {"transforms": Transforms(jitter=8)},
            "L2 1000 + TV 300\n+ jitter 8": {"l2": 1000.0, "tv": 300.0,
                                             "transforms": Transforms(jitter=8)}}
pictures, reg_objectives = [], {}
for label, extra in variants.items():
    settings_here = {**deep_settings, "steps": 40, "lr": 0.1, "transforms": None, **extra}
    run = convlens.maximize_activation(model, ctx.layers["middle"], channel_mid,
                                       parameterization="sigmoid", generator=seeded(), **settings_here)
    pictures.append(run.image)
    reg_objectives[label] = float(run.history["objective"][-1])
titles = [f"{label}\nobjective {value:.1f}" for label, value in reg_objectives.items()]
fig = plot.image_row([p.permute(1, 2, 0).cpu() for p in pictures], titles, cell=1.95)
lesson.show(fig, f"Channel {channel_mid} of {ctx.layers['middle']} with different regularisers "
                 "(sigmoid parameterisation, 40 steps); titles: the final mean activation.")
print(f"input optimisation total: {time.perf_counter() - start_time:.0f} s on {ctx.device}")
none, combined = reg_objectives["none"], reg_objectives[list(variants)[-1]]
lesson.record("reg_none", none, ".1f")
lesson.record("reg_all", combined, ".1f")
_ = lesson.expect(all(v < none for k, v in reg_objectives.items() if k.startswith(("L2", "TV"))),
                  "each penalty costs activation", reg_objectives)

# %% [markdown]
# Without regularisation the picture is saturated, high-contrast speckle. The $L_2$ penalty
# pulls everything towards grey, so only the pixels that pay for themselves keep their colour;
# total variation merges the speckle into smooth blobs of colour. Each penalty costs
# activation: the titles show {{ reg_none }} without regularisation and {{ reg_all }} with all
# three combined; report it next to the picture. Jitter's contribution is not something to
# judge from a 40-step picture: it acts over many steps, as in the long runs of the previous
# figure. In practice you combine them and tune the weights by eye. Too strong and the picture becomes a grey, blurred
# shadow of itself: the regulariser is a prior you impose, so part of what you see is you.
#
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: optimising raw pixels
# without a bound</p>
# <p>As shown above, the objective can grow for ever, and a display that rescales the image
# hides it. Use a bounded parameterisation (sigmoid, or sigmoid of a Fourier basis), or clamp
# after each step, and report the objective: two pictures reached at very different
# activation values are not comparable.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: optimising in the wrong
# space</p>
# <p>The network expects normalised inputs. Parameterise the image in pixel space $[0, 1]$ and
# normalise inside the objective (<code>normalize=ctx.preprocess.normalize</code>); bounding the
# normalised tensor to $[0,1]$ instead allows only a slice of the colours the network was
# trained on, and displaying it without undoing the normalisation shifts every colour.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: dead starts and
# saturation</p>
# <p>If the unit is zero (below the ReLU) for the starting image, its gradient is zero and
# nothing moves; a ReLU6 stuck at 6 has zero gradient too. Start from small random noise, try a
# few seeds, and watch the history: a flat objective from step 1 means no gradient, not an
# optimum.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: train mode</p>
# <p>In train mode batch norm normalises with the statistics of the one image being optimised,
# so the objective changes meaning (and the running statistics get overwritten). Optimise in
# eval mode; <code>maximize_activation</code> switches it on for the duration and restores the
# model's flags.</p></div>
#
# ## Exercises
#
# 1. Repeat the divergence plot with `lr=0.01` and `lr=0.2`. Predict the slope of the pixel
#    range from the learning rate before you run it.
# 2. Replace the mean objective by a single unit at the centre of a first-layer map. What does
#    the clamped optimum look like now, and how big is it? (Compare with the
#    [receptive field](02-receptive-fields.ipynb) of that unit.)
# 3. Optimise the same deep channel from five seeds. Which parts of the picture are stable
#    across seeds, and which are accidents of the start?
# 4. Find a photo patch that activates the channel of the last figure most
#    (`convlens.feature_maps` over a few images) and compare it with the optimised picture.
# 5. Maximise a class logit instead of a channel: pass the model's last `nn.Linear` as the
#    layer and the class index (`ctx.class_index("tabby")`) as the channel, with and without
#    the $L_2$ penalty, as in Simonyan et al. 2013.
