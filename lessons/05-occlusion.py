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
# **The question.** "Which part of the image matters for this output?"
#
# The most direct experiment needs no gradient and no knowledge of the architecture: hide a
# part of the image and see whether the answer changes. Slide a square patch of constant colour
# over the photo; at each position, run the network and record how much the score of the class
# drops. Where hiding the pixels costs a lot of score, the network was relying on them; where
# nothing happens, that window alone was not needed: the evidence may be elsewhere, or spread
# over many windows (see "When the map is weak"). Zeiler & Fergus (2014) used this to check that their network
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
# $S > 0$: hiding the window lowers the score (evidence *for* $c$ was there). $S < 0$: the
# occluded image scores higher than the original, either because the window held evidence
# against $c$ or because the patch itself adds evidence for $c$; comparing fills helps tell
# these apart.
#
# Paper: M. D. Zeiler and R. Fergus, *Visualizing and Understanding Convolutional Networks*,
# ECCV 2014 ([arXiv:1311.2901](https://arxiv.org/abs/1311.2901)), section 4.2.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from convlens import plot
from convlens.occlusion_maps import occlusion, occlusion_plan  # also convlens.occlusion
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device)

# The astronaut photo holds two objects that are ImageNet classes: a helmet (lower right)
# and a model of the space shuttle (upper right).
x = ctx.image("astronaut")  # [1, 3, 224, 224], normalized
if tuple(x.shape[-2:]) != (224, 224):  # a model with another input size: the window
    x = ctx.image("astronaut", size=(224, 224))  # arithmetic below is worked out for 224
for label, p in ctx.top_classes(x, k=3):
    print(f"  {p:6.1%}  {label}")
helmet = ctx.class_index("football helmet", x)
shuttle = ctx.class_index("space shuttle", x)
with torch.no_grad():
    logits = model(x)[0]
for c in (helmet, shuttle):
    print(f"class {c} {ctx.labels[c]!r}: logit {logits[c].item():.2f}")


def tiles(size, window, stride):
    """True when windows ``stride`` apart cover the image edge to edge (no uncovered border)."""
    return (size - window) % stride == 0


# %% [markdown]
# ## What the fill value means
#
# The model never sees pixels in $[0, 1]$: it sees the *normalized* input
# $(\text{pixel} - \mu)/\sigma$ per colour channel. The occlusion window is written into that
# normalized tensor, so `fill=0.0` does **not** paint the window black: it paints it the
# colour $\mu$ that the normalisation subtracts, here {{ mean_colour }} in 0-255 pixel values
# (a dataset's mean colour for models normalised with dataset statistics, as torchvision's
# ImageNet models are; a model may also use a fixed $\mu$, such as 0.5, a mid-grey). To get black you
# must fill with $-\mu/\sigma$, which differs per channel when the statistics do (and
# `occlusion` takes one number, so we use the channel mean of it). The figure decodes
# each choice back to pixels, with the window over the helmet.

# %%
pre = ctx.preprocess
black = pre.normalize(torch.zeros(3, 1, 1)).flatten()  # per channel
white = pre.normalize(torch.ones(3, 1, 1)).flatten()
fills = {"fill = 0 (mean colour)": 0.0,
         "fill = black": float(black.mean()),
         "fill = white": float(white.mean())}
print("black in normalized space, per channel:", [round(v, 3) for v in black.tolist()])
print("white in normalized space, per channel:", [round(v, 3) for v in white.tolist()])
lesson.record("mean_colour", "(" + ", ".join(str(round(255 * m)) for m in pre.mean) + ")")


def occlude(x, top, left, window, fill):
    """One occluded copy: the window at (top, left) set to ``fill`` (normalized space)."""
    copy = x.clone()
    copy[..., top:top + window, left:left + window] = fill
    return copy


spot = (160, 160, 64)  # top, left, window: over the helmet
pictures = [ctx.to_display(x)] + [ctx.to_display(occlude(x, *spot, v)) for v in fills.values()]
fig, axes = plt.subplots(1, 4, figsize=(9.6, 2.9))
for ax, picture, title in zip(axes, pictures, ["original"] + list(fills)):
    ax.imshow(picture)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
with torch.no_grad():
    for ax, v in zip(axes[1:], fills.values()):
        drop = logits[helmet].item() - model(occlude(x, *spot, v))[0, helmet].item()
        ax.text(4, 18, f"drop {drop:+.2f}", color="white", fontsize=8,
                bbox=dict(facecolor="black", alpha=0.6, pad=2))
fig.tight_layout()
lesson.show(fig, f"One 64x64 occluder over the helmet with three fill values in normalized "
                 f"space, decoded to pixels; the drop of the {ctx.labels[helmet]!r} logit is "
                 "printed.")

# %% [markdown]
# ## The map, and what one forward pass costs
#
# `occlusion(model, x, target, window, stride)` returns $S$ as a map of shape
# `[N, H', W']` with $H' = \lfloor (H - w)/s \rfloor + 1$ (window $w$, stride $s$); with
# `target=None` it returns the maps of **every** class, `[N, classes, H', W']`, from the same
# forward passes (each occluded copy yields all the logits at once). Cell $(i, j)$ belongs to
# the window whose top-left corner is $(i s, j s)$; to overlay it on the photo we draw it
# centred on the window's centre, $s$ pixels per cell. With $w = 32$ and $s = 16$ the windows
# tile the 224-pixel image exactly, $(224 - 32)/16 = 12$.
#
# The lecture's maps use a 32×32 window at stride 2:
#
# $$ \Big(\frac{224 - 32}{2} + 1\Big)^2 = 97^2 = 9409 $$
#
# forward passes for one image. Before paying for that, we time two coarse maps (49 and 169
# positions) and extrapolate from the difference: on the machine that built this page the
# 169-position map took {{ coarse_seconds }}, and each extra position about
# {{ ms_per_position }}, so stride 2 would take about {{ predicted_stride2 }}.
# The lesson draws its main map at stride {{ main_stride }} on {{ main_device }} (stride 2 on
# a GPU, stride 4 on a CPU: a fixed rule, so that two builds on one machine draw the same
# picture). Predicted at
# {{ predicted_main }}, it took {{ main_seconds }}, {{ main_vs_predicted }} the prediction. An
# extrapolation from two small maps is a rough guide, not a measurement: on a machine shared
# with other jobs the time per position moves from one minute to the next, so check the ratio
# before trusting such an estimate.

# %%
MAIN_STRIDE = {"cuda": 2, "cpu": 4}  # by device type: a rule, never a timing
plan = occlusion_plan(model, x, window=32, stride=32)  # the positions timed in the cost section
print(f"window 32, stride 32: path {plan.path} ({plan.reason}); multiply-adds per copy: "
      f"{plan.recomputed_fraction:.0%} of a full pass")
lesson.record("recomputed", plan.recomputed_fraction, ".0%")

assert tiles(224, 32, 32) and tiles(224, 32, 16)
start = time.perf_counter()
probe = occlusion(model, x, None, window=32, stride=32)  # [1, classes, 7, 7]
probe_s = time.perf_counter() - start
start = time.perf_counter()
coarse = occlusion(model, x, None, window=32, stride=16)  # [1, classes, 13, 13]
coarse_s = time.perf_counter() - start
# the cost of one more position, without the fixed cost of a call (tracing, self-check)
per_position = max((coarse_s - probe_s) / (169 - 49), coarse_s / 169 / 4)
lesson.record("coarse_seconds", coarse_s, "{:.1f} s", timing=True)
lesson.record("ms_per_position", 1000 * per_position, "{:.0f} ms", timing=True)
lesson.record("predicted_stride2", 9409 * per_position, "{:.0f} s", timing=True)

main_stride = MAIN_STRIDE.get(x.device.type, 4)
lesson.record("main_device", "a GPU" if x.device.type == "cuda" else "this machine's CPU")
assert tiles(224, 32, main_stride)
start = time.perf_counter()
main = coarse if main_stride == 16 else occlusion(model, x, None, window=32,
                                                           stride=main_stride)
main_s = coarse_s if main_stride == 16 else time.perf_counter() - start
predicted_main = ((224 - 32) // main_stride + 1) ** 2 * per_position
lesson.record("predicted_main", predicted_main, "{:.0f} s", timing=True)
lesson.record("main_vs_predicted", main_s / predicted_main, "{:.1f}×", timing=True)
lesson.record("main_stride", main_stride)
lesson.record("main_positions", main[0, 0].numel())
lesson.record("main_seconds", main_s, "{:.0f} s", timing=True)
print(f"main map: stride {main_stride}, {tuple(main.shape)}, {main_s:.1f} s")


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


image = ctx.to_display(x)
pair = main[0, [helmet, shuttle]]  # two classes from the same passes, [2, H', W']
limit = pair[0].abs().max().item()  # the helmet's scale, kept for the stride figure
fig, axes = plt.subplots(1, 6, figsize=(11, 2.8),  # axes[3]: room for the first colour bar
                         gridspec_kw={"width_ratios": [1, 1, 0.06, 0.2, 1, 0.06]})
axes[0].imshow(image)
axes[0].set_title("input", fontsize=9)
axes[0].axis("off")
axes[3].axis("off")
for ax, cax, m, c in zip(axes[[1, 4]], axes[[2, 5]], pair, (helmet, shuttle)):
    im = draw_drop(ax, image, m.cpu().numpy(), 32, main_stride, m.abs().max().item(),
                   f"{ctx.labels[c]!r}, max drop {m.max().item():.2f}")
    fig.colorbar(im, cax=cax, label="logit drop")
lesson.show(fig, f"Occlusion maps (window 32, stride {main_stride}, fill 0 = mean colour) for "
                 f"{ctx.labels[helmet]!r} and {ctx.labels[shuttle]!r}, both from the same "
                 "forward passes, each on its own colour scale (the shuttle's spans "
                 f"±{pair[1].abs().max().item():.2f}, the helmet's ±{limit:.2f}); red = hiding "
                 "the window lowers the logit.")

lesson.record("shuttle_prob", torch.softmax(logits, 0)[shuttle], ".2%")
lesson.record("shuttle_rise", -pair[1].min(), ".2f")
lesson.record("shuttle_rise_note", (
    "larger than it. A map whose largest drop is no larger than its largest rise cannot be "
    "trusted to locate the shuttle, wherever that drop falls. Both maps came out of one set of "
    "forward passes; only the helmet's is strong enough to read.")
    if -pair[1].min() > pair[1].max() else "below it. The two maps put their largest drops in "
    "different quarters of the photo, and both came out of one set of forward passes.")
rows, cols = pair.shape[1:]
for name, c, m, want in (("helmet", helmet, pair[0], (True, True)),
                         ("shuttle", shuttle, pair[1], (False, True))):
    i, j = divmod(int(m.flatten().argmax()), cols)
    lesson.record(f"{name}_drop", m.max(), ".2f")
    where = (i >= rows // 2, j >= cols // 2)  # (lower half, right half)
    lesson.expect(where == want, f"the largest drop for {ctx.labels[c]!r} lies on the "
                  f"{name} ({'lower' if want[0] else 'upper'} right quarter)", (i, j))

# %% [markdown]
# Hiding the helmet costs the *football helmet* logit up to {{ helmet_drop }}, and the
# largest drop lies in the lower-right quarter, where the helmet is. The model gives *space
# shuttle* little weight here (probability {{ shuttle_prob }}). Its largest drop,
# {{ shuttle_drop }}, lies in the upper-right quarter, the quarter that holds the model
# shuttle, but that quarter also holds hair and background, and the map's largest rise
# ({{ shuttle_rise }}, a window whose hiding *raises* the logit) is {{ shuttle_rise_note }}
#
# ## Stride
#
# The stride sets the map's resolution and, squared, its cost: halving the stride gives about
# four times as many positions. It does not change *what* is measured: when a coarse stride is a
# multiple of a fine one, the map at the coarse stride is a subsample of the map at the fine
# stride (the same windows, fewer of them), so coarse maps need not be computed again: every
# stride below is a multiple of {{ main_stride }}. We take them
# from the main map and check the stride-16 one against its own call above.

# %%
strides = {2: [32, 8, 2], 4: [32, 8, 4], 8: [32, 16, 8], 16: [32, 16]}[main_stride]
assert all(s % main_stride == 0 for s in strides)  # what makes a coarse map a subsample
sub = {s: main[0, helmet, ::s // main_stride, ::s // main_stride] for s in strides}
gap = (main[0, helmet, ::16 // main_stride, ::16 // main_stride] - coarse[0, helmet]).abs().max()
lesson.expect(bool(gap <= 1e-3), "the stride-16 map is a sample of the finer map", gap)
print(f"stride-16 map from its own call vs taken from the main map: max |difference| {gap:.1e}")

fig, axes = plt.subplots(1, len(strides) + 1, figsize=(2.5 * len(strides) + 0.5, 2.8),
                         gridspec_kw={"width_ratios": [1] * len(strides) + [0.06]})
for ax, (s, m) in zip(axes, sub.items()):
    im = draw_drop(ax, image, m.cpu().numpy(), 32, s, limit,
                   f"stride {s}: {m.numel()} passes")
fig.colorbar(im, cax=axes[-1], label="logit drop")
lesson.show(fig, f"Occlusion maps for {ctx.labels[helmet]!r}, 32-pixel window at strides "
                 f"{', '.join(map(str, strides))} (coarser maps are samples of the finest).")

# %% [markdown]
# ## Window size
#
# The window must be large enough to hide something the network cares about: a 16-pixel
# square hides a piece of the helmet, a 64-pixel square hides most of it. Here the largest drop grows with the window: {{ drop_w16 }},
# {{ drop_w32 }} and {{ drop_w64 }} for windows of 16, 32 and 64 pixels. The 64-pixel map also
# spreads its drop over a wider area: {{ wide_w64 }} of its cells drop by more than half its
# largest drop, against {{ wide_w16 }} for the 16-pixel map. All three maps share one colour
# scale, and each window tiles the image at stride 16, so the cells are drawn the same size
# (16 pixels) in all three.

# %%
windows = {}
for w in (16, 32, 64):
    assert tiles(224, w, 16)
    windows[w] = coarse[0, helmet] if w == 32 else occlusion(
        model, x, helmet, window=w, stride=16)[0]
    lesson.record(f"drop_w{w}", windows[w].max(), ".2f")
    lesson.record(f"wide_w{w}", int((windows[w] > windows[w].max() / 2).sum()))
lesson.expect(bool(windows[16].max() < windows[32].max() < windows[64].max()),
              "larger windows give larger drops", [round(m.max().item(), 2) for m in windows.values()])
wide = [int((m > m.max() / 2).sum()) for m in windows.values()]
lesson.expect(wide[2] > wide[0], "the 64-pixel map has more cells above half its largest drop "
              "than the 16-pixel map", wide)
limit = max(m.abs().max().item() for m in windows.values())
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
for ax, (w, m) in zip(axes, windows.items()):
    im = draw_drop(ax, image, m.cpu().numpy(), w, 16, limit,
                   f"window {w}, stride 16 ({m.shape[0]}x{m.shape[1]})")
fig.colorbar(im, cax=axes[3], label="logit drop")
lesson.show(fig, f"Occlusion maps for {ctx.labels[helmet]!r} with 16, 32 and 64-pixel windows at "
                 "stride 16, fill 0 (mean colour); red = hiding the window lowers the logit.")

# %% [markdown]
# Window, stride and class together, for the most probable classes of this photo (every class
# is read from the same occluded forward passes). The explorer offers only pairs that tile the
# image: a 16-pixel window at stride 32 would hide a quarter of the photo and still paint
# every cell of the map, so windows of 32 and 64 pixels at strides 16 and 32:

# %%
from convlens_course import explore

explore.occlusion_explorer(ctx.model, x, ctx.to_display(x), ctx.labels,
                           windows=(32, 64), strides=(16, 32), top=3)

# %% [markdown]
# ## Fill value
#
# The map depends on what we put in the hole. Any constant patch is itself a pattern, with
# sharp edges the network was never trained to ignore. For this model fill 0 is the colour
# {{ mean_colour }} (its normalisation's mean), a common choice, but no constant is truly
# "absent". Maps that agree across fills are the trustworthy part. Here the black-filled map correlates with
# the mean-colour one at {{ corr_black }} and the white-filled one at {{ corr_white }}
# (Pearson's r over the cells; stride 32 here, to save time).

# %%
fill_maps = {name: (probe[0, helmet] if value == 0.0 else
                    occlusion(model, x, helmet, window=32, stride=32, fill=value)[0])
             for name, value in fills.items()}
reference = fill_maps["fill = 0 (mean colour)"]
lesson.record("corr_black", plot.correlation(fill_maps["fill = black"], reference), ".2f")
lesson.record("corr_white", plot.correlation(fill_maps["fill = white"], reference), ".2f")
limit = max(m.abs().max().item() for m in fill_maps.values())
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
for ax, (name, m) in zip(axes, fill_maps.items()):
    im = draw_drop(ax, image, m.cpu().numpy(), 32, 32, limit, name)
fig.colorbar(im, cax=axes[3], label="logit drop")
lesson.show(fig, f"Occlusion maps for {ctx.labels[helmet]!r} (window 32, stride 32) with the "
                 "window filled with the mean colour, black and white.")

# %% [markdown]
# ## When the map is weak
#
# Occlusion answers "which *one* patch matters", and sometimes none matters much. On this
# close-up of a cat no single 32-pixel window (stride 16) lowers the {{ cat_name }} logit,
# the top class, by more than {{ cat_drop }}, while hiding some windows
# raises it by up to {{ cat_rise }}. Is a drop of {{ cat_drop }} much? Its share of the
# logit says nothing: the softmax ignores a constant added to all the logits of an image, so
# a logit has no natural zero to measure against. The class's log-probability has no such
# freedom. The window that lowers it most takes the {{ cat_name }} probability from
# {{ cat_p }} to {{ cat_p_min }}; for the helmet, at the same window and stride, the best
# window takes it from {{ helmet_p }} to {{ helmet_p_min }}. A map whose best window moves
# the prediction this little says little, however colourful its colour scale makes it look:
# read the numbers before the picture.

# %%
xcat = ctx.image("chelsea")
with torch.no_grad():
    cat_logits = model(xcat)[0]
cat_class = int(cat_logits.argmax())
cat_all = occlusion(model, xcat, None, window=32, stride=16)[0]  # every class, [C, 13, 13]
cat_map = cat_all[cat_class]
lesson.record("cat_name", repr(ctx.labels[cat_class]))
lesson.record("cat_drop", cat_map.max(), ".2f")
lesson.record("cat_rise", -cat_map.min(), ".2f")


def logprob_drop(base, drops):
    """Drop of every class's log-softmax at every position, from the logit drops [C, H', W']."""
    occluded = base[:, None, None] - drops  # the logits of each occluded copy
    return drops - torch.logsumexp(base, 0) + torch.logsumexp(occluded, 0)


def record_probability(name, base, drops, c):
    """Record class c's probability before occlusion and after its most damaging window."""
    worst = logprob_drop(base, drops)[c].max()
    p = torch.softmax(base, 0)[c]
    lesson.record(f"{name}_p", p, ".1%")
    lesson.record(f"{name}_p_min", p * torch.exp(-worst), ".1%")
    return worst.item()


cat_lp = record_probability("cat", cat_logits, cat_all, cat_class)
cat_p = torch.softmax(cat_logits, 0)[cat_class].item()
helmet_lp = record_probability("helmet", logits, coarse[0], helmet)  # stride 16, as the cat's
lesson.expect(cat_lp < helmet_lp / 4, "on the cat photo the best window lowers the top "
              "class's log-probability by under a quarter of the helmet's", (cat_lp, helmet_lp))
lesson.expect(bool(cat_map.min() < 0), "on the cat photo some windows raise the logit",
              cat_map.min())

fig, axes = plt.subplots(1, 3, figsize=(7.4, 2.8), gridspec_kw={"width_ratios": [1, 1, 0.06]})
axes[0].imshow(ctx.to_display(xcat))
axes[0].set_title("input", fontsize=9)
axes[0].axis("off")
cat_limit = cat_map.abs().max().item()
im = draw_drop(axes[1], ctx.to_display(xcat), cat_map.cpu().numpy(), 32, 16, cat_limit,
               f"{ctx.labels[cat_class]!r}: max drop {cat_map.max().item():.2f}\n"
               f"p {cat_p:.1%} → {cat_p * math.exp(-cat_lp):.1%} (best window)")
fig.colorbar(im, cax=axes[2], label="logit drop")
lesson.show(fig, f"Occlusion for {ctx.labels[cat_class]!r} on the cat photo (window 32, stride "
                 "16), on its own colour scale: the colours are strong, the change in the "
                 "class's probability is not.")

# %% [markdown]
# ## Two objects, two classes
#
# On a picture with the cat *and* a cup of coffee, a cat class and the espresso class should
# depend on different halves. Do their maps show it?
# One call with `target=None` gives both maps (the wide image is resized to 224×448 as a whole,
# so neither object is cropped; a 64-pixel window at stride 32 tiles it). The espresso map puts
# {{ coffee_right }} of its positive drop on the right (coffee) half, and the window that
# lowers its log-probability most takes the espresso probability from {{ coffee_p }} to
# {{ coffee_p_min }}. The {{ cat2_name }} map puts {{ cat_left }} of its positive drop on the
# cat's half, and its most damaging window takes that class from {{ cat2_p }} to
# {{ cat2_p_min }}. (The middle column of windows straddles the two halves and counts for
# neither.) {{ composite_reading }}

# %%
xc = ctx.image("cat_and_coffee", size=(224, 448))
with torch.no_grad():
    composite_logits = model(xc)[0]
cat_names = [n for n in ("tiger cat", "tabby", "Egyptian cat") if n in ctx.labels]
cat = (max((ctx.labels.index(n) for n in cat_names), key=lambda c: composite_logits[c].item())
       if cat_names else ctx.class_index("tiger cat", xc))
coffee = ctx.class_index("espresso", xc)
print("top classes of the composite:", [(n, f"{p:.1%}") for n, p in ctx.top_classes(xc, k=4)])
assert tiles(224, 64, 32) and tiles(448, 64, 32)
every_class = occlusion(model, xc, None, window=64, stride=32)[0]  # [C, 6, 13]
both = every_class[[cat, coffee]]


def half_share(m, side):
    """Fraction of a map's positive drop whose window centres lie in the left or right half
    of the image (the middle column, centred on the dividing line, counts for neither)."""
    positive = m.clamp(min=0)
    centres = 64 / 2 + 32 * torch.arange(m.shape[1], device=m.device)
    inside = centres < 224 if side == "left" else centres > 224
    return (positive[:, inside].sum() / positive.sum().clamp(min=1e-12)).item()


cat_left, coffee_right = half_share(both[0], "left"), half_share(both[1], "right")
lesson.record("cat_left", cat_left, ".0%")
lesson.record("coffee_right", coffee_right, ".0%")
lesson.record("cat2_name", repr(ctx.labels[cat]))
coffee_lp = record_probability("coffee", composite_logits, every_class, coffee)
cat2_lp = record_probability("cat2", composite_logits, every_class, cat)
# an evenly spread map puts on each half its share of the window columns (6 of 13 here)
chance = sum(1 for k in range(both.shape[2]) if 64 / 2 + 32 * k < 224) / both.shape[2]
own_half = {"espresso": coffee_right, ctx.labels[cat]: cat_left}
weaker, stronger = ((ctx.labels[cat], "espresso") if cat2_lp < coffee_lp
                    else ("espresso", ctx.labels[cat]))


def half_verdict(name, share):
    """One map's verdict: its share of positive drop on its own half against chance."""
    if share >= 0.8:
        return f"the {name!r} map clearly falls on its own half"
    if share > chance:
        return f"the {name!r} map only leans toward its own half"
    return f"the {name!r} map does not favour its own half"


reading = (f"An evenly spread map would put {chance:.0%} on either half, so "
           + " and ".join(half_verdict(n, share) for n, share in own_half.items()) + ". ")
lesson.record("composite_reading", reading + f"The {weaker!r} map is the weaker of the two: "
              f"its best window lowers its log-probability less than the {stronger!r} map's "
              "best window lowers the other's, and a weak map says little (the section above).")
half = both.shape[2] // 2  # the columns whose windows lie in the cat's half (6 of 13)
lesson.record("coffee_on_cat", -both[1][:, :half].min(), ".2f")
lesson.record("coffee_raised_cells", int((both[1][:, :half] < 0).sum()))
lesson.record("cat_half_cells", both[1][:, :half].numel())
lesson.expect(bool(both[1][:, :half].min() < 0), "hiding parts of the cat raises the espresso "
              "logit", both[1][:, :half].min())

composite = ctx.to_display(xc)
fig, axes = plt.subplots(1, 3, figsize=(10, 2.2), gridspec_kw={"width_ratios": [1, 1, 0.04]})
for ax, m, c in zip(axes, both, (cat, coffee)):
    scaled = (m / m.abs().max()).cpu().numpy()  # each map by its own largest |value|
    im = draw_drop(ax, composite, scaled, 64, 32, 1.0,
                   f"{ctx.labels[c]!r} (largest drop {m.max().item():.2f})")
fig.colorbar(im, cax=axes[2], label="drop / own max")
lesson.show(fig, f"Occlusion on the cat-and-coffee composite (window 64, stride 32, fill 0) for "
                 f"{ctx.labels[cat]!r} and {ctx.labels[coffee]!r}, from the same passes; each "
                 "map scaled by its own largest |value|, which makes both look equally strong "
                 "(the trap below): read the largest drops in the titles.")

# %% [markdown]
# Negative cells are worth a look: hiding some parts of the cat *raises* the espresso logit
# ({{ coffee_raised_cells }} of the {{ cat_half_cells }} cells of the cat's half, by up to
# {{ coffee_on_cat }} in the most negative one). Occluding these windows with the mean colour
# raises the espresso logit itself, not only its probability; whether because of what is
# hidden or because of the patch itself, one fill cannot tell. On one image and a coarse grid that is an
# observation about these cells, not a rule about cats and cups.
#
# ## The cost: three ways to pay for the passes
#
# What does one occluded forward pass cost? We time three exact ways of computing the same
# drops, on the same 49 positions (window 32 at stride 32 on the astronaut, the helmet class):
#
# - a **naive loop**, one occluded image per forward pass, the whole network each time;
# - **batched** full passes (`method="batched"`): many occluded copies per forward pass;
# - **incremental** inference (`method="incremental"`, the default where the model allows it;
#   Nakandala, Kumar & Papakonstantinou, SIGMOD 2019): an occluded copy differs from the photo
#   only inside the window, and a convolution's output differs only inside the window's
#   *projective field*, so each layer recomputes only that rectangle, on top of the
#   activations of the unoccluded photo, until it covers most of the map. A window near an
#   edge has part of its projective field cut off by the edge, so the library plans the
#   positions in blocks at about the same distance from the edges and sizes each block's
#   rectangles for its own positions.
#
# On the machine that built this page, per position: naive {{ naive_ms }}, batched
# {{ batched_ms }}, incremental {{ incremental_ms }}, so batched took {{ batched_ratio }} and
# incremental {{ incremental_ratio }} of the naive loop's time. Each library call's time
# includes its fixed cost (copying the model and, for the incremental path, tracing and
# checking it), which 49 positions share; on the {{ main_positions }} positions of the main
# map above the incremental path took {{ main_ms }} per position. Timings on a shared machine
# vary from run to run, and even from cell to cell of one build when other jobs start and
# stop: compare methods in one process, on the same positions, before you trust a ratio. All
# three agree to {{ agreement }}.

# %%
def naive_occlusion(model, x, target, window, stride, fill=0.0):
    """One forward pass per window position: the reference."""
    _, _, height, width = x.shape
    rows, cols = (height - window) // stride + 1, (width - window) // stride + 1
    drops = torch.empty(rows, cols)
    with torch.no_grad():
        base = model(x)[0, target]
        for i in range(rows):
            for j in range(cols):
                occluded = occlude(x, i * stride, j * stride, window, fill)
                drops[i, j] = (base - model(occluded)[0, target]).item()
    return drops


assert tiles(224, 32, 32)
start = time.perf_counter()
naive = naive_occlusion(model, x, helmet, window=32, stride=32)  # [7, 7]
per = {"naive": (time.perf_counter() - start) / naive.numel()}
results = {}
methods = ["batched"] + (["incremental"] if plan.path == "incremental" else [])
for method in methods:
    start = time.perf_counter()
    results[method] = occlusion(model, x, helmet, window=32, stride=32, method=method)[0]
    per[method] = (time.perf_counter() - start) / naive.numel()
for method, seconds in per.items():
    print(f"{method:12s} {1000 * seconds:7.1f} ms per position, {seconds / per['naive']:.2f}x naive")
    lesson.record(f"{method}_ms", 1000 * seconds, "{:.0f} ms", timing=True)
    lesson.record(f"{method}_ratio", seconds / per["naive"], ".2f", timing=True)
lesson.record("main_ms", 1000 * main_s / main[0, 0].numel(), "{:.0f} ms", timing=True)
if "incremental" not in per:
    lesson.record("incremental_ms", "(not available for this model)")
    lesson.record("incremental_ratio", "(n/a)")
    lesson.record("incremental_vs_batched", "(n/a)")
else:
    lesson.record("incremental_vs_batched", per["incremental"] / per["batched"], ".2f", timing=True)
scale = naive.abs().max().item()
worst = max((r.cpu() - naive).abs().max().item() for r in results.values())
lesson.record("agreement", worst / max(scale, 1e-12), "{:.0e} of the largest |drop|")
_ = lesson.expect(worst <= 1e-4 * max(scale, 1e-12) + 1e-6,
              "the three ways agree to rounding", worst)

# %% [markdown]
# **What batching buys.** A forward pass has a fixed cost (Python, dispatching a few hundred
# operators, reading the weights from memory) and a cost per image. One image per pass pays the
# fixed cost 9409 times; batches of 16 pay it 589 times. Batching saves that fixed cost (and
# lets larger matrix products run more efficiently); the arithmetic per image is the same. How much it saves depends on the
# machine. On a GPU, where launching the kernels for one small image costs more than
# computing them, batching should matter most (expected, not measured here: this page
# was built on a CPU); on the CPU that built this page, in one timed run each, batched
# passes took {{ batched_ratio }} times the naive loop's time (below 1 a saving, above 1 a
# loss). Treat `batch_size` as a knob to measure
# on your machine (the default, `None`, was measured on a 2-core CPU: 32 copies per pass for
# the incremental path, whose copies are small crops, and 16 whole copies; on a GPU the
# default is 128, a guess not yet measured).
#
# **What incremental inference buys.** It removes arithmetic: per copy, the convolutions and
# the classifier compute about {{ recomputed }} of the multiply-adds of a full pass on this
# model (the plan printed above, for the 49 positions timed here). The saving comes from the early layers, where the window's
# projective field is a small part of a large map; in the last layers it covers most of the
# map (every output there sees most of the image), so they, and the classifier, run in full
# for every copy. Against batched passes on the same positions the incremental path took
# {{ incremental_vs_batched }} of the time, for {{ recomputed }} of the arithmetic. Each path was
# timed once, and on a shared machine one call can take several times longer a minute later,
# so read these ratios as one sample, not as a property of the methods (the site's Benchmarks
# page repeats such timings in alternation). Even measured well, the two
# ratios need not match, because the paths differ in more than the arithmetic: the
# incremental path also folds each batch norm into the convolution before it, sends the
# copies of several batches through the classifier together, and pays a larger fixed cost
# per call for tracing and checking the model.
#
# **What a GPU changes.** A GPU is starved by one small image: the kernels of a network this
# size finish in microseconds and launching them dominates. With batches of tens to hundreds of
# occluded copies the GPU should run at full occupancy, and thousands of forward passes of a
# small CNN should take seconds (an expectation: this page was built without a GPU). The batch size is then limited by GPU
# memory (`batch_size` × the activations of one image); under `torch.no_grad()` nothing is kept
# for a backward pass, so large batches fit. Run this lesson with `CONVLENS_DEVICE=cuda` to
# get the numbers for your GPU.

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: the fill value lives in normalized space</p>
# <p><code>fill=0</code> on a normalized tensor is the normalisation's mean colour, not black; on a
# tensor in [0, 1] (before <code>Normalize</code>) it is black. Masking before normalizing and
# after normalizing are different experiments. Decide which colour you mean, then convert it
# with <code>(colour - mean) / std</code>.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: forgetting no_grad</p>
# <p>A loop that calls the model once per position without <code>torch.no_grad()</code> stores
# every activation for a backward pass that never comes: memory grows and every pass is
# slower.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: a misaligned overlay</p>
# <p>The map has $H'$ cells, not $H$: cell $(i, j)$ belongs to the window starting at
# $(is, js)$. Stretching the small map over the whole image (<code>extent=(0, W, H, 0)</code>)
# stretches it outward: the centre stays in place, and the cells near the edges land up to
# $(w - s)/2$ pixels too far out. Centre each cell on its window, or upsample with that
# offset.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: the uncovered border</p>
# <p>When $(H - w)$ is not a multiple of the stride, the last rows and columns are never
# occluded (a 48-pixel window at stride 24 on 224 pixels leaves 8 pixels). Choose window and
# stride so they tile the image, as every map on this page does (the <code>tiles</code> check),
# or pad.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: a strong colour scale on a weak map</p>
# <p>A map scaled by its own maximum always looks confident. Check how far the largest drop
# moves the prediction (the class's log-probability, not the drop's share of the logit,
# which has no natural zero) before reading the picture.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: explaining the probability</p>
# <p>The softmax probability saturates: for a confident class, hiding half the object may not
# move it at all, and it moves when <em>other</em> classes change. Occlude the logit (as
# here), or report both.</p></div>

# %% [markdown]
# ## Exercises
#
# 1. Compute the occlusion map of your own image at window 32 and strides 16 and 8. Check that
#    the stride-16 map is every second cell of the stride-8 one.
# 2. Instead of a constant, fill the window with a blurred copy of the image (or with noise of
#    the image's statistics). Do the maps agree with the mean-colour fill?
# 3. With `target=None`, draw the maps of the top 3 classes of the astronaut photo from one
#    call. How much cheaper is it than 3 calls with one target each?
# 4. Find the smallest window for which the helmet's map still has a clear maximum. Compare it
#    with the receptive field of the last convolutional layer ([receptive fields](02-receptive-fields.ipynb)).
# 5. On a GPU, time `occlusion` for batch sizes 1, 8, 64 and 256. Where does the speed-up stop?
