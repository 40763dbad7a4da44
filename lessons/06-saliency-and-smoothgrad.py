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
# **Summary.** The gradient of a class score with respect to the pixels, and how averaging over noisy copies cleans it up.
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
# Sensitivity is not the same thing as importance, and it is very local. A ReLU network is
# piecewise linear: its gradient is constant on tiny regions of input space and jumps from one
# region to the next, so the raw map is full of pixel-scale speckle. **SmoothGrad** (Smilkov
# et al. 2017) averages the gradient over many copies of the image with a little Gaussian noise
# added, which smooths out those jumps and leaves the structure that is stable in a
# neighbourhood of $x$.
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
#   (`plot.signed_to_rgb`). It shows that the gradient is a pattern of opposite-signed colour
#   edges, not a blob.
# - **magnitude**: Simonyan et al. take $\max_{\text{colour}} |g|$ per pixel
#   (`plot.heatmap(g)`, divided by its own maximum). A few extreme pixels then set the scale,
#   so practitioners usually clip at a high percentile (Smilkov et al. use the 99th) before
#   showing it.

# %%
image = ctx.to_display(x)
fig = plot.image_row(
    [image, plot.signed_to_rgb(g), plot.heatmap(g), plot.heatmap(g, percentile=99)],
    ["input", "signed gradient (grey = 0)", "max |g| over RGB", "max |g|, clipped at 99th pct"],
    cmap="gray", cell=2.2,
)
lesson.show(fig, f"Input gradient of the logit of {top[0][0]!r} for the cat photo: signed view and "
                 "two magnitude views.")

# %% [markdown]
# The photo is all cat, so "where is the cat" is not the question here; what strikes is the
# texture of the map per pixel: grainy, dotted with isolated bright pixels. Hold on to this
# picture; the rest of the lesson is about where the grain comes from and how to average it
# away.

# %% [markdown]
# ## Why the gradient is so noisy
#
# Smilkov et al. give a striking explanation: move the input along a straight line
# $x + t\,\varepsilon$, $t \in [0, 1]$, with $\varepsilon$ a tiny random perturbation (here
# $\sigma$ = 1% of the input's value range, invisible to a human), and look at the gradient with
# respect to a few fixed pixels as a function of $t$. The score itself changes smoothly; its
# partial derivatives do not: they jump around at a scale far below anything visible. The
# network's response is locally irregular (piecewise linear with a huge number of tiny pieces,
# because every ReLU/ReLU6 switching on or off starts a new piece), so the gradient at exactly
# $x$ is one sample of a quantity that fluctuates wildly in any neighbourhood of $x$.
#
# We compute all the gradients along the line in one batched call.

# %%
steps = 41
t = torch.linspace(0, 1, steps, device=ctx.device).view(-1, 1, 1, 1)
sigma_line = 0.01 * float(x.max() - x.min())
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
per_step_max = g_line.abs().flatten(1).amax(1).cpu().numpy()  # max entry of each gradient

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
ts = t.flatten().cpu().numpy()
axes[0].plot(ts, scores_line, color="black")
axes[0].set_title(f"logit of {top[0][0]!r}", fontsize=9)
axes[0].set_xlabel("t")
for ax, (name, (i, j)) in zip(axes[1:], pixels.items()):
    for ch, colour in enumerate(["tab:red", "tab:green", "tab:blue"]):
        ax.plot(ts, g_line[:, ch, i, j].cpu().numpy() / per_step_max, color=colour, lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(f"∂score/∂x at {name} ({i},{j})", fontsize=8)
    ax.set_xlabel("t")
axes[1].set_ylabel("fraction of max |gradient entry|", fontsize=8)
fig.tight_layout()
lesson.show(fig, f"Along x + t·ε (σ = 1% of the input range): the logit of {top[0][0]!r} varies "
                 "smoothly while the R, G, B partial derivatives at three pixels jump around.")

cos = torch.nn.functional.cosine_similarity(g_line[0].flatten(), g_line[-1].flatten(), dim=0)
print(f"logit at t=0: {scores_line[0]:.3f}, at t=1: {scores_line[-1]:.3f}")
print(f"cosine similarity of the gradient at t=0 and at t=1: {cos.item():.3f}")
lesson.record("line_cos", cos, ".2f")
_ = lesson.expect(bool(cos < 0.9), "the two gradients are only partly aligned (cosine well below 1)", cos)

# %% [markdown]
# Two inputs that no one could tell apart have gradients whose cosine similarity is only
# {{ line_cos }}. Whatever we read into the fine detail of a single gradient map is, to a large
# extent, an accident of where exactly $x$ sits among the network's linear pieces.

# %% [markdown]
# ## SmoothGrad: removing noise by adding noise
#
# Average the gradient over $N$ noisy copies $x + \varepsilon_n$. The noise level is given as a
# fraction of the input's value range, $\sigma = \text{noise}\cdot(\max x - \min x)$, computed
# per image in the space the model sees (here the normalized input). $\sigma$ is a **standard
# deviation**: `torch.randn(...) * sigma`, not `* sigma**2`. `convlens.smoothgrad` draws sample
# $m$'s noise $m$-th from the generator it is given, so we can do the same by hand: draw 32
# noise images, take the gradient at each noisy copy, and average the first $N$. The library's
# result for $N = 8$ is the same thing.

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


run = noisy_gradients(x, 32, 0.15, seeded(1))  # [32, 3, H, W]
by_hand = run[:8].mean(0, keepdim=True)
library = smoothgrad(model, x, target, samples=8, noise=0.15, generator=seeded(1))
gap = ((by_hand - library).abs().max() / library.abs().max()).item()
print(f"σ = {0.15 * (x.max() - x.min()).item():.3f} (input range {(x.max() - x.min()).item():.2f}); "
      f"by hand vs convlens.smoothgrad, N = 8: largest difference {gap:.1e} of the largest entry")
_ = lesson.expect(gap < 1e-4, "the library's SmoothGrad is the average by hand", gap)

# %% [markdown]
# Pixel by pixel, an average of $N$ gradients still carries Monte-Carlo noise of order
# $1/\sqrt{N}$ times the (large) spread of a single gradient. A common way to look past it is
# to average the magnitudes over small blocks. That is a display choice, not part of the
# method, and it also cleans up the *plain* gradient, so every comparison below shows both the
# gradient and SmoothGrad **the same way**: per pixel (top row) and averaged over 4×4-pixel
# blocks (bottom row), and every number is measured on both displays.

# %%
def coarse(picture, block=4):
    """Average a [H, W] magnitude map over block x block cells (display only)."""
    t = torch.as_tensor(picture)[None, None]
    return torch.nn.functional.avg_pool2d(t, block)[0, 0].numpy()


def rows_figure(maps, titles):
    """Top row: per-pixel maps; bottom row: the same maps averaged over 4x4 blocks."""
    fig, axes = plt.subplots(2, len(maps), figsize=(1.75 * len(maps), 3.8), squeeze=False)
    for col, (m, title) in enumerate(zip(maps, titles)):
        axes[0][col].imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
        c = coarse(m)
        axes[1][col].imshow(c, cmap="gray", vmin=0, vmax=c.max())
        axes[0][col].set_title(title, fontsize=9)
    axes[0][0].set_ylabel("per pixel", fontsize=9)
    axes[1][0].set_ylabel("4×4 blocks", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def both_scales(a, b):
    """Pearson's r of two magnitude maps, per pixel and over 4x4 blocks."""
    return plot.correlation(a, b), plot.correlation(coarse(a), coarse(b))


# %% [markdown]
# ### What SmoothGrad adds: a map that survives an invisible change of the input
#
# The line experiment showed that the gradient at $x$ and at $x + \varepsilon$ ($\sigma$ = 1 %
# of the range) differ. Do the same with SmoothGrad: the same 32 noise draws, added once to $x$
# and once to $x + \varepsilon$. The plain gradient's two maps correlate at {{ stab_grad_px }}
# per pixel and {{ stab_grad_blk }} in blocks; SmoothGrad's ($N = 32$) at {{ stab_sg_px }} and
# {{ stab_sg_blk }}. That stability is what the averaging buys, measured the same way for both.

# %%
shifted = x + eps  # the end of the line above: x + ε, σ = 1 % of the range
sg_x = plot.heatmap(run.mean(0), percentile=99)
sg_shifted = plot.heatmap(noisy_gradients(shifted, 32, 0.15, seeded(1)).mean(0), percentile=99)
grad_x, grad_shifted = plot.heatmap(g, percentile=99), plot.heatmap(g_line[-1], percentile=99)
stab_grad, stab_sg = both_scales(grad_x, grad_shifted), both_scales(sg_x, sg_shifted)
for name, value in zip(("stab_grad_px", "stab_grad_blk", "stab_sg_px", "stab_sg_blk"),
                       (*stab_grad, *stab_sg)):
    lesson.record(name, value, ".2f")
_ = lesson.expect(stab_sg[0] > stab_grad[0] and stab_sg[1] > stab_grad[1],
              "SmoothGrad's maps at x and x + ε agree better than the gradient's, on both displays",
              (round(stab_grad[0], 3), round(stab_grad[1], 3), round(stab_sg[0], 3), round(stab_sg[1], 3)))
fig = rows_figure([grad_x, grad_shifted, sg_x, sg_shifted],
                  ["gradient at x", "gradient at x + ε", "SmoothGrad at x", "at x + ε"])
lesson.show(fig, f"Gradient and SmoothGrad (N = 32, noise 0.15) of {top[0][0]!r} at x and at "
                 "x + ε (σ = 1 % of the range), max |g| over RGB clipped at the 99th percentile; "
                 "bottom row averaged over 4×4 blocks.")

# %% [markdown]
# ### The noise level
#
# Too little noise and the average is still the noisy gradient; too much and the copies are no
# longer pictures of a cat, so their gradients stop being about the cat. Smilkov et al. found
# 10–20 % of the range a good default. Below, every map uses 16 samples; the first column is
# the plain gradient (noise 0). The table measures how far each map has moved away from the
# plain gradient.

# %%
noise_levels = [0.05, 0.15, 0.3]
maps = [grad_x]
for level in noise_levels:
    grads = run[:16] if level == 0.15 else noisy_gradients(x, 16, level, seeded(2))
    maps.append(plot.heatmap(grads.mean(0), percentile=99))
fig = rows_figure(maps, ["gradient (noise 0)"] + [f"noise {v}" for v in noise_levels])
lesson.show(fig, f"SmoothGrad of {top[0][0]!r} with 16 samples at noise levels "
                 f"{', '.join(map(str, noise_levels))} (σ as a fraction of the input range); max "
                 "|g| over RGB, clipped at the 99th percentile; bottom row averaged over 4×4 blocks.")
away = [both_scales(m, grad_x) for m in maps[1:]]
_ = plot.table(["noise", "r with the gradient, per pixel", "r with the gradient, 4×4 blocks"],
               [[v, f"{a:.2f}", f"{b:.2f}"] for v, (a, b) in zip(noise_levels, away)])
lesson.record("away_low", away[0][0], ".2f")
lesson.record("away_high", away[-1][0], ".2f")
_ = lesson.expect(away[0][0] > away[-1][0] and away[0][1] > away[-1][1],
              "more noise takes the map further from the plain gradient", away)

# %% [markdown]
# At noise 0.05 the map is closest to the plain gradient (r = {{ away_low }} per pixel), at 0.3
# furthest from it (r = {{ away_high }}): the larger the noise, the wider the neighbourhood of
# the photo that the average describes.

# %% [markdown]
# ### The number of samples
#
# Each sample costs one forward and one backward pass, so $N$ is the price of the method. How
# many are enough? Compare SmoothGrad($N$), the average of the first $N$ of our 32 draws, with
# a reference made of 64 *other* draws, on both displays. The reference is itself an average
# with some noise left, so even a perfect SmoothGrad($N$) would not reach 1; the curve shows
# how fast the map approaches it.

# %%
reference = plot.heatmap(noisy_gradients(x, 64, 0.15, seeded(3)).mean(0), percentile=99)
sample_counts = [1, 2, 4, 8, 16, 32]
curve = [both_scales(grad_x, reference)]
curve += [both_scales(plot.heatmap(run[:n].mean(0), percentile=99), reference) for n in sample_counts]
_ = plot.table(["N", "r with the N = 64 reference, per pixel", "4×4 blocks"],
               [[n, f"{a:.2f}", f"{b:.2f}"] for n, (a, b) in zip(["0 (gradient)"] + sample_counts, curve)])
for n, (a, b) in zip([0, 1, 8, 32], [curve[0], curve[1], curve[4], curve[6]]):
    lesson.record(f"conv{n}_px", a, ".2f")
    lesson.record(f"conv{n}_blk", b, ".2f")
_ = lesson.expect(curve[1][0] < curve[4][0] < curve[6][0] and curve[1][1] < curve[4][1] < curve[6][1],
              "the correlation with the reference grows from N = 1 to 8 to 32, on both displays",
              [round(a, 2) for a, _ in curve])
_ = lesson.expect(curve[6][0] < 0.5, "per pixel, the map is far from converged at N = 32", curve[6][0])
fig, ax = plt.subplots(figsize=(4.4, 2.8))
ax.plot(sample_counts, [a for a, _ in curve[1:]], "o-", label="per pixel")
ax.plot(sample_counts, [b for _, b in curve[1:]], "s-", label="4×4 blocks")
ax.axhline(curve[0][0], color="tab:blue", ls=":", lw=1, label="plain gradient, per pixel")
ax.axhline(curve[0][1], color="tab:orange", ls=":", lw=1, label="plain gradient, blocks")
ax.set_xscale("log", base=2)
ax.set_xlabel("samples N")
ax.set_ylabel("r with N = 64 reference")
ax.set_ylim(0, 1)
ax.set_xticks(sample_counts, [str(n) for n in sample_counts])
ax.legend(fontsize=7, loc="upper left", ncol=2)
fig.tight_layout()
lesson.show(fig, f"Convergence of SmoothGrad of {top[0][0]!r} (noise 0.15): Pearson's r of "
                 "SmoothGrad(N) with an independent 64-sample reference, per pixel and over "
                 "4×4 blocks; dotted: the plain gradient.")

# %% [markdown]
# Per pixel, the correlation with the reference goes from {{ conv0_px }} for the plain gradient
# and {{ conv1_px }} for one sample to {{ conv8_px }} at $N = 8$ and {{ conv32_px }} at
# $N = 32$; over 4×4 blocks from {{ conv0_blk }} and {{ conv1_blk }} to {{ conv8_blk }} and
# {{ conv32_blk }}. Per pixel, the map is far from converged even at $N = 32$: its fine grain
# is still mostly Monte-Carlo noise. Blocks raise every number, the plain gradient's included
# (its stability above went from {{ stab_grad_px }} to {{ stab_grad_blk }}): compare methods on
# the same display, never a method on one display with another on a different one.

# %% [markdown]
# Both knobs at once, for the most probable class; the noise is seeded, so each map is the one
# `smoothgrad` returns for that setting:

# %%
from convlens_course import explore

x_explore = ctx.image("chelsea")
label_explore = ctx.top_classes(x_explore, k=1)[0][0]
explore.smoothgrad_explorer(ctx.model, x_explore, ctx.to_display(x_explore),
                            ctx.class_index(label_explore), noise=(0.05, 0.1, 0.2, 0.3),
                            samples=(1, 5, 20), label=label_explore, seed=ctx.seed)

# %% [markdown]
# Read the maps with the right question in mind: SmoothGrad says which pixels the score is
# sensitive to *on average over a small neighbourhood of this photo*. It is a steadier picture
# of the same quantity, not a new kind of explanation; it does not tell you that the network
# "uses" the stripes in a causal sense (for that, change the pixels and watch the score, as in
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
# batch's own statistics, so the 20 noisy copies in one SmoothGrad batch influence each
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
#    the partial derivatives stop jumping?
# 3. Replace the max over colour channels by the sum of $|g|$ and by the positive part of the
#    channel sum (`plot.heatmap(g, reduce=...)`). Which reduction hides what?
# 4. Repeat the convergence measurement for your own image and another noise level, and pick
#    the smallest $N$ you would trust. Does the answer change with the display?
# 5. Run the lesson with `CONVLENS_MODEL=resnet18` (if you have its weights). Are ResNet's raw
#    gradients noisier or smoother than EfficientNet-Lite0's?
