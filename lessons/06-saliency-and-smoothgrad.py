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
# # Saliency maps and SmoothGrad
#
# **Summary.** The gradient of a class score with respect to the pixels, and when averaging it over noisy copies (SmoothGrad) gives a steadier map.
#
# **The question.** "If I differentiate the class score with respect to the *input* instead of
# the weights, what does that picture tell me, and why does it look like television static?"
#
# A trained network is a function $f$ from an image to 1000 class scores. Near a given photo
# $x$, the first-order Taylor expansion $f_c(x + \delta) \approx f_c(x) + \nabla_x f_c(x)^\top
# \delta$ says how the score of class $c$ would move if we nudged each pixel a little. The
# gradient has one number per pixel and colour channel, so it can be drawn as an image of the
# same size as the photo: a **saliency map** (Erhan et al. 2009 used input gradients to look
# at units; Simonyan et al. 2013 turned them into class saliency maps). Pixels with a large
# $|\partial f_c / \partial x_i|$ are those the score is most *sensitive* to, right here.
#
# Sensitivity is not the same thing as importance, and it is very local. A network built from
# ReLUs (here ReLU6) is piecewise linear: its gradient is constant on small regions of input
# space and changes from one region to the next, so the map at $x$ is one sample of a quantity
# that varies across any neighbourhood of $x$. **SmoothGrad** (Smilkov et al. 2017) averages
# the gradient over many copies of the image with a little Gaussian noise added, to describe
# the neighbourhood rather than the point. Whether the average is the better picture depends
# on three choices, the noise level, the number of samples and the way the map is displayed:
# this lesson measures each of them on the course model.
#
# The one equation of this lesson, for a class score $f_c$ (a raw logit, not a probability):
#
# $$ M_c(x) \;=\; \nabla_x f_c(x), \qquad
#    \hat M_c(x) \;=\; \frac{1}{N}\sum_{n=1}^{N} \nabla_x f_c(x + \varepsilon_n),\quad
#    \varepsilon_n \sim \mathcal N(0, \sigma^2 I),\quad \sigma = \text{noise}\cdot(\max x - \min x). $$
#
# Papers: Erhan et al. 2009 (*Visualizing Higher-Layer Features of a Deep Network*, Université
# de Montréal tech. report 1341); Simonyan, Vedaldi & Zisserman 2013
# ([arXiv:1312.6034](https://arxiv.org/abs/1312.6034)); Smilkov et al. 2017
# ([arXiv:1706.03825](https://arxiv.org/abs/1706.03825)).

# %%
import matplotlib.pyplot as plt
import torch

import convlens
from convlens import plot
from convlens.saliency import gradient, smoothgrad  # also convlens.gradient, convlens.smoothgrad
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device)

x = ctx.image("chelsea")  # the cat photo, normalized, [1, 3, 224, 224]
top = ctx.top_classes(x, k=3)
for label, p in top:
    print(f"  {p:6.1%}  {label}")
target = ctx.class_index(top[0][0])  # explain the top class
print("explaining class", target, repr(top[0][0]))

# %% [markdown]
# ## The gradient with respect to the input
#
# Four lines of PyTorch do it: make the input a leaf that requires a gradient, run the model,
# pick the logit, and ask autograd for the derivative of that one number with respect to the
# input. We use `torch.autograd.grad`, which *returns* the gradients you ask for, rather than
# `score.backward()`, which *accumulates* a gradient into the `.grad` field of every parameter
# of the model (and of the input). With `.backward()` you would silently change the model's
# state (the next optimizer step, or the next call, sees those gradients unless someone zeroes
# them) and pay memory for 4 million parameter gradients you never look at.
#
# `convlens.gradient` is exactly this, batched (one target per example).

# %%
inp = x.detach().clone().requires_grad_(True)
score = model(inp)[0, target]
(g_manual,) = torch.autograd.grad(score, inp)  # a tuple: one gradient per input asked for

g = gradient(model, x, target)  # same thing, [1, 3, H, W], raw and signed
print("shape:", tuple(g.shape), "| same as the 4 lines:", torch.allclose(g, g_manual, atol=1e-6))
print("parameters with a .grad after all this:",
      sum(p.grad is not None for p in model.parameters()))

# %% [markdown]
# ## Drawing a gradient
#
# The gradient has three colour channels and a sign. Two common ways to look at it:
#
# - **signed, as colour**: map 0 to mid-grey and scale the three channels together
#   (`plot.signed_to_rgb`, here clipped at the 99th percentile of $|g|$ so that more than a
#   few extreme pixels show). It shows whether neighbouring pixels push the score in opposite
#   directions.
# - **magnitude**: Simonyan et al. take $\max_{\text{colour}} |g|$ per pixel
#   (`plot.heatmap(g)`, divided by its own maximum). A few extreme pixels then set the scale,
#   so practitioners usually clip at a high percentile (Smilkov et al. use the 99th) before
#   showing it.

# %%
image = ctx.to_display(x)
fig = plot.image_row(
    [image, plot.signed_to_rgb(g, percentile=99), plot.heatmap(g), plot.heatmap(g, percentile=99)],
    ["input", "signed gradient (grey = 0),\nclipped at 99th pct", "max |g| over RGB",
     "max |g|, clipped at 99th pct"],
    cmap="gray", cell=3.0,
)
lesson.show(fig, f"Input gradient of the logit of {top[0][0]!r} for the cat photo: signed view and "
                 "two magnitude views.")

# %% [markdown]
# The photo is all cat, so "where is the cat" is not the question here; what strikes is the
# texture of the map per pixel: grainy, dotted with isolated bright pixels, with the rims of
# the eyes and the nose standing out. Hold on to this picture; the rest of the lesson asks how
# much of its grain belongs to the photo and how much to the exact point $x$.

# %% [markdown]
# ## How much does the gradient change near $x$?
#
# Smilkov et al. look at the gradient along a straight line $x + t\,\varepsilon$,
# $t \in [0, 1]$, with $\varepsilon$ a tiny random perturbation (here $\sigma$ = 1% of the
# input's value range, invisible to a human). In their network the partial derivatives with
# respect to single pixels fluctuate sharply along such a line. We compute all the gradients
# along the line in one batched call and look at three pixels, and at the map as a whole: its
# cosine similarity with the map at $t = 0$.

# %%
steps = 41
t = torch.linspace(0, 1, steps, device=ctx.device).view(-1, 1, 1, 1)
line_noise = 0.01  # σ of the perturbation, as a fraction of the input's range
sigma_line = line_noise * float(x.max() - x.min())
eps = sigma_line * torch.randn(x.shape, generator=ctx.generator, device=ctx.device)
line = x + t * eps  # [steps, 3, H, W]
with torch.no_grad():
    scores_line = model(line)[:, target].cpu().numpy()
g_line = gradient(model, line, target)  # [steps, 3, H, W]

# three pixels: the most sensitive one at t=0, and two fixed points
_, _, H, W = x.shape
flat = g_line[0].abs().amax(0).flatten().argmax().item()
pixels = {"most sensitive pixel": divmod(flat, W), "centre": (H // 2, W // 2),
          "upper third": (H // 3, W // 2)}
per_step_max = g_line.abs().flatten(1).amax(1)  # max entry of each gradient
cos_line = torch.nn.functional.cosine_similarity(g_line.flatten(1), g_line[:1].flatten(1), dim=1)

fig, grid = plt.subplots(2, 3, figsize=(9.5, 5.4))
ts = t.flatten().cpu().numpy()
grid[0][0].plot(ts, scores_line, color="black")
grid[0][0].set_title(f"logit of {top[0][0]!r}", fontsize=9)
grid[0][1].plot(ts, cos_line.cpu().numpy(), color="black")
grid[0][1].set_ylim(0, 1.02)
grid[0][1].set_title("cosine of the whole map with t = 0", fontsize=9)
grid[0][2].axis("off")
curves = []
for ax, (name, (i, j)) in zip(grid[1], pixels.items()):
    for ch, colour in enumerate(["tab:red", "tab:green", "tab:blue"]):
        curve = g_line[:, ch, i, j] / per_step_max
        curves.append(curve)
        ax.plot(ts, curve.cpu().numpy(), color=colour, lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(f"∂score/∂x, {name} ({i},{j})", fontsize=9)
grid[1][0].set_ylabel("fraction of max |gradient entry|", fontsize=8)
for ax in grid.flat:
    ax.set_xlabel("t")
fig.tight_layout()
lesson.show(fig, f"Along x + t·ε (σ = 1% of the input range): the logit of {top[0][0]!r}, the R, G, "
                 "B partial derivatives at three pixels, and the cosine similarity of the whole "
                 "gradient with the gradient at t = 0.")

curves = torch.stack(curves)  # [9, steps], rows: pixel by pixel, R G B
flips = int(sum(bool((c > 0).any() and (c < 0).any()) for c in curves))
drift = float((curves.amax(1) - curves.amin(1)).max())
wobble = float((curves[:, 1:] - curves[:, :-1]).abs().max())
# the fixed pixel's curve (rows 3 to 8) that moves most: where it starts, peaks and ends
moved = 3 + int((curves[3:].amax(1) - curves[3:].amin(1)).argmax())
peak = float(curves[moved, curves[moved].abs().argmax()])
jump = (float(curves[moved, 0]), peak, float(curves[moved, -1]))
jump_where = (f"{['red', 'green', 'blue'][moved % 3]} partial derivative at the "
              f"{list(pixels)[moved // 3]} pixel")
print(f"logit at t=0: {scores_line[0]:.3f}, at t=1: {scores_line[-1]:.3f}")
print(f"curves that change sign: {flips} of {len(curves)}; largest drift {drift:.2f}, largest "
      f"step-to-step change {wobble:.2f} (fractions of the largest gradient entry)")
print(f"the {jump_where}: {jump[0]:.2f} at t=0, {jump[1]:.2f} at its extreme, {jump[2]:.2f} at t=1")
print(f"cosine with the map at t=0: {cos_line[steps // 4]:.3f} at t=0.25, "
      f"{cos_line[-1]:.3f} at t=1")
stats_x = convlens.saturation(model, x)
units_x = sum(st.units for st in stats_x.values())
off_share = sum(st.at_lower for st in stats_x.values()) / units_x
ceiling_share = sum(st.at_upper for st in stats_x.values()) / units_x
print(f"at x: {off_share:.0%} of the ReLU6 outputs are 0, {ceiling_share:.1%} are 6")
lesson.record("line_cos", cos_line[-1], ".2f")
lesson.record("line_cos_quarter", cos_line[steps // 4], ".2f")
lesson.record("line_sign", f"{flips} of the {len(curves)} curves " + ("changes" if flips == 1
                                                                     else "change") + " sign")
lesson.record("line_drift", drift, ".2f")
lesson.record("line_wobble", wobble, ".2f")
lesson.record("jump_where", jump_where)
for name, value in zip(("jump_start", "jump_peak", "jump_end"), jump):
    lesson.record(name, value, ".2f")
lesson.record("off_share", off_share, ".0%")
lesson.record("ceiling_share", ceiling_share, ".1%")
_ = lesson.expect(bool(cos_line[-1] < 0.9), "the two gradients are only partly aligned (cosine "
                  "well below 1)", cos_line[-1])

# %% [markdown]
# The partial derivatives at the three pixels wobble from step to step (by up to
# {{ line_wobble }} of that step's largest entry) and drift (by up to {{ line_drift }}; the most
# sensitive pixel's curve starts at 1 by its choice, so it can only fall), and
# {{ line_sign }}. The small ones can move by several times their own size: the
# {{ jump_where }} is {{ jump_start }} of the largest entry at $t = 0$, {{ jump_peak }} at its
# extreme and {{ jump_end }} at $t = 1$. The map as a whole moves too: its cosine similarity with the map at $t = 0$ is {{ line_cos_quarter }} a quarter
# of the way along and {{ line_cos }} at $t = 1$. Two inputs that no one could tell apart
# have gradients that are only partly aligned, so part of what we read into the fine detail of
# a single gradient map is an accident of where exactly $x$ sits. (The gradient passes only
# through units on the slope of their activation: at $x$, {{ off_share }} of the model's ReLU6
# outputs are off and {{ ceiling_share }} sit at the ceiling of 6, and both pass nothing back;
# the receptive-field lesson measures this over the photo pool.)

# %% [markdown]
# ## SmoothGrad by hand and by the library
#
# Average the gradient over $N$ noisy copies $x + \varepsilon_n$. The noise level is given as a
# fraction of the input's value range, $\sigma = \text{noise}\cdot(\max x - \min x)$, computed
# per image in the space the model sees (here the normalized input). $\sigma$ is a **standard
# deviation**: `torch.randn(...) * sigma`, not `* sigma**2`. `convlens.smoothgrad` draws sample
# $m$'s noise $m$-th from the generator it is given, so we can do the same by hand: draw 32
# noise images, take the gradient at each noisy copy, and average the first $N$. The library's
# result for $N = 8$ is the same thing. We do it at four noise levels, from 2% of the range to
# the 20% end of the 10–20% that Smilkov et al. recommend, with the same 32 noise images scaled
# to each level.

# %%
def seeded(offset):
    """A fresh generator on the lesson's device: the same seed gives the same noise."""
    return torch.Generator(device=ctx.device).manual_seed(ctx.seed + offset)


def noisy_gradients(x, samples, noise, generator, chunk=8):
    """The gradients at ``samples`` noisy copies of x, drawn as convlens.smoothgrad draws them."""
    sigma = noise * (x.max() - x.min())  # a standard deviation, in the normalized input space
    eps = torch.cat([torch.randn(x.shape, generator=generator, device=ctx.device)
                     for _ in range(samples)])  # [samples, 3, H, W]
    return torch.cat([gradient(model, x + sigma * eps[i:i + chunk], target)
                      for i in range(0, samples, chunk)])


noise_levels = [0.02, 0.05, 0.1, 0.2]
at_x = {v: noisy_gradients(x, 32, v, seeded(1)) for v in noise_levels}  # each [32, 3, H, W]
by_hand = at_x[0.02][:8].mean(0, keepdim=True)
library = smoothgrad(model, x, target, samples=8, noise=0.02, generator=seeded(1))
gap = ((by_hand - library).abs().max() / library.abs().max()).item()
print(f"σ at noise 0.02 = {0.02 * (x.max() - x.min()).item():.3f} (input range "
      f"{(x.max() - x.min()).item():.2f}); by hand vs convlens.smoothgrad, N = 8: largest "
      f"difference {gap:.1e} of the largest entry")
_ = lesson.expect(gap < 1e-4, "the library's SmoothGrad is the average by hand", gap)

# %% [markdown]
# ## Does the average give a steadier map?
#
# The line experiment gives a simple test (one that, as we note below, favours averaging). A map worth reading should not change much between
# $x$ and $x + \varepsilon$ (the end of the line, $\sigma$ = 1% of the range): compare the
# map at the two inputs, with Pearson's $r$ of the two pictures. For SmoothGrad the two maps
# must use **independent** noise draws: with the same draws at both inputs, the two averages
# share their Monte-Carlo noise and agree for that reason alone (a trap we measure below).
#
# The display matters as much as the method. Pixel by pixel, an average of $N$ gradients
# still carries Monte-Carlo noise of order $1/\sqrt{N}$ times the spread of a single
# gradient; averaging the magnitudes over small blocks looks past it, and it also steadies the
# plain gradient. So every map below is shown, and measured, the same two ways: per pixel
# ($\max_\text{colour}|g|$ clipped at the 99th percentile) and averaged over 4×4-pixel blocks.

# %%
def coarse(picture, block=4):
    """Average a [H, W] magnitude map over block x block cells (display only)."""
    t = torch.as_tensor(picture)[None, None]
    return torch.nn.functional.avg_pool2d(t, block)[0, 0].numpy()


def both_scales(a, b):
    """Pearson's r of two magnitude maps, per pixel and over 4x4 blocks."""
    return plot.correlation(a, b), plot.correlation(coarse(a), coarse(b))


def display(grads, n):
    """The per-pixel picture of SmoothGrad(N): the mean of the first n gradients."""
    return plot.heatmap(grads[:n].mean(0), percentile=99)


shifted = x + eps  # the end of the line above: x + ε, σ = 1 % of the range
at_shifted = {v: noisy_gradients(shifted, 32, v, seeded(2)) for v in noise_levels}  # independent
grad_x, grad_shifted = plot.heatmap(g, percentile=99), plot.heatmap(g_line[-1], percentile=99)
stab_grad = both_scales(grad_x, grad_shifted)
counts = [1, 2, 4, 8, 16, 32]
stab = {v: [both_scales(display(at_x[v], n), display(at_shifted[v], n)) for n in counts]
        for v in noise_levels}
away = {v: both_scales(display(at_x[v], 32), grad_x) for v in noise_levels}

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for k, (ax, label) in enumerate(zip(axes, ["per pixel", "4×4 blocks"])):
    for v in noise_levels:
        ax.plot(counts, [pair[k] for pair in stab[v]], "o-", ms=3, label=f"noise {v}")
    ax.axhline(stab_grad[k], color="black", ls=":", lw=1.2, label="plain gradient")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.set(xlabel="samples N", title=label, ylim=(0, 1))
axes[0].set_ylabel("r of the maps at x and x + ε")
axes[1].legend(fontsize=7, loc="lower right")
fig.tight_layout()
lesson.show(fig, f"Stability of SmoothGrad of {top[0][0]!r}: Pearson's r between the map at x and "
                 "the map at x + ε (σ = 1 % of the range), independent noise draws, against the "
                 "number of samples, per pixel (left) and over 4×4 blocks (right); dotted: the "
                 "plain gradient.")
rows = [["plain gradient", "–", f"{stab_grad[0]:.2f}", f"{stab_grad[1]:.2f}", "1", "1"]]
for v in noise_levels:
    rows.append([f"SmoothGrad, noise {v}", "8 / 32",
                 f"{stab[v][3][0]:.2f} / {stab[v][5][0]:.2f}",
                 f"{stab[v][3][1]:.2f} / {stab[v][5][1]:.2f}",
                 f"{away[v][0]:.2f}", f"{away[v][1]:.2f}"])
_ = plot.table(["map", "N", "r at x vs x + ε, per pixel", "4×4 blocks",
                "r with the gradient (N = 32), per pixel", "4×4 blocks"], rows)

low, high = noise_levels[0], noise_levels[-1]
lesson.record("stab_grad_px", stab_grad[0], ".2f")
lesson.record("stab_grad_blk", stab_grad[1], ".2f")
for v, tag in ((low, "low"), (0.05, "mid"), (0.1, "tenth"), (high, "high")):
    for n_index, n in ((3, 8), (5, 32)):
        lesson.record(f"stab_{tag}_{n}_px", stab[v][n_index][0], ".2f")
        lesson.record(f"stab_{tag}_{n}_blk", stab[v][n_index][1], ".2f")
    lesson.record(f"away_{tag}_px", away[v][0], ".2f")
lesson.record("stab_low_1_px", stab[low][0][0], ".2f")
lesson.record("stab_high_1_px", stab[high][0][0], ".2f")
lesson.record("high_blk_side", "above" if stab[high][5][1] > stab_grad[1] else "below")
margin = 0.05  # a difference in r we call clear on one photo and one draw
gains = [pair[0] - stab_grad[0] for pair in stab[low]]  # per pixel, N = 1, 2, 4, ...
clear = [n for k, n in enumerate(counts) if all(gain > margin for gain in gains[k:])]
level = [n for n, gain in zip(counts, gains) if abs(gain) <= margin]
lesson.record("low_steadier", ("" if not level else f"level with the gradient (within {margin} "
                                f"in $r$) at $N$ = {' and '.join(map(str, level))} and ")
              + f"steadier than it by more than {margin} in $r$ "
              + (f"from $N$ = {clear[0]} on" if clear else "at no $N$ up to 32"))
lesson.record("ratio_low", low / line_noise, ".0f")
lesson.record("ratio_high", high / line_noise, ".0f")
_ = lesson.expect(abs(away[low][0] - stab_grad[0]) < 0.1,
                  f"at noise {low} SmoothGrad is about as close to the gradient at x as the "
                  "gradient at x + ε is, per pixel", (away[low][0], stab_grad[0]))
_ = lesson.expect(stab[low][5][0] > stab_grad[0] + 0.1 and stab[low][5][1] > stab_grad[1] + 0.1,
                  f"at noise {low} and N = 32 SmoothGrad is steadier than the gradient on both "
                  "displays", (stab[low][5], stab_grad))
_ = lesson.expect(all(stab[v][5][0] < stab_grad[0] for v in (0.1, high))
                  and stab[high][3][0] < stab_grad[0] and stab[high][3][1] < stab_grad[1],
                  "per pixel, at noise 0.1 and 0.2 SmoothGrad with up to 32 samples is less steady "
                  "than the plain gradient, and at 0.2 with 8 samples on both displays",
                  {v: stab[v] for v in (0.1, high)})
_ = lesson.expect(away[low][0] > away[0.1][0] > away[high][0],
                  "the more noise, the further the map moves from the plain gradient", away)

# %% [markdown]
# The plain gradient's two maps correlate at {{ stab_grad_px }} per pixel and
# {{ stab_grad_blk }} over blocks: that dotted line is the bar SmoothGrad has to clear. Where
# it clears it depends on all three choices.
#
# - **Small noise helps.** At noise {{ low_noise }} (2% of the range) SmoothGrad is, per
#   pixel, {{ low_steadier }} (on this one photo and draw; a margin of a few hundredths is
#   within what another draw would move), and at $N = 32$ reaches
#   {{ stab_low_32_px }} per pixel and {{ stab_low_32_blk }} over blocks. It stays about as
#   close to the plain gradient at $x$ (r = {{ away_low_px }} per pixel) as the gradient at
#   $x + \varepsilon$ does ({{ stab_grad_px }}): as close as two plain gradients at
#   invisibly different inputs are to each other, and no closer (both are only partly
#   aligned).
# - **Large noise needs many samples and a coarse display.** The larger the noise, the more
#   the gradients of two noisy copies differ (with one sample per map, the two maps correlate
#   at {{ stab_low_1_px }} at noise {{ low_noise }} and {{ stab_high_1_px }} at 0.2), so the
#   average needs more samples to settle. At noise 0.2 with 8 samples it correlates at
#   {{ stab_high_8_px }} per pixel and {{ stab_high_8_blk }} over blocks, below the plain
#   gradient on both displays; with 32 it is {{ stab_high_32_px }} per pixel, still below, and
#   {{ stab_high_32_blk }} over blocks, {{ high_blk_side }} the gradient's
#   {{ stab_grad_blk }}. At noise 0.1 the per-pixel map is below the gradient too
#   ({{ stab_tenth_32_px }} at $N = 32$).
# - **Large noise also changes what the map is about.** Its correlation with the plain
#   gradient falls from {{ away_low_px }} at noise {{ low_noise }} to {{ away_tenth_px }} at 0.1
#   and {{ away_high_px }} at 0.2: the average describes the model over a neighbourhood whose
#   standard deviation is a fifth of the range, a different question from the gradient at
#   $x$, not a cleaner answer to the same one.
#
# One limit of this test: with enough samples it favours averaging, whatever the maps show. As
# $N$ grows, the maps at $x$ and at $x + \varepsilon$ tend to the gradients of the
# Gaussian-smoothed score at two points $\varepsilon$ apart ($\sigma$ is {{ ratio_low }} times
# the per-pixel standard deviation of $\varepsilon$ at noise {{ low_noise }} and
# {{ ratio_high }} times at {{ high_noise }}), and the larger $\sigma$, the more slowly that
# smoothed gradient changes from one point to the next, so the two limits come closer.
# Stability says a map is
# not Monte-Carlo noise; it does not say the map is right (lesson 9 tests that).
#
# The figure shows the two ends side by side, on the same displays.

# %%
lesson.record("low_noise", low)
maps = [grad_x, grad_shifted, display(at_x[low], 32), display(at_shifted[low], 32),
        display(at_x[high], 32), display(at_shifted[high], 32)]
titles = ["gradient at x", "gradient at x + ε", f"noise {low}, at x", f"noise {low}, x + ε",
          f"noise {high}, at x", f"noise {high}, x + ε"]
fig, axes = plt.subplots(2, len(maps), figsize=(1.75 * len(maps), 3.9), squeeze=False)
for col, (m, title) in enumerate(zip(maps, titles)):
    axes[0][col].imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
    c = coarse(m)
    axes[1][col].imshow(c, cmap="gray", vmin=0, vmax=c.max())
    axes[0][col].set_title(title, fontsize=8)
axes[0][0].set_ylabel("per pixel", fontsize=9)
axes[1][0].set_ylabel("4×4 blocks", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
lesson.show(fig, f"The gradient of {top[0][0]!r} and SmoothGrad (N = 32) at noise {low} and {high}, "
                 "each at x and at x + ε (σ = 1 % of the range) with independent noise draws; max "
                 "|g| over RGB clipped at the 99th percentile, bottom row averaged over 4×4 blocks.")

# %% [markdown]
# Read the pairs across. The gradient's two maps share the rims of the eyes and the nose, but
# pixel by pixel they correlate at only r = {{ stab_grad_px }}. At noise {{ low_noise }} the two SmoothGrad maps keep the same features and
# agree with each other more closely (r = {{ stab_low_32_px }} against {{ stab_grad_px }}).
# At noise {{ high_noise }} the picture is a different one, brighter around the eyes and
# grainy elsewhere, and its two maps agree less than the gradient's per pixel.

# %%
lesson.record("high_noise", high)
same_draws = both_scales(display(at_x[0.1], 8),
                         display(noisy_gradients(shifted, 8, 0.1, seeded(1)), 8))
lesson.record("same_draws_px", same_draws[0], ".2f")
lesson.record("same_draws_blk", same_draws[1], ".2f")
print(f"noise 0.1, N = 8, maps at x and x + ε: independent draws r = {stab[0.1][3][0]:.2f} per "
      f"pixel, {stab[0.1][3][1]:.2f} over blocks; the same draws r = {same_draws[0]:.2f}, "
      f"{same_draws[1]:.2f}")
_ = lesson.expect(same_draws[0] > stab[0.1][3][0] + 0.1,
                  "with the same noise draws at both inputs, SmoothGrad looks much steadier than "
                  "with independent ones", (same_draws, stab[0.1][3]))

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: the same noise for both
# maps</p><p>Compare SmoothGrad at two inputs with the <em>same</em> seeded noise and the two
# averages share their Monte-Carlo noise. At noise 0.1 and $N = 8$ the maps at $x$ and
# $x + \varepsilon$ then correlate at {{ same_draws_px }} per pixel, against
# {{ stab_tenth_8_px }} with independent draws: most of the agreement is the seed's, not the
# model's. Seed for reproducibility, but draw independently whenever you compare.</p></div>
#
# ## Over the photo pool
#
# One photo is one photo. The same test at noise {{ low_noise }}, on every photo of the photo
# pool (the {{ pool_n }} permissively licensed photos that ship with the course's packages,
# listed on the References page), explaining each photo's most probable class, with 16 samples
# per map and independent draws:

# %%
pool_rows, wins = [], {"px": 0, "blk": 0}
for k, photo in enumerate(convlens.images.photo_pool()):
    xp = convlens.images.prepare(photo.image, ctx.preprocess).to(ctx.device)
    with torch.no_grad():
        cp = int(model(xp).argmax())
    dp = 0.01 * (xp.max() - xp.min()) * torch.randn(xp.shape, generator=seeded(100 + k),
                                                      device=ctx.device)
    plain = both_scales(plot.heatmap(gradient(model, xp, cp), percentile=99),
                        plot.heatmap(gradient(model, xp + dp, cp), percentile=99))
    smooth = both_scales(
        plot.heatmap(smoothgrad(model, xp, cp, samples=16, noise=low, generator=seeded(200 + k)),
                     percentile=99),
        plot.heatmap(smoothgrad(model, xp + dp, cp, samples=16, noise=low,
                                generator=seeded(300 + k)), percentile=99))
    wins["px"] += smooth[0] > plain[0]
    wins["blk"] += smooth[1] > plain[1]
    pool_rows.append([photo.name, ctx.labels[cp], f"{plain[0]:.2f}", f"{smooth[0]:.2f}",
                      f"{plain[1]:.2f}", f"{smooth[1]:.2f}"])
_ = plot.table(["photo", "class", "gradient, per pixel", f"SmoothGrad {low}, per pixel",
                "gradient, blocks", "SmoothGrad, blocks"], pool_rows)
lesson.record("pool_n", len(pool_rows))
lesson.record("pool_wins_px", wins["px"])
lesson.record("pool_wins_blk", wins["blk"])
_ = lesson.expect(wins["px"] > 0.75 * len(pool_rows) and wins["blk"] > 0.75 * len(pool_rows),
                  f"at noise {low} with 16 samples SmoothGrad is steadier than the gradient on "
                  "most photos of the pool, on both displays", wins)

# %% [markdown]
# SmoothGrad at noise {{ low_noise }} with 16 samples is steadier than the plain gradient on
# {{ pool_wins_px }} of the {{ pool_n }} photos per pixel and on {{ pool_wins_blk }} over
# 4×4 blocks. On this model, then, SmoothGrad at small noise is steadier under an invisible
# shift of the input (which averaging tends to give by construction, as noted above), and on
# the cat photo it stays as close to the gradient as an invisible change of the input does. At the noise levels
# usually recommended (0.1 to 0.2), 32 samples were not enough on the cat photo for it to be
# as steady as the gradient pixel by pixel (its per-pixel r grows with N, in the table above;
# Smilkov et al.'s usual 50 or so samples were not tested here), and what it shows there is no
# longer the gradient's picture.
#
# Both knobs at once, for the most probable class; the noise is seeded, so each map is the one
# `smoothgrad` returns for that setting:

# %%
from convlens_course import explore

x_explore = ctx.image("chelsea")
label_explore = ctx.top_classes(x_explore, k=1)[0][0]
explore.smoothgrad_explorer(ctx.model, x_explore, ctx.to_display(x_explore),
                            ctx.class_index(label_explore), noise=(0.02, 0.1, 0.2),
                            samples=(1, 4, 16), label=label_explore, seed=ctx.seed)

# %% [markdown]
# Read the maps with the right question in mind: SmoothGrad averages the signed gradients, so
# it says which pixels the *noise-smoothed* score is sensitive to, over a neighbourhood of this
# photo as wide as the noise (a pixel whose gradient changes sign there cancels out). On the
# cat photo, at small noise it is a steadier picture that stays as close to the gradient at $x$
# as the gradient at an invisibly shifted input does (r = {{ away_low_px }} against
# {{ stab_grad_px }} per pixel); at large noise it is a picture of the model averaged over a
# wide neighbourhood, which barely correlates with the gradient at $x$ (r = {{ away_high_px }}
# at noise {{ high_noise }}). Neither tells you that the network
# "uses" a region in a causal sense (for that, change the pixels and watch the score, as in
# [occlusion](05-occlusion.ipynb)).

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: .backward() instead of autograd.grad</p>
# <p><code>score.backward()</code> adds into <code>.grad</code> of every parameter; call it
# twice and the gradients add up; forget <code>requires_grad_()</code> on the input and
# <code>x.grad</code> is <code>None</code>. <code>torch.autograd.grad(score, x)</code>
# returns exactly the one gradient you asked for and leaves the model untouched.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: train mode</p>
# <p>In <code>model.train()</code> dropout randomises the map and BatchNorm normalises with the
# batch's own statistics, so the noisy copies in one SmoothGrad batch influence each
# other's gradients. Explain a model in <code>eval()</code> mode.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: σ² for σ, and the wrong range</p>
# <p>SmoothGrad's noise is a standard deviation, a fraction of the input's range in the space
# the model sees (after normalisation). Writing <code>randn() * sigma**2</code>, or taking 15 %
# of 255 for a normalised input, gives a very different (usually far too small or far too
# large) noise level.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: explaining the softmax</p>
# <p>The gradient of a probability mixes in every other class
# ($\partial p_c/\partial x = p_c(\nabla f_c - \sum_k p_k \nabla f_k)$): a confident class has
# a tiny gradient, and part of the map is about the competitors. Explain the logit.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: reading magnitudes across pictures</p>
# <p><code>plot.heatmap</code> divides each map by its own maximum and we clip at a
# percentile: two maps side by side show where each is large, not which is larger. Compare raw
# values (<code>g.abs().max()</code>) when magnitude matters.</p></div>

# %% [markdown]
# ## Exercises
#
# 1. Compute the saliency map of a class that is *not* in the photo (say `"goldfish"`). Is it
#    visibly different from the top class's map? Compare the raw maxima of the two gradients.
# 2. Repeat the line experiment with $\sigma$ = 0.1 % and 10 % of the range. At which scale do
#    the partial derivatives start to change sign, and how fast does the cosine fall?
# 3. Replace the max over colour channels by the sum of $|g|$ and by the positive part of the
#    channel sum (`plot.heatmap(g, reduce=...)`). Which reduction hides what?
# 4. Repeat the stability measurement for your own image at noise 0.01 and 0.3, and pick the
#    smallest $N$ at which SmoothGrad is steadier than the gradient. Does the answer change
#    with the display (try 8×8 blocks)?
# 5. Run the lesson with `CONVLENS_MODEL=resnet18` (if you have its weights). Are ResNet's raw
#    gradients noisier or smoother than EfficientNet-Lite0's?
