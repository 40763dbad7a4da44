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
# # Receptive fields
#
# **Summary.** How much of the input one unit depends on, computed exactly and measured with a gradient probe, and why the effective region is smaller.
#
# **The question.** "Unit 84 of some layer fired. Which pixels of my input image is it looking
# at? Can I carry the pixel indices along through the layers, so that every activation knows
# where in the image it came from?"
#
# You don't need to carry anything: the answer is fixed by the architecture and can be
# computed once, before any image is seen. A $k\times k$ convolution makes each output unit
# depend on a $k\times k$ window of the layer below; each unit of that window depends on its
# own window one layer further down, and so on. Unrolled to the input, a unit depends on a
# **rectangle** of pixels, its *receptive field*. Because every layer takes a window, the
# answer is never a single pixel: it is a region that grows with depth (and with every stride,
# it grows faster). Only after a fully connected layer does it stop being local: such a unit
# sees the whole image.
#
# Along one axis, three numbers per layer describe the fields of all units of its map: the
# field **size** $r_l$, the **jump** $j_l$ (how many input pixels apart the fields of two
# neighbouring units are, the product of all strides so far) and an **offset** $p_l$ (how far
# the field of unit 0 starts before pixel 0, because of padding). Starting from the input,
# $r_0 = 1$, $j_0 = 1$, $p_0 = 0$, a layer with kernel $k_l$, stride $s_l$, dilation $d_l$ and
# padding $q_l$ (before the first pixel) gives
#
# $$ r_l = r_{l-1} + (k_l - 1)\,d_l\,j_{l-1}, \qquad j_l = j_{l-1}\,s_l, \qquad
#    p_l = p_{l-1} + q_l\,j_{l-1}, $$
#
# and unit $u$ of layer $l$ sees the input pixels $u\,j_l - p_l,\;\dots,\;u\,j_l - p_l + r_l - 1$.
# This is the recurrence of Araujo, Norris & Sim,
# [Computing Receptive Fields of Convolutional Neural Networks](https://distill.pub/2019/computing-receptive-fields/)
# (Distill 2019), written with an offset instead of their start coordinate. Activations,
# batch norm in eval mode and dropout are pointwise: they keep all three numbers.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from matplotlib.patches import Rectangle
from torch import nn

import convlens
from convlens import lesson, plot
from convlens.hooks import capture

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device, "| layers:", ctx.layers)
x = ctx.image("chelsea")
print("top classes:", ", ".join(f"{label} {p:.1%}" for label, p in ctx.top_classes(x, k=3)))

# %% [markdown]
# ## The recurrence in a dozen lines
#
# For a plain chain of layers (no branches) the recurrence is a loop. Here it is on the
# convolutional part of VGG16 (architecture only, `weights=None`: receptive fields don't depend
# on the weights).

# %%
def chain_receptive_field(layers):
    """(size, jump, offset) after each conv/pool of a sequential chain, along one axis."""
    r, j, p = 1, 1, 0
    out = []
    for index, layer in enumerate(layers):
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, q, d = (getattr(layer, a, 1) for a in ("kernel_size", "stride", "padding", "dilation"))
            k, s, q, d = (v[0] if isinstance(v, tuple) else v for v in (k, s, q, d))
            r, j, p = r + (k - 1) * d * j, j * s, p + q * j
            out.append((index, type(layer).__name__, r, j, p))
    return out


vgg16 = torchvision.models.vgg16(weights=None).eval()
by_hand = chain_receptive_field(vgg16.features)
print("VGG16 features, last layer by hand:", by_hand[-1])
print("convlens.receptive_field          :", convlens.receptive_field(vgg16)["features.30"])

# %% [markdown]
# `convlens.receptive_field(model, input_size)` does the same for any network: instead of
# walking a list of modules, it runs one forward pass of a zero image and follows every
# operation applied to the input, so it also handles functional code and branches (see the
# traps). It returns `{layer name: RF}` with `RF.size`, `RF.stride` (the jump) and
# `RF.padding` (the offset) as `(height, width)` pairs, and `RF.box(i, j)` gives the input
# rectangle of unit `(i, j)`.
#
# ## A table per model
#
# Below, the receptive field of every spatial layer of AlexNet and VGG16 (architectures) and
# of the course model, with the size of the map each layer outputs for a $224\times224$ input.
# All kernels here are square, so one axis is shown.

# %%
def rf_rows(net, names=None, input_size=(224, 224)):
    """Rows (layer, type, kernel, stride, RF size, jump, offset, map size) of a network."""
    fields = convlens.receptive_field(net, input_size)
    modules = dict(net.named_modules())
    if names is None:
        names = [n for n in fields if isinstance(modules[n], (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
                 and (not isinstance(modules[n], nn.Conv2d) or max(modules[n].kernel_size) > 1
                      or modules[n].stride != (1, 1))]
    device = next(net.parameters()).device
    with torch.no_grad(), capture(net, names) as records:
        net(torch.zeros(1, 3, *input_size, device=device))
    rows = []
    for n in names:
        m, f = modules[n], fields[n]
        k, s = (getattr(m, a, "–") for a in ("kernel_size", "stride"))
        k, s = (v[0] if isinstance(v, tuple) else v for v in (k, s))
        h, w = records[n][-1].shape[-2:]
        rows.append([n, type(m).__name__, k, s, f.size[0], f.stride[0], f.padding[0], f"{h}×{w}"])
    return rows


HEADERS = ["layer", "type", "k", "s", "RF size r", "jump j", "offset p", "map"]


alexnet = torchvision.models.alexnet(weights=None).eval()
tables = {"AlexNet": rf_rows(alexnet), "VGG16": rf_rows(vgg16)}
print("AlexNet (architecture):")
_ = plot.table(HEADERS, tables["AlexNet"])

# %%
print("VGG16 (architecture):")
_ = plot.table(HEADERS, tables["VGG16"])

# %%
course_names = [n for n, m in model.named_modules()
                if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) and (
                    getattr(m, "stride", 1) not in (1, (1, 1)) or n == ctx.layers["first_conv"])]
course_names += [ctx.layers[r] for r in ("middle", "last_spatial") if ctx.layers[r] not in course_names]
call_order = list(convlens.receptive_field(model))  # names in the order their outputs are computed
course_names.sort(key=call_order.index)
tables[ctx.name] = rf_rows(model, course_names)
print(f"{ctx.name} (pretrained course model): layers that change the jump, and the lesson's roles")
_ = plot.table(HEADERS, tables[ctx.name])

# %% [markdown]
# Two things stand out. The jump is the product of the strides, so it only changes at strided
# layers, while the size grows at every layer by $(k-1)$ times the current jump: a $3\times3$
# convolution adds 2 pixels at the input resolution but 32 pixels after five halvings. And
# deep fields outgrow the image. VGG16's last pooling layer sees 212 pixels (almost the whole
# $224\times224$ image); the course model's last layer has a theoretical field several times
# larger than the image: most of it lies in the padding.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, net in [("AlexNet", alexnet), ("VGG16", vgg16), (ctx.name, model)]:
    fields = convlens.receptive_field(net)
    spatial = [f for n, f in fields.items() if isinstance(dict(net.named_modules())[n], nn.Conv2d)]
    axes[0].plot([f.size[0] for f in spatial], marker=".", label=name)
    axes[1].plot([f.stride[0] for f in spatial], marker=".", label=name)
axes[0].axhline(224, color="0.5", linestyle="--", linewidth=1)
axes[0].text(0, 240, "input size 224", fontsize=8, color="0.4")
axes[0].set(xlabel="convolution number", ylabel="RF size r (pixels)", yscale="log",
            title="receptive field size")
axes[1].set(xlabel="convolution number", ylabel="jump j (pixels)", yscale="log",
            title="jump (product of strides)")
axes[0].legend(fontsize=8)
lesson.show(fig, "Theoretical receptive field size and jump after each convolution of AlexNet, "
                 f"VGG16 (architectures) and {ctx.name}, for a 224×224 input.")

# %% [markdown]
# ## One unit's box on the photo
#
# `RF.box(i, j)` returns `(top, left, bottom, right)`, half-open like a slice, so
# `image[..., top:bottom, left:right]` is exactly what the unit can see. Below: the centre
# unit of three layers of the course model, and a corner unit of the middle layer, whose box
# sticks out of the image (the part outside is padding, zeros the unit sees but the image
# doesn't have).

# %%
fields = convlens.receptive_field(model, tuple(x.shape[-2:]))
fig, ax = plt.subplots(figsize=(5.6, 5.6))
ax.imshow(ctx.to_display(x))
colours = {"first_conv": "yellow", "middle": "cyan", "last_spatial": "magenta"}
for role, colour in colours.items():
    name = ctx.layers[role]
    f = fields[name]
    h, w = tables[ctx.name][[row[0] for row in tables[ctx.name]].index(name)][-1].split("×")
    i, j = int(h) // 2, int(w) // 2
    top, left, bottom, right = f.box(i, j)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                           edgecolor=colour, linewidth=2,
                           label=f"{name} unit ({i}, {j}): {f.size[0]}×{f.size[1]} px"
                                 + (" (beyond this view)" if f.size[0] > 360 else "")))
    if role == "middle":
        top, left, bottom, right = f.box(0, 0)
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                               edgecolor=colour, linewidth=2, linestyle="--",
                               label=f"{name} unit (0, 0): box {top}..{bottom - 1}"))
ax.set_xlim(-70, 294)
ax.set_ylim(294, -70)
ax.legend(loc="lower center", fontsize=7, bbox_to_anchor=(0.5, -0.3), ncol=1)
ax.set_title("theoretical receptive fields on the input", fontsize=10)
lesson.show(fig, f"Receptive-field boxes of the centre unit of {ctx.layers['first_conv']}, "
                 f"{ctx.layers['middle']} and {ctx.layers['last_spatial']}, and of the corner unit "
                 f"(0, 0) of {ctx.layers['middle']} (dashed), on the 224×224 input.")

# %% [markdown]
# The same boxes for any unit: choose a layer and point at a unit (tap it, or move it with the
# arrow keys); at the dotted units the measured gradient footprint of the next section is
# drawn too.

# %%
from convlens import explore

x_explore = ctx.image("chelsea")
explore.receptive_field_explorer(
    ctx.model, x_explore, ctx.to_display(x_explore),
    explore.strided_layers(ctx.model, x_explore, include=ctx.layers.values()), margin=70)

# %% [markdown]
# ## The autograd check: a gradient probe
#
# The recurrence is bookkeeping; autograd can answer the same question empirically. Pick one
# unit $a = A_{c,i,j}$ of a layer. The input pixels that can influence it are those where
# $\partial a / \partial x \neq 0$, and one backward pass gives all of them: call
# `torch.autograd.grad(A, x, grad_outputs=v)` with $v$ a **one-hot** tensor, zero everywhere
# except $v_{c,i,j} = 1$ (a `grad_outputs` of all zeros gives an all-zero gradient, which
# answers nothing). `convlens.empirical_receptive_field(model, layer, (c, i, j))` does exactly
# this and returns the mask of pixels with a nonzero gradient. Written out:

# %%
layer = ctx.layers["middle"]
x_probe = x.clone().requires_grad_(True)
with capture(model, layer) as records:
    model(x_probe)
A = records[layer][0]
c, i, j = int(A[0, :, A.shape[2] // 2, A.shape[3] // 2].argmax()), A.shape[2] // 2, A.shape[3] // 2
one_hot = torch.zeros_like(A)
one_hot[0, c, i, j] = 1.0
(grad,) = torch.autograd.grad(A, x_probe, grad_outputs=one_hot)
mask_by_hand = (grad[0] != 0).any(dim=0)

mask = convlens.empirical_receptive_field(model, layer, (c, i, j), x=x)
rows_hit, cols_hit = torch.nonzero(mask, as_tuple=True)
print(f"unit (channel {c}, {i}, {j}) of {layer}: same mask both ways: "
      f"{torch.equal(mask, mask_by_hand)}")
print(f"  pixels with nonzero gradient: {int(mask.sum())}, inside rows {int(rows_hit.min())}.."
      f"{int(rows_hit.max())}, cols {int(cols_hit.min())}..{int(cols_hit.max())}")
print(f"  analytic box (top, left, bottom, right): {fields[layer].box(i, j)}")

# %% [markdown]
# The gradient region sits inside the analytic box, never outside it. It can be smaller: a
# ReLU that is off at this input, a max pool (its gradient goes to one element per window) or
# a zero weight cuts paths, so the gradient probe answers "which pixels matter *for this
# image*", the recurrence "which pixels *could* matter".
#
# The reverse direction, from one input pixel to the units it reaches, needs only forward
# passes: change one pixel and see which units of the layer change. (Feeding an all-zero image
# with a single 1, as is sometimes suggested, works only for a network without biases and batch
# norm; taking the *difference* of two forward passes works for any network.) The set of units
# a pixel reaches is its *projective field*: a block of units, again never just one.

# %%
with torch.no_grad():
    base = convlens.feature_maps(model, x, layer)
    pixel = (120, 80)
    poked = x.clone()
    poked[0, :, pixel[0], pixel[1]] += 2.0
    changed = (convlens.feature_maps(model, poked, layer) - base).abs().amax(dim=1)[0] > 0
reached = torch.nonzero(changed).tolist()
print(f"pixel {pixel} changes {len(reached)} units of {layer} "
      f"(map {tuple(changed.shape)}), e.g. {reached[:4]} ...")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.4, 4.6))
axes[0].imshow(ctx.to_display(x))
axes[0].imshow(np.ma.masked_where(~mask.cpu().numpy(), mask.cpu().numpy()), cmap="autumn",
               alpha=0.45, vmin=0, vmax=1)
top, left, bottom, right = fields[layer].box(i, j)
axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                            edgecolor="cyan", linewidth=2))
axes[0].set_title(f"unit ({c}, {i}, {j}) of {layer}:\nnonzero gradient (yellow), analytic box (cyan)",
                  fontsize=9)
axes[1].imshow(changed.cpu(), cmap="Greys", vmin=0, vmax=1.6)
axes[1].set_title(f"units of {layer} changed by pixel {pixel}\n(projective field, "
                  f"{len(reached)} units)", fontsize=9)
axes[1].set_xlabel("unit column j")
axes[1].set_ylabel("unit row i")
for ax in axes[:1]:
    ax.set_xticks([])
    ax.set_yticks([])
lesson.show(fig, f"Left: pixels that influence one unit of {ctx.layers['middle']} (gradient probe "
                 "with a one-hot grad_outputs) inside its analytic box. Right: the units of that "
                 "layer changed by one input pixel.")

# %% [markdown]
# ## Why a fully connected unit sees everything
#
# A fully connected layer multiplies the *flattened* map by a weight matrix: each of its units
# is a weighted sum of every position of every channel, so its receptive field is the union
# of all the fields below, the whole image. There is no box to draw: "unit 84 of the first
# fully connected layer" depends on every pixel, with weights that the network learned (and
# that a gradient map, see [saliency maps](06-saliency-and-smoothgrad.ipynb), can show). Here is
# the gradient probe on AlexNet's first fully connected layer:

# %%
probe = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(ctx.seed)) + 0.5
probe.requires_grad_(True)
fc1 = alexnet.classifier[1]  # Linear(9216 -> 4096)
with capture(alexnet, "classifier.1") as records:
    alexnet(probe)
(g,) = torch.autograd.grad(records["classifier.1"][0][0, 84], probe)
reach = (g[0] != 0).any(dim=0)
print(f"AlexNet classifier.1 unit 84: {reach.float().mean():.1%} of the input pixels have a "
      "nonzero gradient")

fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(g[0].abs().sum(dim=0), cmap="magma")
ax.set_title("|∂ fc1[84] / ∂x| (AlexNet, random weights)", fontsize=9)
ax.set_xticks([])
ax.set_yticks([])
lesson.show(fig, "Gradient magnitude of unit 84 of AlexNet's first fully connected layer "
                 "(architecture with random weights): every pixel contributes.")

# %% [markdown]
# Every pixel has a nonzero gradient. Compare with Figure 3: one unit of a convolutional map
# has a box; one unit of a fully connected layer has the whole image. (With other input sizes
# this can fail at the borders: when the strides don't divide the input evenly, the last
# windows stop short of the bottom and right edges, and the pixels there reach no unit at all.)
#
# ## Effective versus theoretical receptive field
#
# The theoretical field says which pixels *can* matter. Luo et al. 2016,
# [Understanding the Effective Receptive Field in Deep CNNs](https://arxiv.org/abs/1701.04128),
# measured how much they *do*: the gradient magnitude $|\partial a/\partial x|$ of a centre
# unit, averaged over images, is concentrated in a roughly Gaussian blob at the centre of the
# box and decays fast towards its edges. Pixels near the centre reach the unit through many
# paths (every overlapping window); pixels near the edge through very few. The effective field
# occupies a fraction of the theoretical one, and training makes it larger.
#
# Below: the centre position of two layers of the pretrained course model, the sum over all
# its channels, gradient magnitude averaged over four photos.

# %%
photos = torch.cat([ctx.image(name) for name in ("chelsea", "coffee", "astronaut", "rocket")])


def effective_field(net, layer, images):
    """Mean over images of |d(sum of channels at the centre unit) / dx|, summed over colours."""
    images = images.clone().requires_grad_(True)
    with capture(net, layer) as records:
        net(images)
    A = records[layer][-1]
    ci, cj = A.shape[2] // 2, A.shape[3] // 2
    (g,) = torch.autograd.grad(A[:, :, ci, cj].sum(), images)
    return g.abs().sum(dim=1).mean(dim=0).cpu(), (ci, cj)


fig, axes = plt.subplots(2, 2, figsize=(9, 6.6), gridspec_kw={"height_ratios": [2.4, 1]})
for col, role in enumerate(("middle", "last_spatial")):
    name = ctx.layers[role]
    erf, (ci, cj) = effective_field(model, name, photos)
    f = fields[name]
    top, left, bottom, right = f.box(ci, cj)
    ax = axes[0][col]
    ax.imshow(erf.sqrt(), cmap="magma")  # square root: the faint tails stay visible
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                           edgecolor="cyan", linewidth=1.5))
    ax.set_xlim(-0.5, 223.5)
    ax.set_ylim(223.5, -0.5)
    ax.set_title(f"{name}, unit ({ci}, {cj}): theoretical {f.size[0]}×{f.size[1]} px (cyan)",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    # column profile (summed over rows), and the share of gradient mass near the centre
    profile = erf.sum(dim=0)
    axes[1][col].plot(profile / profile.max(), color="black", linewidth=1)
    axes[1][col].axvspan(max(left, 0), min(right, 224) - 1, color="cyan", alpha=0.2)
    axes[1][col].set(xlim=(0, 223), ylim=(0, 1.05), xlabel="input column",
                     ylabel="relative |gradient|")
    total = erf.sum()
    cy, cx = f.center(ci, cj)
    for half in range(1, 112):
        box = erf[max(int(cy) - half, 0):int(cy) + half + 1, max(int(cx) - half, 0):int(cx) + half + 1]
        if box.sum() >= 0.9 * total:
            break
    print(f"{name}: theoretical field {f.size[0]} px; 90% of the gradient mass lies within a "
          f"{2 * half + 1}×{2 * half + 1} square around the centre")
lesson.show(fig, f"Effective receptive field of the centre unit of {ctx.layers['middle']} and "
                 f"{ctx.layers['last_spatial']} (|gradient| averaged over 4 photos), with the "
                 "theoretical box (square-root colour scale); bottom: column profile, summed over rows.")

# %% [markdown]
# For the middle layer, the bright blob fills only the centre of the cyan box: 90% of the
# gradient mass sits in a square about half as wide as the theoretical field, and the profile
# is bell-shaped, not flat like the box. For the last layer the theoretical field covers the
# image several times over; its effective field does spread across most of the image, but
# unevenly, strongest near the centre and on what the photos show. When someone says "this unit
# has a receptive field of 851 pixels", read it as an upper bound on where its input can come
# from, not as where it does come from.
#
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: the chain formula on a
# network with branches</p>
# <p>A ResNet block adds two paths: the residual path (two or three convolutions) and the
# shortcut (identity, or a strided 1×1 convolution). Walking <code>named_modules()</code> in order
# and applying the recurrence to every convolution treats the shortcut convolution as one more
# layer in the chain: its stride is counted twice and the jump and size come out wrong. The
# right rule (Araujo et al.) is to compute each path separately and take the largest field
# where the paths meet, after checking that they agree on jump and centre.</p></div>

# %%
resnet18 = torchvision.models.resnet18(weights=None).eval()
naive = chain_receptive_field(list(resnet18.modules()))[-1]
traced = convlens.receptive_field(resnet18)["layer4"]
print(f"ResNet-18 layer4, chain formula over all modules in order: size {naive[2]}, jump {naive[3]}")
print(f"ResNet-18 layer4, traced through the graph (convlens):     size {traced.size[0]}, "
      f"jump {traced.stride[0]}")

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: padding puts edge units'
# boxes outside the image</p>
# <p>The offset $p_l$ grows with every padded layer, so the box of unit 0 starts at
# $-p_l$: for the dashed box in Figure 2, part of the field is padding. When you crop "the
# field of this unit" out of an image, clip the box (<code>RF.box(i, j, clip=True)</code>) and
# remember that edge units see fewer real pixels than centre units.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: dilation</p>
# <p>A dilated kernel of size $k$ with dilation $d$ spans $(k-1)d+1$ pixels, not $k$: the
# recurrence has the factor $d_l$ for this reason. Segmentation networks (DeepLab) use it to
# grow fields without striding, so a table that ignores dilation underestimates them badly.</p></div>

# %%
dilated = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=2, dilation=2),
                        nn.Conv2d(8, 8, 3, padding=4, dilation=4))
print("three 3×3 convs with dilation 1, 2, 4:",
      {name: rf.size[0] for name, rf in convlens.receptive_field(dilated, (64, 64)).items()})

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: TensorFlow "same" padding</p>
# <p>Models ported from TensorFlow (timm's <code>tf_</code> EfficientNets, the course model)
# pad <em>dynamically</em>: a strided "same" convolution pads just enough for the output to have
# $\lceil n/s\rceil$ units, and puts the odd pixel at the bottom/right, not evenly. The padding,
# and so the offset $p_l$, then depends on the input size, and there is no
# <code>padding</code> attribute to read from the module (timm's <code>Conv2dSame</code> reports
# <code>padding=0</code>). Compute fields at the input size you use: convlens traces the
# <code>F.pad</code> the layer actually applies.</p></div>

# %%
first = ctx.layers["first_conv"]
for size in (224, 225):
    print(f"{first} at input {size}×{size}: offset p = "
          f"{convlens.receptive_field(model, (size, size))[first].padding[0]}")

# %% [markdown]
# ## Exercises
#
# 1. Print the receptive-field table of your own network with `convlens.receptive_field` and
#    find the first layer whose field covers half of your input size.
# 2. For a unit of `ctx.layers["middle"]`, compare the analytic box with
#    `convlens.empirical_receptive_field` at a random positive input and at a real photo: where
#    and why do they differ?
# 3. Compute the effective field of the same layer with the randomly initialised network
#    (`convlens.models.architecture(ctx.name)`). Is it smaller than the trained one, as Luo et
#    al. report?
# 4. Crop the input box of the most active unit of `ctx.layers["last_spatial"]` for several
#    photos, clipped to the image, and lay the crops side by side: what do they share?
# 5. Build a VGG-style chain that reaches a 224-pixel field with as few layers as possible,
#    first with strides, then with dilation only. How do the jumps differ?
