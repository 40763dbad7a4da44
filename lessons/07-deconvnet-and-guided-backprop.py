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
# # Deconvnet and guided back-propagation
#
# **Summary.** Changing how gradients pass through ReLUs, and what these pictures, sharper in the papers, do and do not show on a real network.
#
# **The question.** "Papers show pictures labelled *deconvnet* or *guided backprop* that look
# much sharper than the grainy input gradient. What do these methods compute that the gradient
# does not, and how do I implement them in PyTorch without getting it subtly wrong?"
#
# All three methods start from the same place: pick a class score $f_c$ and send a signal
# backwards from it to the pixels, through the very same convolutions, poolings and
# normalisations as ordinary back-propagation. They differ at **one** kind of layer only: the
# rectifier. Plain back-propagation lets the incoming gradient through a ReLU where the ReLU was
# *open in the forward pass* (its input $s$ was positive). Zeiler & Fergus's **deconvnet** looks
# at the signal itself instead: it lets through only the *positive* part of what comes from
# above, whatever the forward pass did. Springenberg et al.'s **guided back-propagation** asks
# for both: the unit was active *and* the signal arriving from above is positive.
#
# That one change has large consequences. Only the positive part of the signal passes each
# rectifier on the way down, and the deconvnet passes it through units that were off in the
# forward pass as well (its values grow far larger than the gradient's, measured below). (The
# maps still have both signs: what leaves
# the lowest rectifier is non-negative, but the first convolution, below it, has weights of
# both signs.) The price is that the maps are no longer the derivative of anything:
# they stop answering "how would the score change", and, as we will measure, on this course's
# model one of them does not depend on the photo at all, and for the {{ n_spread }} classes we
# compare on one image, the class changes their pattern little (though, asked for the cup
# instead of the cat, guided backprop moves part of its mass to the cup).
# With $s$ the ReLU's forward input and $g$ the gradient arriving at its output, the three
# backward rules are
#
# $$ \underbrace{\mathbf 1\{s>0\}\,g}_{\text{gradient}} \qquad
#    \underbrace{\mathbf 1\{g>0\}\,g}_{\text{deconvnet}} \qquad
#    \underbrace{\mathbf 1\{s>0\}\,\mathbf 1\{g>0\}\,g}_{\text{guided backprop}} $$
#
# Papers: Zeiler & Fergus 2014, *Visualizing and Understanding Convolutional Networks*
# ([arXiv:1311.2901](https://arxiv.org/abs/1311.2901)); Springenberg et al. 2014, *Striving for
# Simplicity: The All Convolutional Net* ([arXiv:1412.6806](https://arxiv.org/abs/1412.6806));
# and two papers that explain what the pictures really show: Nie, Zhang & Patel 2018, *A
# Theoretical Explanation for Perplexing Behaviors of Backpropagation-based Visualizations*
# ([arXiv:1805.07039](https://arxiv.org/abs/1805.07039)), and Adebayo et al. 2018, *Sanity
# Checks for Saliency Maps* ([arXiv:1810.03292](https://arxiv.org/abs/1810.03292)).
#
# Both rules are defined for *rectifiers* only. `convlens.guided.rectifier_support(model)` says
# beforehand which case a model is: `"modules"` (every rectifier is an `nn.ReLU`/`nn.ReLU6`
# module), `"functional"` (some are `F.relu`/`F.relu6` calls, which the library reaches too),
# `"unsupported"` (another activation runs, such as SiLU, Hardswish or GELU: both methods
# refuse with an error naming it and its module, rather than returning a plain gradient under
# the method's name) or `"none"`. For the model this page was built with, **{{ name }}**, the
# answer is **{{ support }}** (printed below the first cell{{ skip_note }}).

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import convlens
from convlens import plot
from convlens.guided import rectifier_support, unsupported_activations
from convlens.hooks import count_hooks
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device)
lesson.record("name", ctx.name)

support = rectifier_support(model)
rules_apply = support in ("modules", "functional")
print("rectifier_support:", support)
if not rules_apply:
    print("deconvnet and guided backprop refuse this model; its other activations "
          "(module, type):", unsupported_activations(model)[:6])
    print("The sections on the course model below are skipped; the tiny networks still run.")
lesson.record("support", support)
lesson.record("skip_note", "" if rules_apply else "; the sections that run both methods on "
              "this model are skipped, since they refuse it")
lesson.expect(rules_apply, "deconvnet and guided backprop apply to this model", support)


def skip(*names):
    """Record the placeholders of a section that cannot run on this model."""
    for name in names:
        lesson.record(name, "n/a (skipped on this model)")


x = ctx.image("chelsea")  # the cat photo, normalized, [1, 3, 224, 224]
for label, p in ctx.top_classes(x, k=3):
    print(f"  {p:6.1%}  {label}")
target = ctx.most_probable(lesson.CAT_CLASSES, x)  # the most probable cat class, as in lessons 05 and 08
print("explaining class", target, repr(ctx.labels[target]))
cat_label = lesson.record("cat_label", ctx.labels[target])

# %% [markdown]
# ## The three rules on six numbers
#
# To see the rules act, take the smallest possible "network": one ReLU followed by a fixed
# linear read-out $f(x) = \sum_i w_i\,\mathrm{ReLU}(s_i)$. The gradient arriving at the ReLU's
# output is then exactly $g = w$, so we choose $s$ and $w$ to cover all four sign
# combinations. We do not compute the table by hand: we call the *library's* three functions
# on this tiny model, so the table is also a check of `convlens`.

# %%
s = torch.tensor([1.5, 0.5, -0.5, -1.5, 2.0, -2.0])  # ReLU input in the forward pass
g = torch.tensor([0.8, -0.6, 0.7, -0.9, -0.3, 0.4])  # gradient arriving from above (= w)

readout = nn.Linear(len(s), 1, bias=False)
with torch.no_grad():
    readout.weight.copy_(g[None])
tiny = nn.Sequential(nn.ReLU(), nn.Flatten(), readout).eval()
s_batch = s.view(1, 1, 1, -1)  # the library wants an image batch [N, C, H, W]

rules = {
    "gradient": convlens.gradient(tiny, s_batch, 0).flatten(),
    "deconvnet": convlens.deconvnet(tiny, s_batch, 0).flatten(),
    "guided": convlens.guided_backprop(tiny, s_batch, 0).flatten(),
}
print("    s      g  | gradient  deconvnet  guided")
for i in range(len(s)):
    print(f"{s[i]:5.1f}  {g[i]:5.1f}  | " + "  ".join(f"{r[i]:8.1f}" for r in rules.values()))

# the same three columns from the formulas
assert torch.equal(rules["gradient"], (s > 0) * g)
assert torch.equal(rules["deconvnet"], (g > 0) * g)
assert torch.equal(rules["guided"], (s > 0) * (g > 0) * g)

# %%
fig, axes = plt.subplots(1, 4, figsize=(10, 2.4), sharey=True)
idx = np.arange(len(s))
axes[0].bar(idx - 0.2, s.numpy(), width=0.4, color="tab:gray", label="s (forward input)")
axes[0].bar(idx + 0.2, g.numpy(), width=0.4, color="tab:purple", label="g (from above)")
axes[0].legend(fontsize=7, loc="lower left")
axes[0].set_title("inputs", fontsize=9)
for ax, (name, r) in zip(axes[1:], rules.items()):
    ax.bar(idx, r.numpy(), color=["tab:green" if v > 0 else "tab:red" for v in r.tolist()])
    ax.set_title(f"{name}: passed back", fontsize=9)
for ax in axes:
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(idx)
    ax.set_xlabel("unit", fontsize=8)
fig.tight_layout()
lesson.show(fig, "One ReLU, six units: what each backward rule passes to the layer below, "
                 "for every combination of the signs of s and g.",
            model="a hand-set toy: one ReLU and a linear read-out")

# %% [markdown]
# Read the table row by row. Units 0, 1 and 4 were active: the gradient passes $g$ whatever its
# sign; guided backprop keeps it only when positive (unit 0). Units 2, 3 and 5 were *off* in the
# forward pass: the gradient and guided backprop pass nothing, but the deconvnet happily passes
# the positive signals of units 2 and 5, although those units contributed nothing to the score.
# Only the sign of $g$ matters to the deconvnet, so it forgets which units of *this* image
# fired; guided backprop remembers the forward pass, and also throws away every negative signal.

# %% [markdown]
# ## Pictures on the cat photo
#
# Same network, same photo, same class ({{ cat_label }}, the photo's most probable cat class),
# three rules. The signed view maps 0 to grey (all three colour channels scaled together); the
# magnitude view is $\max_{\text{colour}}|\cdot|$ per pixel. Both views scale each map by
# the 99.5th percentile of its $|\cdot|$ and clip there, so the largest 0.5% of its values
# saturate and a few extreme pixels cannot turn the rest of the map black.

# %%
LEVELS = 16  # display maps are rounded to 16 levels: invisible, and the PNGs stay small


def magnitude(attribution):
    """max |a| over colour channels, clipped at the 99.5th percentile, in 16 levels."""
    m = plot.heatmap(attribution, percentile=99.5)
    return np.round(m * (LEVELS - 1)) / (LEVELS - 1)


def signed(attribution):
    """Signed RGB view (grey = 0), clipped at the 99.5th percentile of |a|, 9 levels."""
    rgb = plot.signed_to_rgb(attribution, percentile=99.5)
    return np.round(rgb * (LEVELS // 2)) / (LEVELS // 2)


if rules_apply:
    maps = {
        "gradient": convlens.gradient(model, x, target),
        "deconvnet": convlens.deconvnet(model, x, target),
        "guided backprop": convlens.guided_backprop(model, x, target),
    }
    image = ctx.to_display(x)
    fig, axes = plt.subplots(2, 4, figsize=(7.6, 3.8))
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("input", fontsize=9)
    axes[1, 0].imshow(image.mean(axis=2), cmap="gray")
    axes[1, 0].set_title("input (grey)", fontsize=9)
    for col, (name, a) in enumerate(maps.items(), start=1):
        axes[0, col].imshow(signed(a))
        axes[0, col].set_title(f"{name}, signed", fontsize=9)
        axes[1, col].imshow(magnitude(a), cmap="gray", vmin=0, vmax=1)
        axes[1, col].set_title(f"{name}, |·|", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    lesson.show(fig, f"Gradient, deconvnet and guided backprop of the logit of "
                     f"{ctx.labels[target]!r} on the cat photo: signed (grey = 0) and max |·| over "
                     "RGB, both clipped at the 99.5th percentile of |·|.")

    print("            max |value|   share of positive entries")
    positive = {}
    for name, a in maps.items():
        positive[name] = (a > 0).float().mean().item()
        print(f"{name:16s} {a.abs().max().item():9.3g}   {positive[name]:10.1%}")
    ratio = (maps["deconvnet"].abs().max() / maps["gradient"].abs().max()).item()
    lesson.record("deconv_ratio", ratio, ".0f")
    guided_ratio = (maps["guided backprop"].abs().max() / maps["gradient"].abs().max()).item()
    lesson.record("guided_ratio", guided_ratio, ".1f")
    lesson.record("gate_ratio", ratio / guided_ratio, ".0f")
    lesson.expect(guided_ratio < ratio / 4, "guided backprop's raw values, though it also keeps "
                  "only positive parts, stay far below the deconvnet's", (guided_ratio, ratio))
    lesson.record("deconv_positive", positive["deconvnet"], ".0%")
    lesson.record("guided_positive", positive["guided backprop"], ".0%")
    lesson.expect(ratio > 10, "the deconvnet's raw values are far larger than the gradient's",
                  ratio)
    lesson.expect(all(0.1 < share < 0.9 for share in positive.values()),
                  "all three maps have both signs, each at least a tenth of its entries", positive)

    # Is the deconvnet's picture a grid? Correlate one central window (away from the
    # borders) with the window `shift` pixels further down (across=True: further right). The
    # window is the same for every shift, and the farthest shift still ends `margin` pixels
    # inside the border, where padding changes the pattern.
    def shifted_correlation(a, shift, across=False):
        plane = a[0].sum(0).cpu()
        plane = plane.T if across else plane
        rows, cols = plane.shape
        margin = min(40, rows // 4)
        end = rows - margin - jump
        return plot.correlation(plane[margin:end, margin:cols - margin],
                                plane[margin + shift:end + shift, margin:cols - margin])

    strided = [n for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and tuple(m.stride) != (1, 1)]
    jump = convlens.receptive_field(model)[ctx.layers["last_spatial"]].stride[0]
    shifts = {s: shifted_correlation(maps["deconvnet"], s) for s in (1, 2, jump // 2, jump)}
    across = {s: shifted_correlation(maps["deconvnet"], s, across=True) for s in shifts}
    print("deconvnet map against itself shifted down by s pixels:",
          ", ".join(f"s={s}: {r:.2f}" for s, r in shifts.items()))
    print("                      ... shifted right by s pixels:",
          ", ".join(f"s={s}: {r:.2f}" for s, r in across.items()))
    print(f"{len(strided)} strided convolutions; total stride at {ctx.layers['last_spatial']}: "
          f"{jump} px")
    lesson.record("n_strided", len(strided))
    lesson.record("total_stride", jump)
    lesson.record("half_stride", jump // 2)
    lesson.record("half_stride_less", jump // 2 - 1)
    lesson.record("grid_corr_half", shifts[jump // 2], ".2f")
    lesson.record("grid_corr_full", shifts[jump], ".2f")
    lesson.record("grid_across_half", across[jump // 2], ".2f")
    lesson.record("grid_across_full", across[jump], ".2f")
    lesson.expect(min(shifts[jump // 2], shifts[jump]) > 0.9,
                  "the deconvnet map repeats itself down the columns at half the network's total "
                  "stride and at the full stride (correlation > 0.9 at both)", shifts)
    lesson.expect(min(across[jump // 2], across[jump]) > 0.9,
                  "along the rows the map repeats at the same two periods", across)

    def fine_scale(direction, table):
        one, two = table[1], table[2]
        if one < -0.3 and two > 0.5:
            return (f"{direction} neighbouring pixels are partly anticorrelated and pixels two "
                    f"apart correlate ({one:.2f}, {two:.2f}): an alternating component")
        if abs(one) < 0.5 and abs(two) < 0.5:
            return f"{direction} one and two pixels give weak correlations ({one:.2f}, {two:.2f})"
        return f"{direction} one and two pixels give {one:.2f} and {two:.2f}"

    lesson.record("fine_scale", ("At one and two pixels it is another story: "
                                 if max(shifts[2], across[2]) < 0.9 else
                                 "A shift of two pixels repeats it closely too, in at least one "
                                 "direction, so its finest period may be 2 pixels: ")
                  + fine_scale("vertically", shifts) + "; "
                  + fine_scale("horizontally", across) + ".")
else:
    skip("deconv_ratio", "guided_ratio", "deconv_positive", "guided_positive", "n_strided",
         "total_stride", "half_stride", "grid_corr_half", "grid_corr_full", "half_stride_less",
         "gate_ratio", "grid_across_half", "grid_across_full", "fine_scale")

# %% [markdown]
# The gradient is the familiar speckle of [the saliency lesson](06-saliency-and-smoothgrad.ipynb).
# The deconvnet's largest raw value is {{ deconv_ratio }} times the gradient's. With the forward
# gate kept, keeping only positive parts (guided backprop) raises it {{ guided_ratio }}-fold;
# dropping the gate as well (the deconvnet: its signal also flows through the units that were
# off) multiplies it by a further {{ gate_ratio }}. That is one order of making the two
# changes, on the single largest value; the signed, ungated case is not measured.
# Its signs still mix ({{ deconv_positive }} of its entries are positive, {{ guided_positive }}
# of guided backprop's): what leaves the lowest rectifier is non-negative, but the first
# convolution (and its BatchNorm scale) has weights of both signs.
#
# The deconvnet's picture is a regular grid with no cat in it. One central window, compared
# with the window {{ half_stride }} pixels further down, correlates at {{ grid_corr_half }};
# {{ total_stride }} pixels down, at {{ grid_corr_full }}. Shifted right, the same
# correlations are {{ grid_across_half }} and {{ grid_across_full }}. So in both directions
# the pattern repeats closely at shifts of {{ half_stride }} pixels (half the network's total
# stride) and {{ total_stride }} (the total stride). {{ fine_scale }}
# Shifts from 3 to {{ half_stride_less }} were not tested, so the coarse
# period could be shorter than {{ half_stride }}. Guided backprop, whose rule also keeps the forward pass's gate
# $\mathbf 1\{s>0\}$ (the deconvnet keeps no gate at all), does follow the photo. Is the deconvnet's pattern about this photo at all? Give it a
# completely different photo, the coffee cup, with the same class:

# %%
if rules_apply:
    other = ctx.image("coffee")
    deconv_other = convlens.deconvnet(model, other, target)
    photo_corr = plot.correlation(maps["deconvnet"].cpu(), deconv_other.cpu())
    guided_photo_corr = plot.correlation(maps["guided backprop"].cpu(),
                                         convlens.guided_backprop(model, other, target).cpu())
    max_pools = [n for n, m in model.named_modules() if isinstance(m, (nn.MaxPool2d, nn.MaxPool1d))]
    print(f"deconvnet, cat photo vs coffee photo, correlation:       {photo_corr:.4f}")
    print(f"guided backprop, cat photo vs coffee photo, correlation: {guided_photo_corr:.4f}")
    print(f"max-pooling layers in {ctx.name}: {len(max_pools)} {max_pools}")
    lesson.record("deconv_photo_corr", photo_corr, ".4f")
    lesson.record("guided_photo_corr", guided_photo_corr, ".2f")
    lesson.record("n_maxpool", len(max_pools))
    lesson.expect(not max_pools, "this model has no max-pooling layer", len(max_pools))
    lesson.expect(photo_corr > 0.999, "the deconvnet map is the same for two different photos",
                  photo_corr)
    lesson.expect(guided_photo_corr < 0.5, "guided backprop's maps of two photos differ",
                  guided_photo_corr)
else:
    skip("deconv_photo_corr", "guided_photo_corr", "n_maxpool")

# %% [markdown]
# The deconvnet maps of the cat and of the coffee cup correlate at {{ deconv_photo_corr }}:
# the same picture, whatever the input (guided backprop's two maps: {{ guided_photo_corr }}).
# The reason is in the rule. The deconvnet's ReLU rule reads only the signal from above, never
# the forward input $s$. Every other layer of this network is, going backwards, a linear map
# fixed by the weights: convolutions (depthwise or not), BatchNorm in eval mode (a fixed scale
# per channel), the residual additions, global average pooling and the classifier. This model
# has {{ n_maxpool }} max-pooling layers. So the deconvnet's backward pass, started from the
# logit of one class, is a fixed chain of linear maps and positive parts that never looks at the
# photo: it draws the imprint of the weights.
#
# Why a grid? The design of the network draws it. Global average pooling hands the *same*
# vector to every position of the last feature map. This network shrinks the image with
# {{ n_strided }} strided convolutions instead of pooling layers (a total stride of
# {{ total_stride }} pixels), and going backwards each of them is a transposed convolution that
# paints the same kernel-sized pattern into every cell of its stride. Identical signals at
# every position, painted through the same kernels, give a periodic pattern, away from the
# borders where the padding changes it. A pattern that repeats every {{ total_stride }} pixels
# may also repeat, nearly, every {{ half_stride }}; the correlations above say that it does
# at both shifts ({{ grid_corr_half }} and {{ grid_corr_full }}), not which layer sets the
# period. An alternation from one pixel to the next may come from the stride-2 first
# convolution (compare the checkerboard artefacts of transposed convolutions, Odena, Dumoulin
# & Olah 2016, [Distill](https://distill.pub/2016/deconv-checkerboard/)); we do not isolate
# it.
#
# In Zeiler & Fergus's network the photo did get in, through **max-pooling switches**. Each
# max-pooling layer records, in the forward pass, which position of each pooling window held
# the maximum (the "switch"); the deconvnet's unpooling puts the signal back at exactly those
# positions and zero elsewhere. The switches are the deconvnet's only memory of the input
# (besides its starting point: Zeiler & Fergus projected one activation of one feature map of
# this image, not a class logit), and they are what make their pictures look like parts of the
# photo. PyTorch's backward of `nn.MaxPool2d` does the same routing, so on a network with
# max-pooling (AlexNet, VGG, ResNet's stem) `convlens.deconvnet` uses switches without further
# work. Guided backprop keeps a memory of the input at every rectifier (the gate
# $\mathbf 1\{s>0\}$), which is why it follows the cat here.
#
# ## Switches: the deconvnet on a network with max-pooling
#
# To see what the switches do, we need a trained network with max-pooling. The course has one
# whose answer we also know: `evidence_net`, a small VGG-style network (a 7×7 convolution,
# then 3×3 convolutions, ReLUs and three 2×2 max-poolings) that the build trains itself on
# `convlens.images.evidence_set`. Each of its 64×64 images holds one small shape
# (a plus, a cross, a ring or a corner) among clutter that never decides the class, so the
# pixels that decide, the *evidence*, are known: the shape's square patch (outlined in red
# below). `convlens.deconvnet(..., switches=False)` is the same deconvnet with the memory
# removed: each max-pooling spreads the signal evenly over its 2×2 window instead of sending
# it to the maximum.
#
# First the two rules on one 2×2 max-pooling of a 4×4 input, whose maxima sit at the
# bottom-right of each window, followed by a linear read-out with weights 1, −2, 3, 4:

# %%
pool_net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4, 1, bias=False)).eval()
with torch.no_grad():
    pool_net[0].weight.fill_(1.0)  # the identity
    pool_net[4].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 4.0]]))
grid = torch.arange(16.0).view(1, 1, 4, 4)
with_switches = convlens.deconvnet(pool_net, grid, 0)[0, 0]
without_switches = convlens.deconvnet(pool_net, grid, 0, switches=False)[0, 0]
print("input:\n", grid[0, 0].int().numpy())
print("deconvnet with switches:\n", with_switches.numpy())
print("deconvnet without switches:\n", without_switches.numpy())

# %% [markdown]
# With switches the signal of each window returns to the one pixel that won the max-pooling in
# this input; the weight −2 is dropped by the deconvnet's ReLU rule either way. Without
# switches each window's signal is shared by its four pixels, whatever the input held.
#
# Now the trained network, on evidence images of all four classes, each map for the image's
# own class:

# %%
evidence = lesson.load_model("evidence_net")
N_EVIDENCE = 32
pixels, labels, truth = convlens.images.evidence_set(
    N_EVIDENCE, generator=torch.Generator().manual_seed(ctx.seed + 7))
inputs = convlens.evidence_net.normalize(pixels).to(ctx.device)
labels = labels.to(ctx.device)
with torch.no_grad():
    accuracy = (evidence.model(inputs).argmax(1) == labels).float().mean().item()
print(f"evidence_net: {len(evidence.labels)} classes {evidence.labels}, accuracy on these "
      f"{N_EVIDENCE} images: {accuracy:.0%}")
lesson.record("evidence_accuracy", accuracy, ".0%")
lesson.record("n_evidence", N_EVIDENCE)

switch_maps = {
    "deconvnet (switches)": convlens.deconvnet(evidence.model, inputs, labels),
    "deconvnet (no switches)": convlens.deconvnet(evidence.model, inputs, labels,
                                                  switches=False),
    "guided backprop": convlens.guided_backprop(evidence.model, inputs, labels),
    "gradient": convlens.gradient(evidence.model, inputs, labels),
}
magnitudes = {name: a.detach().abs().amax(dim=1).cpu() for name, a in switch_maps.items()}

fig, axes = plt.subplots(4, 1 + len(switch_maps), figsize=(9.0, 7.6))
for row, i in enumerate(range(4)):  # one image of each class
    axes[row, 0].imshow(pixels[i].permute(1, 2, 0).numpy())
    rows, cols = np.nonzero(truth[i].numpy())
    axes[row, 0].add_patch(plt.Rectangle((cols.min() - 0.5, rows.min() - 0.5),
                                         cols.max() - cols.min() + 1, rows.max() - rows.min() + 1,
                                         fill=False, ec="red", lw=1.5))
    axes[row, 0].set_title(f"input: {evidence.labels[int(labels[i])]}", fontsize=9)
    for col, (name, m) in enumerate(magnitudes.items(), start=1):
        top = max(float(np.percentile(m[i].numpy(), 99.5)), 1e-12)
        axes[row, col].imshow(m[i].numpy(), cmap="gray_r", vmin=0, vmax=top)
        if row == 0:
            axes[row, col].set_title(name, fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
lesson.show(fig, "evidence_net: four evidence images (the deciding patch outlined in red) and "
                 "max |·| over RGB of each map for the image's class (dark = large, each panel "
                 "clipped at its 99.5th percentile).", model="evidence_net")

# %% [markdown]
# Three numbers say what the figure shows, over all {{ n_evidence }} images (the network
# classifies {{ evidence_accuracy }} of them correctly): how similar the maps of two
# *different* images of the same class are, the share of each map's magnitude that lies on
# the deciding patch (`convlens.evaluate.evidence_mass`; a map spread evenly scores the
# patch's share of the image, {{ patch_share }}), and how often its largest value lies on the
# patch (the pointing game with no tolerance).

# %%
def same_class_correlation(m):
    """Mean correlation between the maps of two different images of the same class."""
    values = [plot.correlation(m[i], m[j]) for i in range(len(m)) for j in range(i + 1, len(m))
              if labels[i] == labels[j]]
    return float(np.mean(values))


boxes = []
for mask in truth.numpy():
    rows, cols = np.nonzero(mask)
    boxes.append((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
switch_table = {}
print(f"{'':>24} {'same-class r':>13} {'evidence mass':>14} {'pointing':>9}")
for name, m in magnitudes.items():
    switch_table[name] = (same_class_correlation(m),
                          convlens.evaluate.evidence_mass(m, truth).mean().item(),
                          convlens.evaluate.pointing_game(m, boxes, tolerance=0)
                          .float().mean().item())
    r, mass, hits = switch_table[name]
    print(f"{name:>24} {r:13.2f} {mass:14.1%} {hits:9.0%}")
patch_share = truth.float().mean().item()
print(f"{'(patch share of image)':>24} {'':13} {patch_share:14.1%}")
with_s, without_s = switch_table["deconvnet (switches)"], switch_table["deconvnet (no switches)"]
lesson.record("patch_share", patch_share, ".1%")
lesson.record("switch_corr", with_s[0], ".2f")
lesson.record("noswitch_corr", without_s[0], ".2f")
lesson.record("switch_mass", with_s[1], ".0%")
lesson.record("noswitch_mass", without_s[1], ".1%")
lesson.record("switch_hits", with_s[2], ".0%")
lesson.record("noswitch_hits", without_s[2], ".0%")
lesson.record("guided_hits", switch_table["guided backprop"][2], ".0%")
lesson.record("gradient_hits", switch_table["gradient"][2], ".0%")
lesson.record("gradient_mass", switch_table["gradient"][1], ".0%")
lesson.expect(with_s[1] <= switch_table["gradient"][1] and with_s[2] <= switch_table["gradient"][2],
              "with switches the deconvnet does not beat the gradient on mass or pointing",
              (with_s, switch_table["gradient"]))
lesson.expect(without_s[0] > 0.999 and with_s[0] < 0.5,
              "without switches the deconvnet draws one picture per class; with them, "
              "different images give different maps", (with_s[0], without_s[0]))
_ = lesson.expect(with_s[2] > without_s[2] + 0.4 and with_s[1] > 2 * without_s[1],
                  "with switches the deconvnet points at the evidence far more often, and puts "
                  "more of its mass there", (with_s, without_s))

# %% [markdown]
# Without switches the deconvnet draws one picture per class: two different images of the
# same class give maps that correlate at {{ noswitch_corr }}, its mass on the deciding patch
# is {{ noswitch_mass }} (about the patch's share of the image) and its maximum lands on the
# patch for {{ noswitch_hits }} of the images. With switches the same rule gives different
# maps for different images ({{ switch_corr }}), puts {{ switch_mass }} of its mass on the
# patch and points at it in {{ switch_hits }} of the images (guided backprop
# {{ guided_hits }}, the gradient {{ gradient_hits }}). So on a network that pools by maxima,
# the deconvnet does see the image, through the switches and only through them: every
# positive signal from above is sent down to the positions that won the max-pooling in this
# image, which sit on high-contrast objects, the shape and (in Figure 3) the clutter too:
# {{ switch_mass }} of its mass lands on the patch, which holds {{ patch_share }} of the image.
# That makes it see the image, not explain it better: it does not beat the plain gradient here,
# neither by its mass on the patch ({{ switch_mass }} against {{ gradient_mass }}) nor by
# pointing.
# [Lesson 09](09-can-you-trust-a-saliency-map.ipynb) scores every method on this network
# against the known evidence, on its own draw of evidence images, so its numbers differ
# somewhat from the ones above.

# %% [markdown]
# ## Implementing the rules with hooks, correctly
#
# `convlens.deconvnet` and `convlens.guided_backprop` are the plain gradient computed while
# every rectifier back-propagates by the other rule (`convlens.hooks.relu_backward_rule`).
# The library's approach, in five sentences:
#
# 1. The new rule is a small `torch.autograd.Function` whose forward is the rectifier and whose
#    backward is the rule; for guided backprop it saves the forward gate $\mathbf 1\{s>0\}$.
# 2. A **forward pre-hook** on each `nn.ReLU`/`nn.ReLU6` runs that function on the module's
#    input *before* the module itself runs, so an in-place ReLU, which overwrites its input, can
#    no longer destroy the $s$ the rule needs.
# 3. A **forward hook** then returns that output instead of the module's own, so the rest of the
#    network is wired to the new backward rule. Each call pushes and pops its own output, so a
#    module called several times in one forward pass gets the rule on *every* call.
# 4. Functional calls (`F.relu(h)`, `h.relu()`, `F.relu6(h)`) have no module to hook: a
#    `torch.overrides.TorchFunctionMode`, active during the forward pass, replaces each such call
#    by the same function. Any other activation (module or call) raises a `ValueError`.
# 5. All hooks are removed in a `finally` block: after the call (or an exception) the model is
#    exactly as it was, with no attribute set on any module.
#
# Here is the module part of the idea in a dozen lines of your own, for guided backprop,
# checked against the library. `upper` is the rectifier's ceiling: $+\infty$ for ReLU, 6 for
# ReLU6 (see below). It sees modules only; the functional-ReLU trap below shows what that
# costs.

# %%
class GuidedRectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, upper):
        ctx.save_for_backward((s > 0) & (s < upper))  # the forward gate
        return s.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):
        (gate,) = ctx.saved_tensors
        return g.clamp(min=0) * gate, None  # 1{gate} * 1{g > 0} * g


def my_guided_backprop(model, x, target):
    handles = []
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            upper = float(m.max_val) if isinstance(m, nn.ReLU6) else float("inf")
            pending = []  # one entry per call in flight (a module may be called twice)
            handles.append(m.register_forward_pre_hook(
                lambda mod, args, p=pending, u=upper: p.append(GuidedRectifier.apply(args[0], u))))
            handles.append(m.register_forward_hook(
                lambda mod, args, out, p=pending: p.pop()))
    try:
        inp = x.detach().clone().requires_grad_(True)
        scores = model(inp)[torch.arange(len(inp)), target]  # one target per example
        return torch.autograd.grad(scores.sum(), inp)[0]
    finally:
        for h in handles:
            h.remove()


if rules_apply:
    mine = my_guided_backprop(model, x, target)
    same = torch.allclose(mine, maps["guided backprop"], rtol=1e-4, atol=1e-5)
    print(f"my version == convlens.guided_backprop on {ctx.name}:", same)
    lesson.expect(same or support == "functional",
                  "the dozen lines agree with the library on this model", same)

# %% [markdown]
# ### ReLU6: where is the gate?
#
# EfficientNet-Lite0, the course's default model, has no `nn.ReLU` at all: its rectifiers are
# ReLU6, $\min(\max(0, s), 6)$, which is flat on *both* sides (the model this page was built
# with, {{ name }}, has {{ rectifier_types }}). Its true derivative is
# $\mathbf 1\{0<s<6\}$, so the forward gate of the gradient and of guided backprop becomes
# $\mathbf 1\{0<s<6\}$; the deconvnet, which ignores $s$, is unchanged. A unit saturated at 6
# passes nothing back under guided backprop, just as under the gradient. We check it on the tiny
# model with an extra unit at $s=7$:

# %%
s6 = torch.tensor([1.5, -0.5, 7.0, 7.0])
g6 = torch.tensor([0.8, 0.7, 0.5, -0.5])
readout6 = nn.Linear(4, 1, bias=False)
with torch.no_grad():
    readout6.weight.copy_(g6[None])
tiny6 = nn.Sequential(nn.ReLU6(), nn.Flatten(), readout6).eval()
print("   s     g   | gradient  deconvnet  guided   (ReLU6)")
r6 = [f(tiny6, s6.view(1, 1, 1, -1), 0).flatten()
      for f in (convlens.gradient, convlens.deconvnet, convlens.guided_backprop)]
for i in range(4):
    print(f"{s6[i]:5.1f} {g6[i]:5.1f}  | " + "  ".join(f"{r[i]:8.1f}" for r in r6))
assert torch.equal(r6[2], ((s6 > 0) & (s6 < 6)) * (g6 > 0) * g6)  # guided: 1{0<s<6} 1{g>0} g
assert torch.equal(r6[1], (g6 > 0) * g6)  # deconvnet: only the sign of g matters
rectifiers = [type(m).__name__ for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
print(f"{ctx.name}: {len(rectifiers)} rectifier modules, types {sorted(set(rectifiers))}")
types = ", ".join(f"{rectifiers.count(t)} {t}" for t in sorted(set(rectifiers)))
rectifier_types = lesson.record("rectifier_types",
                                f"{types} modules" if types else "no rectifier module")

# %% [markdown]
# ## Traps
#
# Each trap below is something a first implementation of these rules does, usually without
# an error message.
#
# <div class="admonition warning"><p class="admonition-title">Trap: in-place ReLUs</p>
# <p>torchvision's VGG and ResNet use <code>nn.ReLU(inplace=True)</code>: after the module runs,
# its input tensor <em>is</em> its output. A forward hook that stores "the input" for later
# stores the output; <code>register_full_backward_hook</code> refuses in-place modules outright
# (a <code>RuntimeError</code> about a view modified in place, shown below). Compute what you
# need from the input in a forward <em>pre</em>-hook, before the module runs.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: reused modules</p>
# <p>torchvision's ResNet <code>BasicBlock</code> calls the same <code>self.relu</code> twice per
# block. State kept per module ("the input of this ReLU") is overwritten by the second call, so
# the first call's backward uses the wrong gate. Keep state per call (a stack), or in the
# autograd graph itself (an <code>autograd.Function</code> saves its own tensors). And never
# swap many ReLUs for <em>one</em> shared replacement instance: its state is then shared by the
# whole network, and you must still put the originals back afterwards.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: register_backward_hook</p>
# <p>The old <code>Module.register_backward_hook</code> (still in many tutorials) is deprecated:
# it hooks the <em>last</em> autograd operation inside the module, which is the right one only
# for single-operation modules, and it silently does something else for others. Its successor
# <code>register_full_backward_hook</code> is correct but fails on in-place modules. An
# <code>autograd.Function</code> put in place by forward hooks avoids both.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: functional F.relu, and other activations</p>
# <p>A model that writes <code>F.relu(x)</code> (or <code>x.relu()</code>) in its
# <code>forward</code> has no module to hook: a hook-based implementation silently computes
# the plain gradient at those rectifiers and calls the result "guided". <code>convlens</code>
# intercepts functional <code>relu</code>/<code>relu6</code> calls during the forward pass and
# applies the rule there too. A SiLU, Hardswish or GELU is no rectifier: the rules say nothing
# about it, so <code>convlens</code> raises a <code>ValueError</code> naming the activation and
# the module (both below).</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: hooks left behind</p>
# <p>A hook that is not removed keeps changing every later backward pass: your next "plain
# gradient", or your next training step, is quietly a guided one. Remove the handles in a
# <code>finally</code> block so an exception in the middle cannot leave them installed.</p></div>
#
# First the reused-module trap, on a tiny network that calls one ReLU twice. The "naive" rule
# stores the ReLU's input on the module in a forward hook (the way many tutorials do it) and
# gates the gradient with it in a full backward hook.

# %%
class TwiceReLU(nn.Module):
    """Two linear layers sharing one ReLU module, like a ResNet BasicBlock."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.fc1(x.flatten(1)))
        return self.head(self.relu(self.fc2(h)))  # same module, second call


twice = TwiceReLU().eval()
with torch.no_grad():  # identity layers; fc2 adds 1, so every unit is open on the 2nd call
    for layer in (twice.fc1, twice.fc2, twice.head):
        layer.weight.copy_(torch.eye(4)[: layer.out_features])
        layer.bias.zero_()
    twice.fc2.bias.fill_(1.0)
    twice.head.weight.fill_(1.0)
v = torch.tensor([1.0, -1.0, 2.0, -2.0]).view(1, 1, 1, 4)  # first call: units 1 and 3 off


def naive_guided(model, x, target):
    relu = model.relu
    h1 = relu.register_forward_hook(lambda m, args, out: setattr(m, "kept", args[0].detach()))
    h2 = relu.register_full_backward_hook(
        lambda m, g_in, g_out: (g_out[0].clamp(min=0) * (m.kept > 0),))
    try:
        return convlens.gradient(model, x, target)
    finally:
        h1.remove()
        h2.remove()
        del relu.kept


print("input v:                   ", v.flatten().tolist())
print("naive (state per module):  ", naive_guided(twice, v, 0).flatten().tolist())
print("convlens (state per call): ", convlens.guided_backprop(twice, v, 0).flatten().tolist())

# %% [markdown]
# The two disagree. Units 1 and 3 were off in the first call, so nothing may flow back to
# them; the naive version gated the first call's gradient with the *second* call's input (all
# positive) and let it through. Next, the in-place trap with the full backward hook, and the
# functional-ReLU trap: the same small network written twice, once with an `nn.ReLU` module
# and once with an `F.relu` call in the same place.

# %%
inplace_net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(),
                            nn.Linear(4 * 6 * 6, 2)).eval()
handle = inplace_net[1].register_full_backward_hook(lambda m, g_in, g_out: (g_out[0].clamp(min=0),))
try:
    convlens.gradient(inplace_net, torch.randn(1, 3, 8, 8), 0)
except RuntimeError as error:
    print("RuntimeError:", str(error)[:150], "...")
finally:
    handle.remove()
not_in_place = copy.deepcopy(inplace_net)
not_in_place[1] = nn.ReLU()  # the same weights, the rectifier no longer in place
probe_in = torch.randn(1, 3, 8, 8)
same = all(torch.allclose(rule(inplace_net, probe_in, 0), rule(not_in_place, probe_in, 0))
           for rule in (convlens.gradient, convlens.guided_backprop, convlens.deconvnet))
print("convlens on the in-place net equals the same net with inplace=False "
      "(gradient, guided backprop, deconvnet):", same)
_ = lesson.expect(same, "the library's maps of an in-place net equal those of the same net "
                  "without in-place rectifiers", same)


class TwoReLUs(nn.Module):
    """Two convolutions and two rectifiers; the first is a module or an F.relu call."""

    def __init__(self, functional):
        super().__init__()
        self.functional = functional
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.conv1(x)
        h = F.relu(h) if self.functional else self.relu1(h)  # F.relu: invisible to module hooks
        h = self.relu2(self.conv2(h))
        return self.head(h.mean(dim=(2, 3)))


with_module = TwoReLUs(functional=False).eval()
functional_net = copy.deepcopy(with_module)
functional_net.functional = True
probe = torch.randn(1, 3, 8, 8, generator=ctx.generator, device=ctx.device).cpu()
reference = convlens.guided_backprop(with_module, probe, 0)  # every rectifier a module
print("rectifier_support:", rectifier_support(with_module, (8, 8)), "|",
      rectifier_support(functional_net, (8, 8)))
hooks_only = my_guided_backprop(functional_net, probe, 0)
library = convlens.guided_backprop(functional_net, probe, 0)
print("F.relu net, my hook-only version: largest difference from the module net's",
      f"{(hooks_only - reference).abs().max().item():.3g}, against that map's largest value",
      f"{reference.abs().max().item():.3g}")
print("F.relu net, convlens.guided_backprop: largest difference",
      f"{(library - reference).abs().max().item():.3g}")
assert torch.allclose(library, reference) and not torch.allclose(hooks_only, reference)

silu_net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
print("rectifier_support:", rectifier_support(silu_net, (8, 8)),
      "| unsupported_activations:", unsupported_activations(silu_net, (8, 8)))
for method in (convlens.guided_backprop, convlens.deconvnet):
    try:
        method(silu_net, probe, 0)
    except ValueError as error:
        print(f"{method.__name__}: ValueError:", error)

# %% [markdown]
# Finally, hooks left behind. We count the forward hooks, forward pre-hooks and backward hooks
# on every module (`convlens.hooks.count_hooks`) after the calls above, including the ones
# that raised.

# %%
if rules_apply:
    convlens.guided_backprop(model, x, target)
    convlens.deconvnet(model, x, target)
else:
    try:
        convlens.guided_backprop(model, x, target)
    except ValueError as error:
        print("ValueError on this model:", str(error)[:200])
left = {ctx.name: count_hooks(model), "the F.relu net": count_hooks(functional_net),
        "the SiLU net (after the ValueError)": count_hooks(silu_net),
        "the twice-called net": count_hooks(twice)}
for where, n in left.items():
    print(f"hooks left on {where}: {n}")
print("attribute 'kept' left on the twice-called net's ReLU:", hasattr(twice.relu, "kept"))
assert sum(left.values()) == 0 and not hasattr(twice.relu, "kept")

# %% [markdown]
# ## Does the picture depend on the class?
#
# A class explanation should change when the class changes. The two-object image below has a
# cat on the left and a cup of espresso on the right; it is resized whole to 224×448 pixels
# (no crop), so both objects are in the input. We ask each method for the most probable cat
# class of the image, **{{ pair_cat }}**, and for **{{ pair_cup }}** (the most probable of
# the coffee classes).

# %%
pair = ctx.image("cat_and_coffee", size=(224, 448))
for label, p in ctx.top_classes(pair, k=5):
    print(f"  {p:6.1%}  {label}")
cat = ctx.most_probable(lesson.CAT_CLASSES, pair)
cup = ctx.most_probable(lesson.COFFEE_CLASSES, pair, exclude=(cat,))
classes = [cat, cup]
names = {c: ctx.labels[c] for c in classes}
print(f"explaining {names[cat]!r} (class {cat}) and {names[cup]!r} (class {cup})")
lesson.record("pair_cat", repr(names[cat]))
lesson.record("pair_cup", repr(names[cup]))
methods = {"gradient": convlens.gradient, "deconvnet": convlens.deconvnet,
           "guided backprop": convlens.guided_backprop}
N_SPREAD = lesson.record("n_spread", 5)  # classes spread over the ranking, below

if rules_apply:
    results = {(m, c): f(model, pair, c) for m, f in methods.items() for c in classes}
    fig, axes = plt.subplots(2, 4, figsize=(12.6, 4.0))
    pair_image = ctx.to_display(pair)
    axes[0, 0].imshow(pair_image)
    axes[0, 0].set_title("input", fontsize=9)
    axes[1, 0].imshow(pair_image.mean(axis=2), cmap="gray")
    axes[1, 0].set_title("input (grey)", fontsize=9)
    for col, name in enumerate(methods, start=1):
        for row, c in enumerate(classes):
            axes[row, col].imshow(magnitude(results[name, c]), cmap="gray", vmin=0, vmax=1)
            axes[row, col].set_title(f"{name}: {names[c]!r}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    lesson.show(fig, f"The cat + coffee image, and the gradient, deconvnet and guided backprop for "
                     f"the classes {names[cat]!r} (top) and {names[cup]!r} (bottom); max |·| over "
                     "RGB.")

    print(f"correlation of the {names[cat]!r} and {names[cup]!r} maps:")
    print("                   signed values   magnitude maps")
    corr, corr_mag = {}, {}
    for name in methods:
        a, b = results[name, cat], results[name, cup]
        corr[name] = plot.correlation(a.cpu(), b.cpu())
        corr_mag[name] = plot.correlation(plot.heatmap(a), plot.heatmap(b))
        print(f"{name:16s}  {corr[name]:13.2f}   {corr_mag[name]:14.2f}")

    def right_share(a):
        """The share of a map's magnitude (max |·| over RGB) in the right half, the cup's."""
        m = plot.heatmap(a)
        return float(m[:, m.shape[1] // 2:].sum() / m.sum())

    cup_side = {c: right_share(results["guided backprop", c]) for c in classes}
    print("guided backprop, share of the magnitude in the right half (the cup's): "
          + ", ".join(f"{names[c]!r} {share:.0%}" for c, share in cup_side.items()))
    lesson.record("guided_class_corr_mag", corr_mag["guided backprop"], ".2f")
    lesson.record("guided_right_cat", cup_side[cat], ".0%")
    lesson.record("guided_right_cup", cup_side[cup], ".0%")
    lesson.expect(cup_side[cup] > cup_side[cat],
                  "asking guided backprop for the cup class moves some of its map to the cup",
                  cup_side)
    lesson.record("grad_class_corr", corr["gradient"], ".2f")
    lesson.record("deconv_class_corr", corr["deconvnet"], ".2f")
    lesson.record("guided_class_corr", corr["guided backprop"], ".2f")
    lesson.expect(abs(corr["gradient"]) < 0.3,
                  "the signed gradients of the two classes are nearly uncorrelated",
                  corr["gradient"])
    lesson.expect(corr["deconvnet"] > 0.99, "the deconvnet gives the same picture for both classes",
                  corr["deconvnet"])
    lesson.expect(corr["guided backprop"] > 0.7,
                  "guided backprop's two class maps are still strongly correlated",
                  corr["guided backprop"])

    # One pair of classes is a thin test: take classes spread over the model's whole ranking
    # for this image (the most probable, then every 1000/N-th), one batch per method.
    with torch.no_grad():
        ranking = model(pair)[0].argsort(descending=True)
    spread = ranking[:: len(ranking) // N_SPREAD][:N_SPREAD]
    spread_ranks = list(range(1, len(ranking) + 1, len(ranking) // N_SPREAD))[:N_SPREAD]
    print("classes spread over the ranking:", [ctx.labels[int(c)] for c in spread], "at ranks",
          spread_ranks, "of", len(ranking))
    lesson.record("spread_ranks", ", ".join(map(str, spread_ranks[:-1])) + f" and {spread_ranks[-1]}")
    lesson.record("n_classes_ranked", len(ranking))
    spread_corr = {}
    for name in ("deconvnet", "guided backprop"):
        a = methods[name](model, pair.repeat(len(spread), 1, 1, 1), spread).cpu()
        spread_corr[name] = [plot.correlation(a[i], a[j])
                             for i in range(len(a)) for j in range(i + 1, len(a))]
        print(f"{name:16s} signed maps of {len(spread_corr[name])} class pairs: correlation "
              f"{min(spread_corr[name]):.3f} to {max(spread_corr[name]):.3f}")
    lesson.record("n_spread_pairs", len(spread_corr["deconvnet"]))
    lesson.record("deconv_spread_min", min(spread_corr["deconvnet"]), ".3f")
    lesson.record("guided_spread_min", min(spread_corr["guided backprop"]), ".3f")
    _ = lesson.expect(min(spread_corr["deconvnet"]) > 0.9
                      and min(spread_corr["guided backprop"]) > 0.7,
                      "for classes spread over the ranking, the deconvnet's and guided "
                      "backprop's maps stay strongly correlated", spread_corr)
else:
    skip("grad_class_corr", "deconv_class_corr", "guided_class_corr", "n_spread_pairs",
         "deconv_spread_min", "guided_spread_min", "guided_class_corr_mag", "guided_right_cat",
         "guided_right_cup", "spread_ranks", "n_classes_ranked")

# %% [markdown]
# Look at the numbers first. The signed gradients for the two classes are nearly uncorrelated
# (correlation {{ grad_class_corr }}): the two maps do not share their pixel-by-pixel pattern
# of signs. That alone does not show that each is about its own object: two independent
# speckles would correlate near zero too; the magnitude maps and the figure are what show
# where each map is large. The deconvnet gives the *same* picture for both classes
# (correlation {{ deconv_class_corr }}), and guided backprop's two maps are correlated at
# {{ guided_class_corr }} ({{ guided_class_corr_mag }} for the magnitude maps): both draw the
# cat's face and the cup; asking for {{ pair_cup }} brightens the cup (the right half of the
# image holds {{ guided_right_cup }} of the magnitude map, against {{ guided_right_cat }} for
# {{ pair_cat }}).
# Over {{ n_spread }} classes at ranks {{ spread_ranks }} of the model's
# {{ n_classes_ranked }} for this image, the signed maps of every one of the
# {{ n_spread_pairs }} pairs correlate at {{ deconv_spread_min }} or more for the deconvnet
# and {{ guided_spread_min }} or more for guided backprop. On this model and this image,
# then, the deconvnet does not depend on the photo and barely on the class; guided backprop
# keeps its pattern across classes (signed correlation {{ guided_class_corr }} for the two
# objects in the image), but asking for the cup moves part of its mass there
# ({{ guided_right_cat }} → {{ guided_right_cup }} of its magnitude in the right half), even
# though the two magnitude maps still correlate at {{ guided_class_corr_mag }}.
#
# Nie et al. 2018 give a theory of the guided-backprop half of this: dropping the negative
# signals at every rectifier while gating by the forward pass makes it perform a partial
# **image recovery**, on which the class you start from has little influence. This page
# measures only the second part, the weak influence of the class. (Their account of the deconvnet assumes max-pooling switches, which carry
# the photo in; without them, as here, the deconvnet does not see the photo at all.) Adebayo et al. 2018 turned this into a sanity check:
# if a saliency map barely changes when the model's weights are randomised, it cannot be
# explaining what the model learned. Let us run the simplest version of their test: replace
# the final classification layer by random weights and recompute.

# %%
if rules_apply:
    randomized = copy.deepcopy(model)
    last_linear = [m for m in randomized.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        w = torch.randn(last_linear.weight.shape, generator=ctx.generator, device=ctx.device)
        last_linear.weight.copy_(w * last_linear.weight.std())
        if last_linear.bias is not None:
            last_linear.bias.zero_()

    after = {name: f(randomized, x, target) for name, f in methods.items()}
    fig, axes = plt.subplots(1, 4, figsize=(8.8, 2.6))
    panels = [("gradient", "trained", maps["gradient"]),
              ("gradient", "random head", after["gradient"]),
              ("guided backprop", "trained", maps["guided backprop"]),
              ("guided backprop", "random head", after["guided backprop"])]
    for ax, (name, state, a) in zip(axes, panels):
        ax.imshow(magnitude(a), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\n{state}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    lesson.show(fig, f"Sanity check (Adebayo et al. 2018): maps of {ctx.labels[target]!r} on the "
                     "cat photo with the trained model and with its last linear layer "
                     "re-initialised at random.")

    sanity = {name: plot.correlation(plot.heatmap(maps[name]), plot.heatmap(after[name]))
              for name in after}  # the deconvnet is measured too, not drawn (no cat in it)
    for name, r in sanity.items():
        print(f"{name:16s} correlation trained vs random head (magnitude): {r:.2f}")
    lesson.record("sanity_guided", sanity["guided backprop"], ".2f")
    lesson.record("sanity_grad", sanity["gradient"], ".2f")
    lesson.record("sanity_deconv", sanity["deconvnet"], ".2f")
    lesson.expect(sanity["guided backprop"] > 0.9,
                  "guided backprop draws the same picture with a random classifier",
                  sanity["guided backprop"])
    lesson.expect(sanity["deconvnet"] > 0.9,
                  "the deconvnet draws the same picture with a random classifier",
                  sanity["deconvnet"])
    lesson.expect(sanity["gradient"] < sanity["guided backprop"] - 0.2,
                  "the gradient changes much more than guided backprop", sanity["gradient"])
else:
    skip("sanity_guided", "sanity_grad", "sanity_deconv")

# %% [markdown]
# With a random classifier, one that has never learned what a cat is, guided backprop draws
# the same picture as with the trained one (correlation of the magnitude maps
# {{ sanity_guided }}), and so does the deconvnet (measured, not drawn: {{ sanity_deconv }}),
# while the gradient changes much more ({{ sanity_grad }}). Both fail this sanity check: with
# a random last layer their magnitude maps of the cat photo correlate with the trained ones at
# 1.00 to two decimals, so on this photo the classifier's weights barely shape them. Randomising one layer
# cannot say whether they come from the learned lower layers, the architecture or (for guided
# backprop) the input; the cascading version in lesson 09 and exercise 5 test that. On this model, then, neither method's picture of the
# cat photo changes when the classifier is randomised, and the class changes their pattern
# little on the two-object image (signed maps of {{ n_spread }} classes spread over the ranking correlate
# at {{ deconv_spread_min }} or more for the deconvnet, {{ guided_spread_min }} or more for
# guided backprop; guided backprop's maps of the two objects in it, {{ guided_class_corr }},
# although asking for the cup moves its share of the map on the cup's half from
# {{ guided_right_cat }} to {{ guided_right_cup }}): read them as pictures the classifier
# shapes only weakly (the deconvnet without max-pooling hardly at all, an imprint of the
# weights; guided backprop enough to move part of its mass), not as answers to "why this
# class?".
#
# For a class-discriminative map, use a method that depends on the class by construction, such
# as [Grad-CAM](08-grad-cam.ipynb) (whose "guided" variant multiplies guided backprop by the
# class-specific Grad-CAM map; in the papers this gives sharp, class-specific pictures;
# [lesson 08](08-grad-cam.ipynb) shows what it gives on this model).

# %% [markdown]
# ## Exercises
#
# 1. Extend the six-number table with a second ReLU stacked on the first (a linear layer
#    between them). Find inputs for which guided backprop passes a positive value to a unit
#    where the true gradient is negative.
# 2. Apply `my_guided_backprop` to a model with `nn.ReLU(inplace=True)` modules and to the
#    `TwiceReLU` network above. Then rewrite it to store the input on the module in a forward
#    hook instead of using the pre-hook and a stack, and find the case where it breaks.
# 3. Repeat the cat vs coffee comparison on your own two-object photo, and add a class
#    that is in neither object (e.g. `"goldfish"`). How correlated is its guided backprop map
#    with the other two?
# 4. Run `convlens.deconvnet` with and without switches on two photos with a network that has
#    max-pooling (`torchvision.models.alexnet(weights=None)` is enough): how correlated are
#    the two photos' maps in each case? Then explain one of `evidence_net`'s classes to an
#    image of another class: does the deconvnet with switches still point at the shape?
# 5. Make the sanity check cascading, as Adebayo et al. do: re-initialise the layers one at a
#    time from the top (the classifier, then `ctx.layers["last_spatial"]`, then earlier blocks) and
#    plot the correlation with the trained map after each step, for the gradient and for guided
#    backprop.
# 6. Write the deconvnet as your own `autograd.Function` (its backward ignores $s$) and check
#    that it equals `convlens.deconvnet` on the cat photo.
