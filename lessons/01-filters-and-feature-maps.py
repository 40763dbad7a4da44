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
# # Filters and feature maps
#
# **Summary.** What the first layer's kernels look like and what the maps they produce show, from edge maps in the first layer to deep channels that fire on one side of a two-object photo.
#
# **The question.** "My network is trained. What do its filters actually look like, and what
# does a layer hand on to the next one when I show it a photo?"
#
# There are two things you can look at without any clever technique. The first is the
# **weights**: a convolution filter is a small stack of numbers, one $k\times k$ kernel per
# input channel, and for the first layer (three input channels: red, green, blue) a filter can
# be drawn as a tiny colour picture. The second is the **activations** (feature maps): run a
# photo through the network, stop at a layer, and draw each output channel as an image. The
# weights tell you what pattern a unit is tuned to; the feature maps tell you where in *this*
# photo that pattern was found.
#
# Both views rest on one equation. Output channel $o$ of a convolution is a sum, over the
# input channels $c$, of the input correlated with one 2-D kernel, plus a bias:
#
# $$ y_o(i,j) \;=\; b_o + \sum_{c=1}^{C_{\text{in}}} \sum_{u,v} w_{o,c}(u,v)\; x_c(s\,i+u,\; s\,j+v). $$
#
# For a fixed position, $y_o$ is the dot product of the filter with the image patch under it:
# large when the patch "looks like" the filter (up to contrast): among patches
# of one norm, the raw convolution responds most to the one shaped like its filter. So a
# first-layer filter drawn as a picture shows roughly what it is tuned to, with two caveats for
# [Figure 1](#figure-1). It draws the raw weights, and a BatchNorm after the convolution
# rescales each filter and can flip its sign; for a flipped filter, what the next layer sees
# is largest for the *negative* of the picture (on this network {{ flip_note }}; see
# [the batch-norm trap](#traps)). And each picture is stretched from its own minimum to its
# maximum, which shifts zero: mid-grey is not "no weight". Deeper layers read the previous layer's channels, not colours, so their kernels stop
# being pictures; there, feature maps (and later, [input optimisation](04-input-optimization.ipynb))
# are the better window.
#
# References: Krizhevsky et al. 2012 ([AlexNet](https://papers.nips.cc/paper/4824)) showed the
# first-layer filters as colour patches; Zeiler & Fergus 2014
# ([arXiv:1311.2901](https://arxiv.org/abs/1311.2901)) and Yosinski et al. 2015
# ([arXiv:1506.06579](https://arxiv.org/abs/1506.06579)) look at feature maps channel by channel.

# %%
import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import convlens
from convlens import plot
from convlens.hooks import record_outputs
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device, "| layers:", ctx.layers)

x = ctx.image("chelsea")  # the cat photo, through the model's own preprocessing
print("input:", tuple(x.shape))
for label, p in ctx.top_classes(x, k=3):
    print(f"  {p:6.1%}  {label}")

# %% [markdown]
# ## First-layer filters as colour patches
#
# The first convolution reads the three colour channels directly, so each of its filters is an
# array `[3, k, k]` that we can show as a `k×k` RGB image. We find it through the lesson's
# layer roles (`ctx.layers["first_conv"]`), never by a model-specific name, so the same code
# runs on AlexNet, VGG or ResNet.

# %%
modules = dict(model.named_modules())
first = modules[ctx.layers["first_conv"]]
w1 = first.weight.detach()
print(f"{ctx.layers['first_conv']}: {type(first).__name__}, weight {tuple(w1.shape)}, "
      f"stride {first.stride}, bias: {first.bias is not None}")
w1_norms = w1.flatten(1).norm(dim=1)
dead = (w1_norms < 1e-4 * w1_norms.max()).nonzero().flatten().tolist()  # rounding noise only
live = [o for o in range(w1.shape[0]) if o not in dead]


if dead:
    dead_maps = convlens.feature_maps(model, x, ctx.layers["first_conv"])[0, dead]
    print(f"dead filters (weight norm < 1e-4 of the largest, {w1_norms.max():.2f}): {dead}, "
          f"norms {', '.join(f'{v:.1e}' for v in w1_norms[dead].tolist())}; on the cat photo "
          f"their maps reach at most {dead_maps.abs().max():.1e}")
    lesson.record("dead_note", f"{len(dead)} patches (filters {lesson.and_list(dead)}, counted row by "
                               f"row from 0) are dead filters, with weight norms of "
                               f"{w1_norms[dead].min():.0e} to {w1_norms[dead].max():.0e} against "
                               f"up to {w1_norms.max():.1f} for the others: the stretch turns "
                               "their rounding noise into full-range colour (see [the trap on "
                               "per-filter rescaling](#traps)).")
else:
    lesson.record("dead_note", "")

fig = plot.filters_rgb(w1, ncols=16, title=f"{ctx.layers['first_conv']}: {w1.shape[0]} filters "
                                             f"of {w1.shape[2]}×{w1.shape[3]}×3 as RGB")
lesson.show(fig, f"First-layer filters of {ctx.layers['first_conv']}, each rescaled on its own "
                 "to [0, 1].")

# %% [markdown]
# Each patch is stretched to the full colour range on its own, so what you see is the *shape*
# of the pattern: patches of one hue, light/dark edges and spots. {{ dead_note }}
# Here the first kernels are {{ first_kernel }} at stride {{ first_stride }}; AlexNet's famous
# $11\times11$ Gabor-like filters come from a much larger first kernel (Krizhevsky et al. 2012),
# and at $3\times3$ an "edge" is only three pixels long.
#
# A larger kernel has room for longer patterns. `evidence_net`, the small network with a known
# answer that lessons 07 and 09 use, starts with a {{ ev_kernel }}×{{ ev_kernel }}
# convolution. The build trains it on synthetic 64×64 images (one small shape placed on
# clutter, `convlens.images.evidence_set`), not on photos, so its filters are tuned to those
# images. Its batch norm is folded into the weights, so these are the filters it applies:

# %%
evidence = lesson.load_model("evidence_net")
w_evidence = evidence.model.features[0].weight.detach().cpu()
lesson.record("ev_kernel", w_evidence.shape[-1])
fig = plot.filters_rgb(w_evidence, ncols=16)
lesson.show(fig, f"The {w_evidence.shape[0]} first-layer filters of evidence_net, "
                 f"{w_evidence.shape[-1]}×{w_evidence.shape[-1]}×3, each rescaled on its own "
                 "to [0, 1].", model="evidence_net")
start = convlens.evidence_net.untrained().features[0].weight.detach().flatten(1)
kept = torch.nn.functional.cosine_similarity(w_evidence.flatten(1), start)
unrelated = torch.nn.functional.cosine_similarity(start, start.roll(1, 0)).abs().mean()
print(f"cosine of each trained filter with its own starting filter: {kept.min():.2f} to "
      f"{kept.max():.2f}; of two different starting filters: {unrelated:.2f} on average")
lesson.record("ev_cos_low", kept.min().item(), ".2f")
lesson.record("ev_cos_high", kept.max().item(), ".2f")
lesson.record("ev_cos_unrelated", unrelated.item(), ".2f")
training = convlens.evidence_net.HYPERPARAMETERS
lesson.record("ev_training", f"{training['steps']} steps of {training['batch']} images of "
                             f"{len(evidence.labels)} classes of shapes")
_ = lesson.expect(kept.min() > 0.5 and unrelated < 0.3, "each of evidence_net's trained first-layer "
                  "filters still points mostly along its random start", kept)

# %% [markdown]
# No Gabor filters: these look like coloured noise, and they are still much closer to the
# random filters they started from (cosine {{ ev_cos_low }} to {{ ev_cos_high }}) than two
# different random filters are to each other ({{ ev_cos_unrelated }}): training moved them only
# part of the way. A large kernel makes room for long edges;
# whether they appear depends on the data and the training (AlexNet's came from 1.2 million
# photos, these from {{ ev_training }}).
#
# ## Each channel of a filter as a heat map
#
# A colour patch mixes three kernels into one picture. Drawing the red, green and blue kernels
# separately, on a diverging colour map centred on zero, shows the sign of every weight: red is
# positive (this pixel *raises* the response), blue is negative.
#
# Which filters to draw? "The ones with the largest weights" sounds natural, but in a network
# with batch normalisation the scale of a convolution's weights means nothing on its own: the
# BatchNorm that reads the convolution multiplies channel $o$ by $\gamma_o/\sigma_o$ (see
# [the batch-norm trap](#traps)), and that factor can be far from 1 and negative. So we first **fold** that
# BatchNorm into the filters, $w'_o = w_o\,\gamma_o/\sigma_o$: the folded filter, plus a bias,
# is what the activation after the BatchNorm receives, sign included (the next layer then sees
# it through that activation). We find the BatchNorm by running
# the photo and checking which module's output equals a BatchNorm applied to the
# convolution's output; on a network without one there is nothing to fold.

# %%
first_name = ctx.layers["first_conv"]
lesson.record("first_kernel", "×".join(map(str, first.kernel_size)))
lesson.record("first_stride", first.stride[0])
y1 = convlens.feature_maps(model, x, first_name)  # the raw convolution output
with torch.no_grad(), record_outputs(model) as calls:
    model(x)
called = [n for n, _ in calls]
bn_after = None  # (name, module): the BatchNorm that reads first_conv's output
for n in called[called.index(first_name) + 1:]:
    m = modules[n]
    if isinstance(m, nn.BatchNorm2d):
        if m.num_features == w1.shape[0]:
            with torch.no_grad():
                if torch.allclose(m(y1), convlens.feature_maps(model, x, n), atol=1e-5, rtol=1e-4):
                    bn_after = (n, m)
        break
if bn_after is None:
    bn_scale = torch.ones(w1.shape[0], device=w1.device)
    print(f"no BatchNorm reads the output of {first_name}: nothing to fold, the raw weights are "
          "what the next layer sees")
else:
    bn_name, bn = bn_after
    bn_scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    print(f"{bn_name} ({type(bn).__name__}) reads {first_name}'s output; its scale γ/σ over "
          f"the {len(live)} live channels: |γ/σ| from {bn_scale[live].abs().min():.2f} to "
          f"{bn_scale[live].abs().max():.2f}, {int((bn_scale[live] < 0).sum())} negative")
    if dead:
        dead_out = convlens.feature_maps(model, x, bn_name)[0, dead]
        print(f"the dead channels {dead}: γ/σ {[round(v, 2) for v in bn_scale[dead].tolist()]}, "
              f"running variance {[round(v, 4) for v in bn.running_var[dead].tolist()]}, "
              f"{bn_name} output on the cat photo up to {dead_out.abs().max():.1e}")
flipped = [o for o in live if bn_scale[o] < 0]
if bn_after is None:
    flip_note = "no BatchNorm follows the first convolution, so none of its filters is flipped"
elif flipped:
    flip_note = f"{len(flipped)} of the {len(live)} live first-layer filters are flipped"
else:
    flip_note = (f"none of the {len(live)} live first-layer filters is flipped, so the sign "
                 "caveat matters on other networks")
if dead:
    flip_note += (f"; {len(dead)} of the {w1.shape[0]} filters are dead, with weight norms of "
                  f"{w1_norms[dead].min():.0e} to {w1_norms[dead].max():.0e}")
    if bn_after is not None and float(dead_out.abs().max()) == 0:
        flip_note += f" and an output of 0 after {bn_after[0]}"
    dead_negative = sum(float(bn_scale[o]) < 0 for o in dead)
    if dead_negative:
        flip_note += (f", and the {dead_negative} negative γ/σ of {bn_after[0]} belong to them"
                      if dead_negative > 1 else f", and the negative γ/σ of {bn_after[0]} "
                                                "belongs to one of them")
w1_folded = w1 * bn_scale[:, None, None, None]
raw_rank = w1.flatten(1).norm(dim=1).argsort(descending=True)[:6].tolist()
strongest = w1_folded.flatten(1).norm(dim=1).argsort(descending=True)[:6].tolist()
print("six largest by raw weight norm:   ", raw_rank)
print("six largest after folding the BN: ", strongest)
rank_differ = len(set(raw_rank) - set(strongest))
print(f"{rank_differ} of the six by raw norm are not among the six after folding")
lesson.record("rank_differ", ["none", "one", "two", "three", "four", "five", "all"][rank_differ])
lesson.record("flip_note", flip_note)
_ = lesson.expect(rank_differ > 0, "ranking by the raw weights picks other filters than "
                  "ranking after folding", rank_differ)
fig = plot.kernel_heatmaps(w1_folded, strongest, channel_names=["R", "G", "B"],
                           title="folded per-channel kernels (red > 0, blue < 0)")
lesson.show(fig, f"The R, G and B kernels (columns) of the six filters of {first_name} with the "
                 f"largest folded norm (rows: filters {strongest}), "
                 + ("BatchNorm folded in, " if bn_after else "nothing to fold, ")
                 + "one symmetric colour scale per filter.")

# %% [markdown]
# Each row is one filter, each column one colour channel. When the three kernels of a row look
# alike, the filter is colour-blind: it responds to brightness patterns. When one column has
# the opposite sign of the others, the filter is colour-opponent ("more green than red
# here"). Compare the two printed lists: {{ rank_differ }} of the six filters ranked by their
# raw weights are not among the six ranked after folding.
#
# ## Deeper layers: a 2-D kernel per pair of channels
#
# A later convolution with $C_\text{in}$ input channels and $C_\text{out}$ filters has
# $C_\text{out}\times C_\text{in}$ two-dimensional kernels (AlexNet's second layer:
# $192\times64 = 12\,288$). They are no longer colour pictures, because their inputs are
# feature maps. The usual way to look at them is to tile them all into one grey image: row $o$
# is filter $o$, column $c$ is its kernel on input channel $c$.
#
# Modern mobile networks complicate this. EfficientNet-Lite0 never has a full $k\times k$
# convolution over many channels after its stem: each block factors it into a **depthwise**
# convolution (one $k\times k$ kernel per channel, `groups == C_in`) and a **pointwise**
# $1\times1$ convolution that mixes channels (a plain $C_\text{out}\times C_\text{in}$ matrix).
# The code below picks, generically, the first later convolution with a real spatial kernel
# over all of its input channels (`groups == 1`, kernel > 1); if the network has none, it shows
# the two factors of its first depthwise-separable convolution instead: the first depthwise
# convolution, and the first $1\times1$ convolution run after it that reads as many channels
# as the depthwise one outputs (the call order comes from the forward pass above).

# %%
convs = [(n, modules[n]) for n in called  # in the order the forward pass ran them
         if isinstance(modules[n], nn.Conv2d) and n != ctx.layers["first_conv"]]
full = [(n, m) for n, m in convs
        if m.groups == 1 and max(m.kernel_size) > 1 and m.in_channels > 1]
depthwise = next(((n, m) for n, m in convs
                  if m.groups == m.in_channels > 1 and max(m.kernel_size) > 1), None)
pointwise = None
if depthwise is not None:  # the 1x1 convolution that mixes the depthwise outputs
    after = convs[[n for n, _ in convs].index(depthwise[0]) + 1:]
    pointwise = next(((n, m) for n, m in after if m.groups == 1 and m.kernel_size == (1, 1)
                      and m.in_channels == depthwise[1].out_channels), None)
    between = called[called.index(depthwise[0]) + 1:called.index(pointwise[0])] if pointwise else []
    print("between the two factors:", ", ".join(
        f"{n} ({type(modules[n]).__name__})" for n in between
        if not isinstance(modules[n], nn.Identity)) or "nothing")

if full:  # AlexNet, VGG, ResNet: a real k×k kernel over many input channels
    name, conv = full[0]
    w = conv.weight.detach()
    tiles = plot.collated_kernels(w, max_filters=64, max_channels=64)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(tiles, cmap="gray")
    ax.set_title(f"{name}: first {min(64, w.shape[0])} filters × {min(64, w.shape[1])} input "
                 f"channels ({w.shape[0] * w.shape[1]:,} kernels in all)", fontsize=9)
    ax.set_xlabel("input channel")
    ax.set_ylabel("filter")
    ax.set_xticks([])
    ax.set_yticks([])
    caption = f"Collated {w.shape[2]}×{w.shape[3]} kernels of {name}, each rescaled on its own."
    lesson.record("deeper_figure", f"This network has full convolutions: the figure tiles the "
                                   f"kernels of `{name}`, the first of them.")
elif depthwise and pointwise:  # depthwise-separable network: show the two factors
    (dw_name, dw), (pw_name, pw) = depthwise, pointwise
    wd = dw.weight.detach()  # [C, 1, k, k]: one kernel per channel
    per_row = 8 if wd.shape[0] % 8 == 0 else 1
    tiles = plot.collated_kernels(wd[:, 0].reshape(-1, per_row, *wd.shape[2:]), gap=1)
    wp = pw.weight.detach()[:, :, 0, 0]  # [C_out, C_in]: one number per (filter, channel)
    limit = float(wp.abs().max())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1.3, 2.4]})
    axes[0].imshow(tiles, cmap="gray")
    axes[0].set_title(f"{dw_name}\n{wd.shape[0]} depthwise {wd.shape[2]}×{wd.shape[3]} kernels",
                      fontsize=9)
    image = axes[1].imshow(wp.cpu(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes[1].set_title(f"{pw_name}\n{wp.shape[0]}×{wp.shape[1]} = {wp.numel():,} pointwise "
                      "1×1 kernels", fontsize=9)
    axes[1].set_xlabel("input channel")
    axes[1].set_ylabel("filter")
    fig.colorbar(image, ax=axes[1], fraction=0.03)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    caption = (f"The two factors of one depthwise-separable convolution: the depthwise kernels "
               f"of {dw_name} (each rescaled on its own) and the 1×1 matrix of {pw_name} that "
               "mixes their outputs (one shared signed scale).")
    lesson.record("deeper_figure", "This network has no full $k\\times k$ convolution over many "
                                   "channels, so the figure shows the two factors of its first "
                                   f"depthwise-separable convolution: the {wd.shape[0]} depthwise "
                                   f"kernels of `{dw_name}` (left) and the matrix of `{pw_name}` "
                                   f"(right), whose {wp.shape[1]} columns are the {wd.shape[0]} "
                                   "outputs of those kernels (after the BatchNorm and activation "
                                   "printed above).")
else:
    fig = None
    lesson.record("deeper_figure", "This network has neither full nor depthwise-separable "
                                   "convolutions after its first layer: no figure here.")
if fig is not None:
    lesson.show(fig, caption)

# %% [markdown]
# {{ deeper_figure }} In a weight matrix, or a grid of full kernels, row $o$ is filter $o$ and
# column $c$ its input channel (a grid of depthwise kernels has no input axis: each kernel is
# one channel's, wrapped into rows to save space): look for structure across a *row* (a filter that uses only a
# few of its inputs) or down a *column* (an input channel that many filters ignore), not for
# recognisable shapes. A $1\times1$ kernel is a single number, so per-kernel rescaling would
# turn every one of them into the same flat grey: for pointwise layers the honest picture is
# the weight matrix on one signed scale. A depthwise kernel sees a single channel, so it can
# still be read as a small spatial filter on that channel.
#
# ## Feature maps of a photo
#
# Now the activations. `convlens.feature_maps(model, x, layer)` runs the model once and returns
# the output of `layer` as a detached copy, taken before any in-place operation downstream
# can overwrite it. The first convolution gives a map per filter at half resolution (stride 2).

# %%
maps1 = convlens.feature_maps(model, x, ctx.layers["first_conv"])[0]
print(ctx.layers["first_conv"], "output:", tuple(maps1.shape),
      f"range [{maps1.min():.2f}, {maps1.max():.2f}]")
shown = strongest + [c for c in range(maps1.shape[0]) if c not in strongest][:10]
fig = plot.feature_map_grid(maps1, channels=shown, ncols=8,
                            title=f"{ctx.layers['first_conv']} feature maps (cat photo)")
shown_dead = [c for c in shown if c in dead]
lesson.show(fig, f"16 feature maps of {ctx.layers['first_conv']} for the cat photo; the first six "
                 "are the filters of Figure 3. Each map has its own colour scale (yellow = high)"
                 + (f"; dead filter {lesson.and_list(shown_dead)} reaches at most "
                    f"{maps1[shown_dead].abs().max():.1e}, stretched like the rest."
                    if shown_dead else "."))

# %% [markdown]
# Each map is the photo filtered by one filter. Look for filters that light up along the rims
# of the cat's eyes (edge-like ones) and for filters that set the eyes and the nose apart
# from the fur (colour-opponent ones); which channels do which depends on the model. Note the printed range: the raw convolution output is signed
# (we hooked the convolution itself, before any batch norm or activation that follows it).
#
# Deeper, the maps get coarser (the figure below: a few cells where the first layer had
# thousands of pixels). To see whether a deep channel responds to
# one *kind of thing* rather than to any texture, we switch to a photo with two objects: the cat next to a
# cup of coffee, resized whole to $224\times448$ so that nothing is cropped away, the cat on
# the left half, the cup on the right. In the last spatial feature map (the layer role
# `last_spatial`, here `{{ deep_name }}`, the last map before global pooling) each map is a
# coarse grid. Of its 12 most active channels, {{ one_sided }} put at least 80% of their
# activation on one half of the photo: they fire on the cat's half or on the cup's, and
# hardly on the other (a half is not an object, and this page does not test object selectivity; the
# trained-versus-random section compares this one-sidedness with a random network's on this photo,
# a comparison that the trained network's sparsity can bias).

# %%
x2 = ctx.image("cat_and_coffee", size=(224, 448))
print("two-object photo:", ", ".join(f"{label} {p:.1%}" for label, p in ctx.top_classes(x2, k=3)))


def map_rows(rows, ncols, titles, row_labels=None, cell=(2.3, 1.35)):
    """A grid of wide feature maps: rows[r][c] is [h, w]; each map has its own colour scale."""
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell[0] * ncols, cell[1] * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            ax = axes[r][c]
            ax.imshow(picture.cpu(), cmap="viridis")
            ax.set_title(titles[r][c], fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=8)
    return fig


deep = ctx.layers["last_spatial"]
maps_deep = convlens.feature_maps(model, x2, deep)[0]
energy = maps_deep.flatten(1).abs().mean(dim=1)
top_deep = energy.argsort(descending=True)[:12].tolist()  # the 12 most active channels
print(deep, "output:", tuple(maps_deep.shape))


def left_share(maps):
    """Per channel, the share of its |activation| on the left half (the cat's side)."""
    mass = maps.abs()
    half = maps.shape[-1] // 2
    return mass[..., :half].sum(dim=(-2, -1)) / mass.sum(dim=(-2, -1)).clamp(min=1e-12)


sides = left_share(maps_deep[top_deep])
one_sided = int(((sides >= 0.8) | (sides <= 0.2)).sum())
print("share on the cat's half, per channel:", " ".join(f"{v:.2f}" for v in sides.tolist()))
lesson.record("deep_name", deep)
lesson.record("one_sided", "all" if one_sided == len(top_deep) else one_sided)
lesson.expect(one_sided > len(top_deep) / 2,
              "most of the 12 most active channels of the last spatial map fire on one half",
              one_sided)
fig = map_rows([[maps_deep[c] for c in top_deep[i:i + 4]] for i in (0, 4, 8)], 4,
               [[f"ch {c}" for c in top_deep[i:i + 4]] for i in (0, 4, 8)])
fig.suptitle(f"{deep}: the 12 most active of {maps_deep.shape[0]} channels")
lesson.show(fig, f"Feature maps of {deep} ({maps_deep.shape[1]}×{maps_deep.shape[2]}) for the "
                 "cat-and-coffee photo: the 12 channels with the largest mean |activation|.")

# %% [markdown]
# ### The channel-mean view
#
# A layer with hundreds of channels is too many pictures. A quick summary is the mean over
# channels, one grey map per layer: $\bar A(i,j) = \frac1K\sum_k A_k(i,j)$. It is crude (a
# channel that is negative where another is positive cancels out, and the mean says nothing
# about *which* feature fired), but it shows at a glance where a layer is busy.

# %%
roles = ("first_conv", "middle", "last_spatial")
means = [convlens.feature_maps(model, x2, ctx.layers[r])[0].mean(dim=0) for r in roles]
fig = plot.image_row(
    [ctx.to_display(x2)] + [m.cpu() for m in means],
    ["input"] + [f"mean of {ctx.layers[r]}  {tuple(m.shape)}" for r, m in zip(roles, means)],
    cmap="gray", cell=2.4)
lesson.show(fig, "The two-object photo and the channel mean of three layers "
                 f"({', '.join(ctx.layers[r] for r in roles)}); white = high.")
middle_maps = convlens.feature_maps(model, x2, ctx.layers["middle"])[0]
lesson.record("middle_min", float(middle_maps.min()), ".1f")
lesson.record("middle_max", float(middle_maps.max()), ".1f")
lesson.expect(bool(middle_maps.min() < 0), "the middle layer's channels are signed",
              float(middle_maps.min()))


def inside_and_ring(picture):
    """The channel mean of the last spatial map: its mean inside, and on the outer ring of cells."""
    mean = convlens.feature_maps(model, picture, ctx.layers["last_spatial"])[0].mean(dim=0)
    core = mean[1:-1, 1:-1]
    return float(core.mean()), float((mean.sum() - core.sum()) / (mean.numel() - core.numel()))


inner, border = inside_and_ring(x2)
print(f"mean of {ctx.layers['last_spatial']}: inside {inner:.3f}, outer ring {border:.3f}")
lesson.record("inner_mean", inner, ".2f")
lesson.record("border_mean", border, ".2f")
# the same contrast on every photo of the pool, and on a blank image (the padding's value)
pool = convlens.images.photo_pool()
contrast = {p.name: inside_and_ring(convlens.images.prepare(p.image, ctx.preprocess).to(ctx.device))
            for p in pool}
for name, (a, b) in contrast.items():
    print(f"  {name:18s} inside {a:.3f}  ring {b:.3f}")
ratio = {name: a / max(b, 1e-12) for name, (a, b) in contrast.items()}
print("inside / ring:", ", ".join(f"{n} {r:.2f}" for n, r in sorted(ratio.items(), key=lambda t: t[1])))
low, high = min(ratio, key=ratio.get), max(ratio, key=ratio.get)
blank_maps = convlens.feature_maps(model, torch.zeros_like(x), ctx.layers["last_spatial"])[0]
blank_on = int((blank_maps != 0).sum())
print(f"  blank (all mean colour): {blank_on} of the last map's {blank_maps.numel()} units are "
      "nonzero")
lesson.record("n_pool", len(pool))
lesson.record("pool_inner", sum(a > b for a, b in contrast.values()))
lesson.record("ratio_low", ratio[low], ".2f")
lesson.record("ratio_low_name", low)
lesson.record("ratio_high", ratio[high], ".1f")
lesson.record("ratio_high_name", high)
for name in ("grass", "gravel", "brick", "chelsea"):
    lesson.record(f"{name}_ratio", ratio.get(name, float("nan")), ".2f")
lesson.record("blank_on", blank_on)
lesson.record("blank_units", blank_maps.numel())
lesson.record("blank_share", 100 * blank_on / blank_maps.numel(), "{:.2g}%")
textures = [n for n in ("gravel", "brick", "grass") if n in ratio]
cat_ratio = ratio.get("chelsea", float("nan"))
above_cat = [n for n in textures if ratio[n] > cat_ratio]
listed = ", ".join(f"{n} {ratio[n]:.2f}" for n in textures)
pool_median = float(torch.tensor(list(ratio.values())).quantile(0.5))
top_photo = max(ratio, key=ratio.get)
lesson.record("texture_reading",
              f"Of the three close-ups of a texture with no object in them ({listed}), "
              f"{' and '.join(above_cat)} {'reach' if len(above_cat) > 1 else 'reaches'} more than "
              f"the pool's cat photo, `chelsea` ({cat_ratio:.2f}), and the pool's median is "
              f"{pool_median:.2f}: a ratio like theirs needs no object." if above_cat else
              f"On this model the three close-ups of a texture with no object in them ({listed}) "
              f"all stay below the pool's cat photo, `chelsea` ({cat_ratio:.2f}): here the "
              "contrast is weaker without an object, on these few photos.")
lesson.record("texture_verdict",
              f"With {len(pool)} photos and no control this page cannot say what raises the "
              f"ratio most ({top_photo}, {ratio[top_photo]:.1f}), and the plain mean")
lesson.record("ratio_low_note", ", a near-tie" if abs(ratio[low] - 1) < 0.1 else
              ", lower inside than on the ring" if ratio[low] < 1 else "")
_ = lesson.expect(blank_on < 0.1 * blank_maps.numel(), "on a blank image at least nine units "
                  "in ten of the last map are off", blank_on)

# %% [markdown]
# The first layer's mean is still a filtered copy of the photo. The middle layer's mean is a
# patchwork: its channels are signed (here from {{ middle_min }} to {{ middle_max }}) and can
# cancel. The mean of the last spatial feature map is higher inside the picture
# ({{ inner_mean }} on average) than on its outer ring of cells ({{ border_mean }}). It is
# tempting to read this as "late features are about objects, so the mean marks where
# something is". The photo pool (every permissively licensed photo that ships with the
# course's packages, listed on the References page) says otherwise. The inside is higher on
# {{ pool_inner }} of its {{ n_pool }} photos, but by very different amounts: the ratio of
# inside to ring runs from {{ ratio_low }} ({{ ratio_low_name }}{{ ratio_low_note }}) to
# {{ ratio_high }} ({{ ratio_high_name }}). {{ texture_reading }} One candidate cause, which this lesson does not
# test, is an edge effect: a unit of the outer ring has part of its field in the padding,
# where there is nothing to respond to.
# (A blank image, all of it the mean colour, the value the padding has in the model's input
# space, is no control here: it switches off all but {{ blank_on }} ({{ blank_share }}) of the last map's
# {{ blank_units }} units, so it could show little contrast either way.) {{ texture_verdict }}
# cannot be read as a "where is something" map without a control this page does not have. It also mixes channels that fire
# on the cat's half with channels that fire on the cup's, which is why class-specific maps such as
# [Grad-CAM](08-grad-cam.ipynb) weight the channels by their effect on one class.
#
# ## Trained versus randomly initialised weights
#
# Are these patterns learned, or would any network show them? `convlens.models.architecture`
# builds the same network with its initial random weights. Below, the filters of both are
# drawn twice: each rescaled on its own (the usual picture), and on one shared scale per layer
# (grey = 0), which keeps their relative strength. Strength is measured where it means
# something: each network's BatchNorm is folded into its filters first, as for Figure 3. A
# freshly initialised BatchNorm has $\gamma = 1$ and $\sigma = 1$, so folding it would leave
# the random filters as they are, not as the next layer would see them; so we first
# re-estimate the random network's BatchNorm statistics on the {{ n_pool }} pool photos (one
# forward pass in train mode, without gradients, then back to eval mode; its weights stay
# random) and fold that. Why this matters more deeper down is shown after the figure.

# %%
torch.manual_seed(ctx.seed)
random_model = convlens.models.architecture(ctx.name).to(ctx.device).eval()
# the random network with its BatchNorm statistics re-estimated on the pool (weights unchanged)
calibrated = copy.deepcopy(random_model)
for m in calibrated.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
calibrated.train()
with torch.no_grad():
    calibrated(torch.cat([convlens.images.prepare(p.image, ctx.preprocess) for p in pool])
               .to(ctx.device))
calibrated.eval()
random_modules = dict(calibrated.named_modules())
w1_random = random_modules[first_name].weight.detach()
if bn_after is None:
    random_scale = torch.ones(w1_random.shape[0], device=w1_random.device)
else:  # the same BatchNorm, in the calibrated random network
    rbn = random_modules[bn_after[0]]
    random_scale = (rbn.weight / torch.sqrt(rbn.running_var + rbn.eps)).detach()
    print(f"random {bn_after[0]}, calibrated: γ/σ from {random_scale.min():.3f} to "
          f"{random_scale.max():.3f}")
w1_random_folded = w1_random * random_scale[:, None, None, None]

fig, axes = plt.subplots(2, 2, figsize=(9, 4.6 * max(1, w1.shape[0] / 32)))
for row, (tag, weight) in enumerate([("trained", w1_folded), ("random init", w1_random_folded)]):
    for col, per_filter in enumerate([True, False]):
        ax = axes[row][col]
        ax.imshow(plot.rgb_filter_mosaic(weight, ncols=8, per_filter=per_filter))
        scale = "each filter rescaled" if per_filter else "one shared scale, grey = 0"
        ax.set_title(f"{tag}: {scale}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
lesson.show(fig, f"First-layer filters of {ctx.layers['first_conv']}, BatchNorm folded in: trained "
                 "(top) and random initialisation with re-estimated BatchNorm statistics "
                 "(bottom), per-filter and shared colour scales.")


def spread(weight):
    norms = weight.flatten(1).norm(dim=1)
    return float(norms.max() / norms.median().clamp(min=1e-12))


spreads = {"trained": spread(w1_folded[live]), "random": spread(w1_random_folded),
           "raw": spread(w1[live]), "random_raw": spread(w1_random)}
print("largest / median filter norm:", ", ".join(f"{k} {v:.2f}" for k, v in spreads.items()),
      f"(trained: the {len(live)} live filters)")
for key in ("trained", "random", "raw", "random_raw"):
    lesson.record(f"{key}_spread", spreads[key], ".1f")
lesson.record("n_live", len(live))
lesson.record("n_dead", len(dead))
_ = lesson.expect(spreads["trained"] > 2 * spreads["random"], "folded, the trained filter "
                  "strengths differ far more than the random ones", spreads)
_ = lesson.expect(spreads["raw"] < spreads["trained"] / 2, "folding the BatchNorm, not the raw "
                  "weights, makes most of the trained filters' difference in strength", spreads)

# %% [markdown]
# Random filters are independent noise in every weight, and their strengths differ much less:
# folded with the re-estimated BatchNorm, the largest filter norm is {{ random_spread }} times
# the median ({{ random_raw_spread }} times for the raw random weights). Trained ones have
# structure (a single hue over the whole patch, spots, two-tone edges), and their strengths
# differ far more: over the {{ n_live }} live filters (the {{ n_dead }} dead ones left out) the
# largest folded norm is {{ trained_spread }} times the median, so on the shared scale most
# trained filters are close to grey and a few dominate. (The raw weights of the same live
# filters, before folding, would say {{ raw_spread }} times: the BatchNorm, not the
# convolution, sets most of the differences in strength.)
#
# The feature maps tell the same story. A random first layer still passes the photo through
# (a random filter's weights almost never cancel out, so its output is a filtered copy of the
# image; here {{ random_copies }} of the four random maps drawn correlate with its brightness at
# |r| ≥ 0.3), so a first-layer map that looks like the photo is no evidence of learning. Only some
# trained maps are not brightness copies of the photo (a colour-opponent one may still show
# the scene): {{ unlike_photo }}. At the last spatial map the difference shows,
# but a fair comparison needs the re-estimated statistics. A freshly initialised BatchNorm
# normalises with mean 0 and variance 1, not with the statistics of the activations it
# actually receives, so the uncalibrated random network's deep units drift far from zero: its
# four most active channels at the last map sit at {{ uncal_top }}, the ceiling of the ReLU6
# that ends this layer, on {{ uncal_top_share }} of their cells, and saturated channels cannot
# tell the cat from the cup. Comparing the trained network with that would only show that an
# uncalibrated network saturates, so the figure shows the random network both ways.
#
# Then take each network's own four most active channels at the last map (largest mean
# $|A|$), and ask what share of a channel's activation lies on its stronger half of the
# two-object photo: on average {{ trained_side }} for the trained network, {{ random_side }}
# for the calibrated random one (50% is an even split). Over every channel that is active on
# at least a tenth of the cells, not only the four drawn, {{ trained_live_sided }} of the
# trained network's {{ trained_live }} such channels put at least 80% on one half, against
# {{ random_live_sided }} of the calibrated random network's {{ random_live }}. (A channel that
# is zero everywhere, as {{ trained_dead }} of the trained network's {{ n_channels }} are on
# this photo, has no half to prefer and is left out.) Read this as one-sidedness, not yet as
# "one object per channel": a channel active on few cells puts most of its activation on one
# half whatever it responds to, and the two networks need not be equally sparse. Requiring a
# tenth of the cells limits that effect; it does not remove it.

# %%
brightness = ctx.preprocess.denormalize(x2[0]).mean(dim=0)[None, None]


def photo_corr(picture):
    """|Pearson correlation| of a map with the photo's brightness at the map's resolution."""
    b = nn.functional.adaptive_avg_pool2d(brightness, picture.shape[-2:]).flatten()
    a = picture.flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum().abs() / (a.norm() * b.norm()).clamp(min=1e-12))


rows, titles, labels, side_share, live_sided, top_max, corr = [], [], [], {}, {}, {}, {}
for role_, nets in [("first_conv", [("trained", model), ("random init", random_model)]),
                    ("last_spatial", [("trained", model), ("random, uncalibrated", random_model),
                                      ("random, calibrated", calibrated)])]:
    for tag, net in nets:
        maps = convlens.feature_maps(net, x2, ctx.layers[role_])[0]
        if role_ == "first_conv":
            chosen = list(range(4))
            corr[tag] = [photo_corr(maps[c]) for c in chosen]
            print(f"{tag}: |correlation| of channels {chosen} with the photo's brightness",
                  [round(v, 2) for v in corr[tag]])
        else:  # each network's own four most active channels
            chosen = maps.flatten(1).abs().mean(dim=1).argsort(descending=True)[:4].tolist()
            side = left_share(maps)
            side = torch.maximum(side, 1 - side)  # the share on the channel's own better half
            side_share[tag] = float(side[chosen].mean())
            active = (maps != 0).flatten(1).float().mean(dim=1) >= 0.1  # active on >= 10% of cells
            live_sided[tag] = (int(active.sum()), float((side[active] >= 0.8).float().mean()),
                               int((maps.flatten(1).abs().sum(dim=1) == 0).sum()))
            top_max[tag] = (float(maps[chosen].max()),
                            float((maps[chosen] == maps[chosen].max()).float().mean()))
            print(f"{tag}: channels {chosen}, one-half share "
                  f"{[round(v, 2) for v in side[chosen].tolist()]}; {live_sided[tag][0]} channels "
                  f"active on >= 10% of the cells, {live_sided[tag][1]:.0%} of them >= 80% on "
                  f"one half; {live_sided[tag][2]} of {maps.shape[0]} channels zero everywhere; "
                  f"the four drawn reach {top_max[tag][0]:.2f}, on {top_max[tag][1]:.0%} of "
                  "their cells")
        rows.append([maps[c] for c in chosen])
        titles.append([f"ch {c}" for c in chosen])
        labels.append(f"{tag}\n{ctx.layers[role_]}".replace(", ", "\n"))
fig = map_rows(rows, 4, titles, labels)
lesson.show(fig, f"Feature maps of the two-object photo for the trained and the randomly "
                 f"initialised network, at {ctx.layers['first_conv']} (rows 1–2, channels 0–3) "
                 f"and {ctx.layers['last_spatial']} (rows 3–5, each network's four most active "
                 "channels; the random network before and after its BatchNorm statistics are "
                 "re-estimated on the photo pool).")
uncal, cal = "random, uncalibrated", "random, calibrated"
unlike = [(c, v) for c, v in enumerate(corr["trained"]) if v < 0.3]
random_min = min(corr["random init"])
lesson.record("unlike_photo", (
    f"in the figure, {lesson.and_list(f'ch {c}' for c, _ in unlike)}, whose correlation with the "
    f"photo's brightness is |r| = {lesson.and_list(f'{v:.2f}' for _, v in unlike)}, against "
    f"|r| ≥ {random_min:.2f} for every random map drawn") if unlike
    else "here, none of the four trained maps drawn")
lesson.record("random_copies", sum(v >= 0.3 for v in corr["random init"]))
_ = lesson.expect(not unlike or random_min >= 0.3, "where trained first-layer maps drawn hardly "
                  "correlate with the photo's brightness (|r| < 0.3), every random one does", corr)
lesson.record("trained_side", side_share["trained"], ".0%")
lesson.record("random_side", side_share[cal], ".0%")
lesson.record("trained_live", live_sided["trained"][0])
lesson.record("random_live", live_sided[cal][0])
lesson.record("trained_live_sided", live_sided["trained"][1], ".0%")
lesson.record("random_live_sided", live_sided[cal][1], ".1%")
lesson.record("trained_dead", live_sided["trained"][2])
lesson.record("uncal_top", top_max[uncal][0], ".1f")
lesson.record("uncal_top_share", top_max[uncal][1], ".0%")
_ = lesson.expect(top_max[uncal][1] > 0.5 and abs(top_max[uncal][0] - 6) < 1e-4,
                  "the uncalibrated random network's four most active channels sit at 6, "
                  "ReLU6's ceiling, on most of their cells", top_max[uncal])
lesson.record("n_channels", maps.shape[0])
_ = lesson.expect(side_share["trained"] > side_share[cal]
                  and live_sided["trained"][1] > live_sided[cal][1] + 0.3,
                  "the trained last-layer channels are more one-sided than those of the "
                  "calibrated random network, for the four drawn and over all active channels",
                  (side_share["trained"], side_share[cal],
                   live_sided["trained"][1], live_sided[cal][1]))

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: the wrong normalisation</p>
# <p>Every pretrained network expects its own input scaling. torchvision's ImageNet models
# want <code>(pixel − mean)/std</code> with the ImageNet statistics; TensorFlow's
# EfficientNet-Lite wants <code>(pixel − 0.5)/0.5</code>. Feed the wrong one and the first layer
# sees a shifted, rescaled image, and every feature map changes. Always build inputs with the
# model's own preprocessing (here <code>ctx.image</code>, which uses
# <code>ctx.preprocess</code>). What makes this a trap is that the prediction need not tell
# you: see below.</p></div>

# %%
pixels = ctx.preprocess.denormalize(x[0])  # back to [0, 1] pixels
imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
half = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
wrong_mean, wrong_std = half if tuple(ctx.preprocess.mean) == imagenet[0] else imagenet
inputs = {
    "model's own preprocessing": x,
    f"wrong mean/std {wrong_mean}, {wrong_std}":
        ((pixels - torch.tensor(wrong_mean, device=x.device)[:, None, None])
         / torch.tensor(wrong_std, device=x.device)[:, None, None])[None],
    "raw pixels in [0, 1]": pixels[None],
    "pixels in [0, 255] (forgot to divide)": ctx.preprocess.normalize(pixels * 255)[None],
}
right_top3 = [label for label, _ in ctx.top_classes(x, k=3)]
maps_right = convlens.feature_maps(model, x, first_name)
outcome = {}
for key, (tag, inp) in zip(["own", "wrong", "raw", "unscaled"], inputs.items()):
    label, p = ctx.top_classes(inp, k=1)[0]
    change = (convlens.feature_maps(model, inp, first_name) - maps_right).norm() / maps_right.norm()
    outcome[key] = (label, p)
    print(f"{tag:45s} -> {label} ({p:.1%}); {first_name} maps change by {change:.0%}")
    lesson.record(f"{key}_label", label)
    lesson.record(f"{key}_p", p, ".1%")
    if key in ("wrong", "raw"):
        lesson.record(f"{key}_change", float(change), ".0%")
print("top 3 with the right preprocessing:", right_top3)
lesson.expect(outcome["wrong"][0] in right_top3 and outcome["raw"][0] in right_top3,
              "with the wrong mean/std or raw [0, 1] pixels the top class stays among the "
              "top three of the right input", f"{outcome['wrong'][0]}, {outcome['raw'][0]}")
_ = lesson.expect(outcome["unscaled"][0] not in right_top3,
                  "with pixels in [0, 255] the top class leaves the right input's top three",
                  outcome["unscaled"][0])

# %% [markdown]
# On this photo the damage hides in the maps. With the other convention's mean and std the
# first layer's maps change by {{ wrong_change }} and with raw $[0, 1]$ pixels by
# {{ raw_change }}, yet the network still answers with one of the three classes it ranked
# first on the right input: {{ wrong_label }} ({{ wrong_p }}) and {{ raw_label }}
# ({{ raw_p }}), against {{ own_label }} ({{ own_p }}). A big, obvious mistake, pixels in
# $[0, 255]$ (forgetting to divide by 255), gives {{ unscaled_label }} ({{ unscaled_p }}). So
# a plausible top-1 is no evidence that the preprocessing is right: a cat photo is easy, and
# a mild mis-scaling shows up as shifted probabilities and very different feature maps, exactly
# the quantities this course reads. Compare the preprocessing itself, never only the label.

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: what the raw conv output
# means (batch norm after the conv)</p>
# <p>In networks with batch normalisation the convolution usually has no bias, and the next
# module rescales every channel: $\mathrm{BN}(y_o) = \gamma_o\,(y_o-\mu_o)/\sigma_o + \beta_o$.
# The map you hook at the convolution is therefore not what the next layer sees: its scale is
# arbitrary and its sign may even be flipped (a negative $\gamma_o/\sigma_o$). To interpret a
# filter's weights as "the pattern that excites the unit", fold the BN into it:
# $w'_o = w_o\,\gamma_o/\sigma_o$, $b'_o = \beta_o - \mu_o\gamma_o/\sigma_o$.</p></div>

# %%
if bn_after is None:  # found above, before Figure 3
    print(f"no BatchNorm reads the output of {first_name}: its raw output is what the next "
          "layer sees")
else:
    bn_name, bn = bn_after
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().cpu()
    norms = w1.flatten(1).norm(dim=1).cpu()
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    colours = ["0.7" if o in dead else "tab:red" if s < 0 else "tab:blue"
               for o, s in enumerate(scale.tolist())]
    axes[0].bar(range(len(scale)), scale, color=colours)
    axes[0].set_yscale("symlog", linthresh=1.0)  # the dead channels' scales dwarf the live ones
    axes[0].set_title(f"{bn_name}: per-channel scale γ/σ (symlog axis)", fontsize=9)
    axes[0].set_xlabel("channel")
    axes[1].bar(range(len(norms)), norms, color="0.6", label="‖w‖ (raw conv)")
    axes[1].bar(range(len(norms)), (norms * scale.abs()), color="tab:blue", alpha=0.7,
                label="‖w‖·|γ/σ| (folded)")
    axes[1].set_title("filter norm before and after folding", fontsize=9)
    axes[1].set_xlabel("filter")
    axes[1].legend(fontsize=8)
    key = ["blue: positive"] + (["red: negative, the map's sign flips"] if flipped else [])
    if dead:
        key.append(f"grey: the dead filters {lesson.and_list(dead)}, whose γ/σ multiplies rounding "
                   "noise")
    lesson.show(fig, f"The BatchNorm after {ctx.layers['first_conv']} ({bn_name}) rescales each "
                     f"channel by γ/σ ({'; '.join(key)}); the left axis is linear within ±1 "
                     "and logarithmic beyond.")
    print(f"{len(flipped)} of the {len(live)} live channels have a negative scale; their "
          f"|scales| range from {scale[live].abs().min():.2f} to {scale[live].abs().max():.2f}")

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: per-filter rescaling hides
# magnitude</p>
# <p>The usual filter picture (and <code>feature_map_grid</code>) stretches each filter or map to
# its own full range. A dead filter with weights near zero then looks as vivid as the strongest
# one. Draw a second version on one shared scale (the trained-versus-random figure, right column) before concluding that
# a filter "detects" anything, and read the printed ranges of the maps.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: train mode</p>
# <p>In <code>train()</code> mode, batch norm normalises with the statistics of the current
# batch (with one image: of that image) instead of its stored running averages (and dropout,
# where a network has it, zeroes units at random). Every map after the first BatchNorm changes
# (here at <code>{{ middle_name }}</code> by up to {{ train_change }}, as large as the maps' own
# values, which span {{ eval_min }} to {{ eval_max }}); the raw output of the first
# convolution, which no BatchNorm precedes, does not (it changes by {{ stem_change }}). Worse, a forward pass in train mode
# <em>updates</em> the running statistics: merely looking at the model changes it. Always
# <code>model.eval()</code> (the course's models are loaded in eval mode).</p></div>

# %%
probe = copy.deepcopy(model).train()  # a copy: never do this to the model you study
bns = [m for m in probe.modules() if isinstance(m, nn.BatchNorm2d)]
before = bns[0].running_mean.clone() if bns else None
maps_mid = convlens.feature_maps(model, x, ctx.layers["middle"])[0]
train_maps = convlens.feature_maps(probe, x, ctx.layers["middle"])[0]
train_change = float((train_maps - maps_mid).abs().max())
print("max |train-mode map - eval-mode map| at", ctx.layers["middle"], ":", f"{train_change:.3f}",
      f"(eval-mode maps span {maps_mid.min():.2f} .. {maps_mid.max():.2f})")
if bns:
    print("running_mean of the first BatchNorm changed by the forward pass:",
          f"{(bns[0].running_mean - before).abs().max():.4f}")
stem_change = float((convlens.feature_maps(probe, x, first_name)
                     - convlens.feature_maps(model, x, first_name)).abs().max())
print(f"max |train-mode map - eval-mode map| at {first_name}: {stem_change:.3g}")
lesson.record("middle_name", ctx.layers["middle"])
lesson.record("train_change", train_change, ".1f")
lesson.record("eval_min", float(maps_mid.min()), ".1f")
lesson.record("eval_max", float(maps_mid.max()), ".1f")
lesson.record("stem_change", stem_change, ".3g")
_ = lesson.expect(stem_change == 0 and train_change > 0.25 * float(maps_mid.max() - maps_mid.min()),
                  "train mode leaves the first convolution's raw output alone and changes the "
                  "middle layer's maps by a sizeable share of their range",
                  (stem_change, train_change))

# %% [markdown]
# ## Exercises
#
# 1. Load your own checkpoint (`convlens_course.lesson.setup(weights="my.pt")`) and draw its first-layer
#    filters with `plot.filters_rgb` and with `plot.rgb_filter_mosaic(..., per_filter=False)`.
#    How many filters are nearly dead?
# 2. Fold the batch norm into the first-layer filters ($w' = w\,\gamma/\sigma$) and redraw
#    [Figure 1](#figure-1). Which filters change sign?
# 3. Pick one channel of `ctx.layers["middle"]` that fires on the cat. Compute its feature map
#    for `ctx.image("coffee")` and `ctx.image("astronaut")`: does it respond to the same kind of
#    texture there?
# 4. Replace the channel mean by the channel *maximum* and by the mean of $|A|$ in [Figure 7](#figure-7).
#    Which view is closest to "where the network looks" in [Grad-CAM](08-grad-cam.ipynb)?
# 5. Train a tiny CNN on a toy data set for a few epochs and save its first-layer filters after
#    each epoch: when do they stop looking like the random initialisation?
