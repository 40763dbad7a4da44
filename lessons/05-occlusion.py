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
# # Occlusion sensitivity
#
# **Summary.** Hiding patches of the photo and watching the class score drop, the simplest explanation there is.
#
# **The question.** "The network says *tiger cat*. Which part of the picture is that answer
# based on?"
#
# The most direct experiment needs no gradient and no knowledge of the architecture: hide a
# part of the image and see whether the answer changes. Slide a square patch of constant colour
# over the photo; at each position, run the network and record how much the score of the class
# drops. Where hiding the pixels costs a lot of score, the network was relying on them; where
# nothing happens, it was not. Zeiler & Fergus (2014) used this to check that their network
# really looked at the dog's face rather than at the background, and the map it produces is a
# picture of the model's behaviour under a real change of the input (not a derivative, as in
# [saliency maps](06-saliency-and-smoothgrad.ipynb)).
#
# The price is computation: one forward pass per patch position. The two knobs, the window
# size and the stride, set what the map can resolve and what it costs; the fill colour sets
# what "hidden" means. With $M_{ij}$ the binary mask of the window at position $(i, j)$ and
# $f_c$ the logit of class $c$:
#
# $$ S(i, j) \;=\; f_c(x) \;-\; f_c\big(x \odot (1 - M_{ij}) + \text{fill}\cdot M_{ij}\big). $$
#
# $S > 0$: hiding the window lowers the score (evidence *for* $c$ was there). $S < 0$: hiding
# it *raises* the score (the window held something that argued against $c$).
#
# Paper: M. D. Zeiler and R. Fergus, *Visualizing and Understanding Convolutional Networks*,
# ECCV 2014 ([arXiv:1311.2901](https://arxiv.org/abs/1311.2901)), section 4.2.

# %%
import time

import matplotlib.pyplot as plt
import torch

from convlens import lesson
from convlens.occlusion import occlusion  # also convlens.occlusion

# Occluded copies per forward pass. On a GPU, big batches keep it busy; on a small CPU,
# large batches of 224-pixel images fall out of the caches, and a few per pass is fastest
# (measured on this course's 2-core build machine: about 4 per pass beats 64 by 2x).
BATCH = 64 if torch.cuda.is_available() else 4

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device)

x = ctx.image("chelsea")  # [1, 3, 224, 224], normalized
top = ctx.top_classes(x, k=3)
for label, p in top:
    print(f"  {p:6.1%}  {label}")
target = ctx.class_index(top[0][0])
with torch.no_grad():
    base_score = model(x)[0, target].item()
print(f"explaining {top[0][0]!r} (class {target}), logit {base_score:.2f}")

# %% [markdown]
# ## What the fill value means
#
# The model never sees pixels in $[0, 1]$: it sees the *normalized* input
# $(\text{pixel} - \mu)/\sigma$ per colour channel. The occlusion window is written into that
# normalized tensor, so `fill=0.0` does **not** paint the window black: it paints it the
# dataset's mean colour $\mu$ (mid-grey for this model, whose $\mu = 0.5$; a brownish grey
# $(124, 116, 104)$ for the usual ImageNet statistics). To get black you must fill with
# $-\mu/\sigma$, which differs per channel for ImageNet statistics (and `convlens.occlusion`
# takes one number, so we use the channel mean of it). The figure decodes each choice back to
# pixels.

# %%
pre = ctx.preprocess
black = pre.normalize(torch.zeros(3, 1, 1)).flatten()  # per channel
white = pre.normalize(torch.ones(3, 1, 1)).flatten()
fills = {"fill = 0 (mean colour)": 0.0,
         "fill = black": float(black.mean()),
         "fill = white": float(white.mean())}
print("black in normalized space, per channel:", [round(v, 3) for v in black.tolist()])
print("white in normalized space, per channel:", [round(v, 3) for v in white.tolist()])
print("mean colour as pixels (0-255):", [round(255 * m) for m in pre.mean])


def occlude(x, top, left, window, fill):
    """One occluded copy: the window at (top, left) set to ``fill`` (normalized space)."""
    copy = x.clone()
    copy[..., top:top + window, left:left + window] = fill
    return copy


pictures = [ctx.to_display(x)] + [ctx.to_display(occlude(x, 60, 40, 48, v)) for v in fills.values()]
fig, axes = plt.subplots(1, 4, figsize=(9.6, 2.9))
for ax, picture, title in zip(axes, pictures, ["original"] + list(fills)):
    ax.imshow(picture)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
with torch.no_grad():
    for ax, v in zip(axes[1:], fills.values()):
        drop = base_score - model(occlude(x, 60, 40, 48, v))[0, target].item()
        ax.text(4, 216, f"score drop {drop:+.2f}", color="white", fontsize=8,
                bbox=dict(facecolor="black", alpha=0.6, pad=2))
fig.tight_layout()
lesson.show(fig, f"One 48x48 occluder over the cat's eye with three fill values in normalized "
                 f"space, decoded to pixels; the drop of the {top[0][0]!r} logit is printed.")

# %% [markdown]
# ## The map
#
# `convlens.occlusion` builds all the occluded copies with broadcast masks, sends them through
# the model `batch_size` at a time under `torch.no_grad()`, and returns $S$ as a map of shape
# `[N, H', W']` with $H' = \lfloor (H - w)/s \rfloor + 1$ (window $w$, stride $s$). Cell
# $(i, j)$ of the map belongs to the window whose top-left corner is $(i s, j s)$; to overlay
# it on the photo we draw it centred on the window's centre, $s$ pixels per cell.

# %%
def draw_drop(ax, image, drop, window, stride, limit, title):
    """Overlay an occlusion map [H', W'] on the image, each cell centred on its window."""
    rows, cols = drop.shape
    left = top = window / 2 - stride / 2
    ax.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=1)
    im = ax.imshow(drop, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.7,
                   extent=(left, left + cols * stride, top + rows * stride, top))
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return im


start = time.perf_counter()
s = occlusion(model, x, target, window=32, stride=16, fill=0.0, batch_size=BATCH)  # [1, 13, 13]
print(f"map {tuple(s.shape)}, {s.numel()} forward passes, {time.perf_counter() - start:.1f} s; "
      f"largest drop {s.max().item():+.2f}, largest rise {s.min().item():+.2f}")

# %% [markdown]
# ## Window size
#
# The window must be large enough to hide something the network cares about: a 16-pixel
# square hides part of an eye, a 64-pixel square hides the whole eye and some fur around it.
# Small windows give sharp but weak maps (the network fills in a small hole from the context
# around it); large windows give strong but blurry maps. All three maps share one colour scale.

# %%
image = ctx.to_display(x)
maps = {w: s if w == 32 else occlusion(model, x, target, window=w, stride=16, batch_size=BATCH)  # s: above
        for w in (16, 32, 64)}
limit = max(m.abs().max().item() for m in maps.values())
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
for ax, (w, m) in zip(axes, maps.items()):
    im = draw_drop(ax, image, m[0].cpu().numpy(), w, 16, limit,
                   f"window {w}, stride 16 ({m.shape[1]}x{m.shape[2]})")
fig.colorbar(im, cax=axes[3], label="logit drop")
lesson.show(fig, f"Occlusion maps for {top[0][0]!r} with 16, 32 and 64-pixel windows at stride 16, "
                 "fill 0 (mean colour); red = hiding the window lowers the logit.")

# %% [markdown]
# ## Stride
#
# The stride sets the map's resolution and, squared, its cost: halving the stride gives four
# times as many positions. With a 32-pixel window, stride 32 tiles the image with no overlap
# (a 7×7 map), stride 8 gives a 25×25 map. The window, not the stride, decides how blurry the
# map is: a small stride only samples the same blurry function more densely.

# %%
strides = (32, 16, 8)
maps, seconds = {16: s}, {}  # window 32 at stride 16 is the map computed above
for st in strides:
    start = time.perf_counter()
    if st not in maps:
        maps[st] = occlusion(model, x, target, window=32, stride=st, batch_size=BATCH)
        seconds[st] = time.perf_counter() - start
        print(f"stride {st:2d}: map {maps[st].shape[1]}x{maps[st].shape[2]} = "
              f"{maps[st][0].numel():4d} forwards, {seconds[st]:5.1f} s")
limit = max(m.abs().max().item() for m in maps.values())
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
for ax, (st, m) in zip(axes, maps.items()):
    im = draw_drop(ax, image, m[0].cpu().numpy(), 32, st, limit,
                   f"window 32, stride {st} ({m.shape[1]}x{m.shape[2]})")
fig.colorbar(im, cax=axes[3], label="logit drop")
lesson.show(fig, f"Occlusion maps for {top[0][0]!r}, 32-pixel window at strides 32, 16 and 8, "
                 "fill 0 (mean colour).")

# %% [markdown]
# Window, stride and class together, for the most probable classes (every class is read from
# the same occluded forward passes):

# %%
from convlens import explore

x_explore = ctx.image("chelsea")
explore.occlusion_explorer(ctx.model, x_explore, ctx.to_display(x_explore), ctx.labels,
                           windows=(16, 32, 64), strides=(16, 32), top=3)

# %% [markdown]
# ## The cost: one forward pass per position
#
# The classic setting of the literature (a 32×32 mask moved by 2 pixels over a 224×224 image)
# needs
#
# $$ \Big(\frac{224 - 32}{2} + 1\Big)^2 = 97^2 = 9409 $$
#
# forward passes for one map of one class. We measure two ways of paying for them on the device
# this page was built on: a naive loop, one image per forward pass, and the library's batched
# version (`BATCH` occluded copies per forward pass: 64 on a GPU, 4 on a CPU), on the same
# positions; then we extrapolate to 9409.

# %%
def naive_occlusion(model, x, target, window, stride, fill=0.0, limit=None):
    """One forward pass per window position (the first ``limit`` positions)."""
    _, _, height, width = x.shape
    rows, cols = (height - window) // stride + 1, (width - window) // stride + 1
    drops = []
    with torch.no_grad():
        base = model(x)[0, target]
        for k in range(rows * cols if limit is None else limit):
            i, j = divmod(k, cols)
            occluded = occlude(x, i * stride, j * stride, window, fill)
            drops.append((base - model(occluded)[0, target]).item())
    return torch.tensor(drops)


positions = ((224 - 32) // 2 + 1) ** 2
print("positions for window 32, stride 2 on 224x224:", positions)

subset = 24
start = time.perf_counter()
naive = naive_occlusion(model, x, target, window=32, stride=8, limit=subset)
naive_per_forward = (time.perf_counter() - start) / (subset + 1)

batched = maps[8]  # the stride-8 map above: convlens.occlusion, BATCH copies per forward pass
batched_per_forward = seconds[8] / (batched.numel() + 1)

print("naive loop agrees with the library:",
      torch.allclose(naive, batched.flatten()[:subset].cpu(), atol=1e-4))
print(f"per forward pass on {ctx.device}: naive {1000 * naive_per_forward:.1f} ms, "
      f"batched {1000 * batched_per_forward:.1f} ms "
      f"(batched/naive speed ratio {naive_per_forward / batched_per_forward:.2f})")
print(f"extrapolated for {positions} positions: naive {positions * naive_per_forward:.0f} s, "
      f"batched {positions * batched_per_forward:.0f} s")

# %% [markdown]
# This is why the maps on this page use strides of 8 to 32 and not 2: the whole page is built
# on a small CPU in a few minutes, and stride 2 alone would take the time extrapolated above
# (for one class, one image). Nothing in the figures would change qualitatively: stride 2 only
# samples the same window-blurred function 16 times more densely than stride 8.
#
# **What batching buys.** A forward pass has a fixed cost (Python, dispatching a few hundred
# operators, reading the weights from memory) and a cost per image. One image per pass pays the
# fixed cost 9409 times; a batch of 64 pays it 148 times. On a GPU that fixed cost dominates and
# batching is everything. On a small CPU the arithmetic dominates and is the same either way, so
# the ratio above is close to 1; large batches can even be *slower* per image, because the
# activations of 64 images no longer fit in the caches (on our 2-core build machine,
# EfficientNet-Lite0 costs about 27 ms per image at batch 4 and 51 ms at batch 64). Treat
# `batch_size` as a knob to measure on your machine, not a constant.
#
# **What a GPU changes.** A GPU is starved by one small image: the kernels of a network this
# size finish in microseconds and launching them dominates. With batches of tens to hundreds of
# occluded copies the GPU runs at full occupancy, and thousands of forward passes of a small
# CNN take on the order of seconds rather than minutes. The batch size is then limited by GPU
# memory (`batch_size` × the activations of one image); under `torch.no_grad()` nothing is kept
# for a backward pass, so large batches fit. Run this lesson with `CONVLENS_DEVICE=cuda` to
# get the numbers for your GPU.
#
# Two further savings, not used here: evaluate several classes from the same forward passes
# (every occluded copy yields all 1000 logits), and use a coarse stride first, refining only
# where the map is large.

# %% [markdown]
# ## Fill value
#
# The map depends on what we put in the hole. A black or white patch is itself a strong
# pattern, with sharp edges the network was never trained to ignore; the mean colour is the
# most neutral constant in the model's input space, but no constant is truly "absent". Maps
# that agree across fills are the trustworthy part.

# %%
fill_maps = {name: (maps[16] if value == 0.0 else
                    occlusion(model, x, target, window=32, stride=16, fill=value,
                              batch_size=BATCH))
             for name, value in fills.items()}
limit = max(m.abs().max().item() for m in fill_maps.values())
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
for ax, (name, m) in zip(axes, fill_maps.items()):
    im = draw_drop(ax, image, m[0].cpu().numpy(), 32, 16, limit, name)
fig.colorbar(im, cax=axes[3], label="logit drop")
lesson.show(fig, f"Occlusion maps for {top[0][0]!r} (window 32, stride 16) with the window filled "
                 "with the mean colour, black and white.")

# %% [markdown]
# ## Two objects, two classes
#
# On a picture with a cat *and* a cup of coffee, the map for a cat class and the map for the
# espresso class should light up different halves. `convlens.occlusion` takes one target per
# example, so we stack two copies of the image with two targets and get both maps from one
# call. (The wide image is resized to 224×448 as a whole, so neither object is cropped.)

# %%
xc = ctx.image("cat_and_coffee", size=(224, 448))
with torch.no_grad():
    logits = model(xc)[0]


def best_of(names):
    """The class among ``names`` with the highest logit on the composite."""
    return max((ctx.class_index(n) for n in names), key=lambda c: logits[c].item())


cat, coffee = best_of(["tabby", "tiger cat", "Egyptian cat"]), best_of(["espresso", "cup"])
print("top classes of the composite:", [(n, f"{p:.1%}") for n, p in ctx.top_classes(xc, k=4)])
start = time.perf_counter()
both = occlusion(model, xc.repeat(2, 1, 1, 1), [cat, coffee], window=48, stride=24,
                 batch_size=BATCH)
print(f"two maps {tuple(both.shape)} in {time.perf_counter() - start:.1f} s")

composite = ctx.to_display(xc)
fig, axes = plt.subplots(1, 3, figsize=(10, 2.2), gridspec_kw={"width_ratios": [1, 1, 0.04]})
for ax, m, c in zip(axes, both, (cat, coffee)):
    scaled = (m / m.abs().max()).cpu().numpy()  # each map by its own largest |value|
    im = draw_drop(ax, composite, scaled, 48, 24, 1.0,
                   f"{ctx.labels[c]!r} (largest drop {m.max().item():.1f})")
fig.colorbar(im, cax=axes[2], label="drop / own max")
lesson.show(fig, f"Occlusion on the cat-and-coffee composite (window 48, stride 24, fill 0) for "
                 f"{ctx.labels[cat]!r} and {ctx.labels[coffee]!r}; each map scaled by its own "
                 "largest |value|.")

# %% [markdown]
# The cat class depends on the cat's face, the espresso class on the cup; each map is close to
# zero, or slightly negative, on the other object. Negative cells are worth a look: hiding the
# cup can *raise* the cat's logit, because the two classes compete for the same softmax and the
# network's features for the cup argue against "cat".

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: the fill value lives in normalized space</p>
# <p><code>fill=0</code> on a normalized tensor is the dataset's mean colour, not black; on a
# tensor in [0, 1] (before <code>Normalize</code>) it is black. Masking before normalizing and
# after normalizing are different experiments. Decide which colour you mean, then convert it
# with <code>(colour - mean) / std</code>.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: forgetting no_grad and batching</p>
# <p>A loop that calls the model once per position without <code>torch.no_grad()</code> stores
# every activation for a backward pass that never comes: memory grows and every pass is
# slower. Batch the occluded copies; on a GPU it is the difference between minutes and
# seconds.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: a misaligned overlay</p>
# <p>The map has $H'$ cells, not $H$: cell $(i, j)$ belongs to the window starting at
# $(is, js)$. Stretching the small map over the whole image (<code>extent=(0, W, H, 0)</code>)
# shifts everything by half a window towards the corners. Centre each cell on its window, or
# upsample with that offset.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: the uncovered border</p>
# <p>When $(H - w)$ is not a multiple of the stride, the last rows and columns are never
# occluded (a 48-pixel window at stride 24 on 224 pixels leaves 8 pixels). Choose window and
# stride so they tile the image, or pad.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: explaining the probability</p>
# <p>The softmax probability saturates: for a confident class, hiding half the object may not
# move it at all, and it moves when <em>other</em> classes change. Occlude the logit (as
# here), or report both.</p></div>

# %% [markdown]
# ## Exercises
#
# 1. Compute the occlusion map of your own image at window 32 and strides 16 and 8. Where do
#    the two maps disagree, and is the disagreement larger than the change you get by moving
#    the window by 4 pixels?
# 2. Instead of a constant, fill the window with a blurred copy of the image (or with noise of
#    the image's statistics). Do the maps agree with the mean-colour fill?
# 3. Modify `naive_occlusion` to return all 1000 logits per position, and draw the maps of the
#    top 3 classes from one set of forward passes. How much cheaper is it than 3 calls?
# 4. Find the smallest window for which the cat's map still has a clear maximum. Compare it
#    with the receptive field of the last convolutional layer ([receptive fields](02-receptive-fields.ipynb)).
# 5. On a GPU, time `occlusion` for batch sizes 1, 8, 64 and 256. Where does the speed-up stop?
