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
# it grows faster). It stops being local once the region covers the whole image. A unit of a
# fully connected layer reads every position of the map below, so it always sees the whole
# image; a deep enough convolutional layer gets there too, as the tables below show.
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
from convlens import plot
from convlens.hooks import capture
from convlens.receptive_fields import ReceptiveFieldError
from convlens_course import lesson

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
# rectangle of unit `(i, j)`. A unit after a global pooling has no window at all:
# `RF.is_global` is true and the field is the whole input. An operation it cannot describe
# (an upsampling, say) raises `ReceptiveFieldError`, which still carries the fields of every
# layer before it in `error.fields`: the helper `traced_fields` below shows those and says
# where the analysis stopped, so the rest of this lesson builds on any network.
#
# ## A table per model
#
# Below, the receptive field of every spatial layer of AlexNet and VGG16 (architectures), and,
# for the course model, of the layers that change the jump plus the three layers the lesson
# uses ([Figure 1](#figure-1) plots every convolution), with the size of the map each layer
# outputs for a $224\times224$ input. All kernels here are square, so one axis is shown.

# %%
def traced_fields(net, input_size=(224, 224), label="this network"):
    """convlens.receptive_field, or the fields before the first layer it cannot analyse."""
    try:
        return convlens.receptive_field(net, input_size)
    except ReceptiveFieldError as error:
        print(f"note: the analysis of {label} stops at {error.layer!r} ({error.module_type}): "
              f"{error.reason}. Shown: the {len(error.fields)} layers before it.")
        return error.fields


map_sizes = {}  # (network label, layer) -> (height, width) of the layer's output


def rf_rows(net, label, names=None, input_size=(224, 224), fields=None):
    """Rows (layer, type, kernel, stride, RF size, jump, offset, map size) of a network."""
    fields = fields if fields is not None else traced_fields(net, input_size, label)
    modules = dict(net.named_modules())
    if names is None:
        names = [n for n in fields if isinstance(modules[n], (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
                 and (not isinstance(modules[n], nn.Conv2d) or max(modules[n].kernel_size) > 1
                      or modules[n].stride != (1, 1))]
    names = [n for n in names if n in fields]
    device = next(net.parameters()).device
    with torch.no_grad(), capture(net, names) as records:
        net(torch.zeros(1, 3, *input_size, device=device))
    rows = []
    for n in names:
        m, f = modules[n], fields[n]
        k, s = (getattr(m, a, "–") for a in ("kernel_size", "stride"))
        k, s = (v[0] if isinstance(v, tuple) else v for v in (k, s))
        h, w = records[n][-1].shape[-2:]
        map_sizes[label, n] = (h, w)
        if not f.has_window:  # after a global pooling: the whole image, no box
            size, jump, offset = "whole image", "–", "–"
        else:  # a global signal on top of a local window (SE gate, GroupNorm) is marked +g
            size = f"{f.size[0]} +g" if f.is_global else f.size[0]
            jump, offset = f.stride[0], f.padding[0]
        rows.append([n, type(m).__name__, k, s, size, jump, offset, f"{h}×{w}"])
    return rows


HEADERS = ["layer", "type", "k", "s", "RF size r", "jump j", "offset p", "map"]


alexnet = torchvision.models.alexnet(weights=None).eval()
tables = {"AlexNet": rf_rows(alexnet, "AlexNet"),
          "VGG16": rf_rows(vgg16, "VGG16")}
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
fields = traced_fields(model, tuple(x.shape[-2:]), ctx.name)  # in the order outputs are computed
call_order = list(fields)
course_names = sorted((n for n in course_names if n in fields), key=call_order.index)
print(f"{ctx.name} (pretrained course model): layers that change the jump, and the lesson's roles")
tables[ctx.name] = rf_rows(model, ctx.name, course_names, tuple(x.shape[-2:]), fields)
_ = plot.table(HEADERS, tables[ctx.name])
if any(f.is_global for f in fields.values() if f.has_window):
    print("+g: the map also depends on every pixel through a global signal (a squeeze-excitation "
          "gate or a normalisation over all positions); r is the window of its convolutions.")

# the numbers the text below quotes
vgg_rows = {row[0]: row for row in tables["VGG16"]}
vgg_block5 = [n for n in vgg_rows if vgg_rows[n][1] == "Conv2d" and vgg_rows[n][5] == 16]
lesson.record("vgg_block5_growth", vgg_rows[vgg_block5[1]][4] - vgg_rows[vgg_block5[0]][4])
lesson.record("growth_after_five", (3 - 1) * 2**5)
lesson.record("vgg_last_rf", tables["VGG16"][-1][4])
_, _, _, _, vgg_r, vgg_j, vgg_p, vgg_map = tables["VGG16"][-1]  # a 224-pixel input
vgg_side = int(vgg_map.split("×")[0])
vgg_corner = min(vgg_r - vgg_p, 224)  # pixels of the image in a corner unit's field, per side
vgg_mid = vgg_side // 2
vgg_centre = (max(vgg_mid * vgg_j - vgg_p, 0), min(vgg_mid * vgg_j - vgg_p + vgg_r, 224) - 1)
lesson.record("vgg_centre_box", f"{vgg_centre[0]}..{vgg_centre[1]}")
lesson.record("vgg_corner", f"{vgg_corner}×{vgg_corner}")
last_name = ctx.layers["last_spatial"]
last_field = fields.get(last_name)
last_rf = last_field.size[0] if last_field is not None and last_field.has_window else None


def known(value, fmt=""):
    """A value as text for the prose, or "n/a" where the analysis gave none."""
    return "n/a" if value is None or value != value else format(value, fmt)




def covers_image(name, units):
    """Whether the theoretical box of each of ``units`` (i, j) holds the whole input."""
    f = fields[name]
    if not f.has_window:
        return True
    return all(box[0] <= 0 and box[1] <= 0 and box[2] >= x.shape[-2] and box[3] >= x.shape[-1]
               for box in (f.box(i, j) for i, j in units))


# the map size of every layer of the course model, not only the table's: one forward pass
with torch.no_grad(), capture(model, call_order) as records:
    model(torch.zeros_like(x))
all_sizes = {n: tuple(records[n][-1].shape[-2:]) for n in call_order if records[n][-1].dim() == 4}


def first_covering(every_unit):
    """The first spatial layer (in call order, among all layers of the model) whose centre
    unit, or every unit, sees the whole input."""
    for name in all_sizes:
        h, w = all_sizes[name]
        units = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)] if every_unit else [(h // 2, w // 2)]
        if covers_image(name, units):
            return name
    return None


centre_covers, every_covers = first_covering(False), first_covering(True)
print(f"of all {len(all_sizes)} modules with a spatial output, the first whose centre unit sees "
      "the whole input:", centre_covers, "| whose every unit does:", every_covers)
lesson.record("n_spatial", len(all_sizes))
lesson.record("centre_covers", f"`{centre_covers}`" if centre_covers else "no spatial layer")
lesson.record("every_covers", f"`{every_covers}`" if every_covers else "no spatial layer")
lesson.record("last_name", last_name)
lesson.record("last_rf", known(last_rf))
lesson.record("last_ratio", known(last_rf / x.shape[-1] if last_rf else None, ".1f"))
_ = lesson.expect(last_rf is not None and last_rf > 2 * x.shape[-1],
                  "the course model's last spatial layer has a theoretical field more than twice as "
                  "wide as the image, so most of it lies in the padding", last_rf)

# %% [markdown]
# Two things stand out. The jump is the product of the strides, so it only changes at strided
# layers, while the size grows at every layer by $(k-1)$ times the current jump: a $3\times3$
# convolution adds $2 \times 1 = 2$ pixels at the input resolution, but after five halvings
# (jump $2^5 = 32$) it adds $2 \times 32 =$ {{ growth_after_five }} pixels. VGG16's table
# shows it at jump 16: each $3\times3$ convolution of its last block adds
# {{ vgg_block5_growth }} pixels. And deep fields outgrow the image. VGG16's last pooling layer
# has a {{ vgg_last_rf }}-pixel field: its centre unit sees almost the whole $224\times224$
# image (pixels {{ vgg_centre_box }}), a corner unit only {{ vgg_corner }} of it, the rest of
# its field being padding; the course model's
# last spatial layer, `{{ last_name }}`, has a theoretical field of {{ last_rf }} pixels,
# {{ last_ratio }} times the width of the image: most of it lies in the padding. Among all
# {{ n_spatial }} modules of the course model with a spatial output (not only the table's
# layers), the first where the centre unit's field holds the whole image is
# {{ centre_covers }}, and the first where every unit's field does, the corners' included, is
# {{ every_covers }}: from there on a convolutional unit's theoretical field is as global as
# a fully connected unit's (its effective field is not uniform: see the last section).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, net in [("AlexNet", alexnet), ("VGG16", vgg16), (ctx.name, model)]:
    net_fields = fields if net is model else traced_fields(net, label=name)
    spatial = [f for n, f in net_fields.items()
               if isinstance(dict(net.named_modules())[n], nn.Conv2d) and f.has_window]
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
# `RF.box(i, j)` returns `(top, left, bottom, right)`, half-open like a slice: for a box
# inside the image, `image[..., top:bottom, left:right]` is what the unit can see. An edge
# unit's box starts at negative coordinates, which a Python slice would count from the end, so
# slice with `RF.box(i, j, clip=True)`. Below, left: the
# centre unit of the first convolution and of the middle layer, and a corner unit of the
# middle layer, whose box sticks out of the image (the part outside is padding, zeros the unit
# sees but the image doesn't have). Right, zoomed out: the centre unit of the last spatial
# layer. Each panel is zoomed out just enough to hold its boxes; grey is outside the image.

# %%
H, W = x.shape[-2:]
photo_rgb = ctx.to_display(x)


def centre_box(role):
    """(name, unit, box) of the centre unit of a role's layer, or None without a local field."""
    name = ctx.layers[role]
    f = fields.get(name)
    if f is None or not f.has_window:
        print(f"note: no local receptive field for {role} = {name!r}: not drawn")
        return None
    h, w = map_sizes[ctx.name, name]
    return name, (h // 2, w // 2), f.box(h // 2, w // 2)


panels = [[("first_conv", "yellow", "-"), ("middle", "cyan", "-")], [("last_spatial", "magenta", "-")]]
boxes = [[], []]  # per panel: (box, colour, style, label)
for panel, roles in enumerate(panels):
    for role, colour, style in roles:
        found = centre_box(role)
        if found is None:
            continue
        name, (i, j), box = found
        f = fields[name]
        boxes[panel].append((box, colour, style, f"{name} unit ({i}, {j}): {f.size[0]}×{f.size[1]} px"))
        if role == "middle":
            corner = f.box(0, 0)
            boxes[panel].append((corner, colour, "--", f"{name} unit (0, 0): rows {corner[0]}..{corner[2] - 1}"))

fig, axes = plt.subplots(1, 2, figsize=(10, 5.6))
for ax, panel_boxes in zip(axes, boxes):
    ax.set_facecolor("0.82")  # outside the image: the padding
    ax.imshow(photo_rgb)
    ax.add_patch(Rectangle((-0.5, -0.5), W, H, fill=False, edgecolor="white", linewidth=0.8))
    # the view: the image and every box of this panel, plus a margin
    tops, lefts, bottoms, rights = zip((0, 0, H, W), *(b[0] for b in panel_boxes))
    margin = 0.04 * max(max(bottoms) - min(tops), max(rights) - min(lefts))
    ax.set_xlim(min(lefts) - margin, max(rights) + margin)
    ax.set_ylim(max(bottoms) + margin, min(tops) - margin)
    for (top, left, bottom, right), colour, style, label in panel_boxes:
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                               edgecolor=colour, linewidth=2, linestyle=style, label=label))
    if panel_boxes:
        ax.legend(loc="upper center", fontsize=7, bbox_to_anchor=(0.5, -0.12), ncol=1)
    ax.set_xlabel("input column (0 .. 223 is the image)" if W == 224 else "input column", fontsize=8)
    ax.tick_params(labelsize=7)
axes[0].set_title("first convolution and middle layer", fontsize=10)
axes[1].set_title("last spatial layer (zoomed out; grey: padding)", fontsize=10)
lesson.show(fig, f"Receptive-field boxes of the centre unit of {ctx.layers['first_conv']}, "
                 f"{ctx.layers['middle']} and {ctx.layers['last_spatial']}, and of the corner unit "
                 f"(0, 0) of {ctx.layers['middle']} (dashed), on the {H}×{W} input; grey is "
                 "outside the image.")

# %% [markdown]
# The same boxes for any unit: choose a layer and point at a unit (tap it, or move it with the
# arrow keys). At the dotted units the measured gradient footprint of the next section is
# drawn too, for the most active channel whose gradient reaches the input at all: a more
# active channel held at its activation's ceiling has no gradient (see "When the gradient
# sees nothing" below) and is skipped.

# %%
from IPython.display import display

from convlens_course import explore

x_explore = ctx.image("chelsea")
rf_explorer = explore.receptive_field_explorer(
    ctx.model, x_explore, ctx.to_display(x_explore),
    explore.strided_layers(ctx.model, x_explore, include=ctx.layers.values()), margin=70)
display(rf_explorer)  # kept in a variable: a later cell reads its probes

# %% [markdown]
# ## The autograd check: a gradient probe
#
# The recurrence is bookkeeping; autograd can answer the same question empirically. Pick one
# unit $a = A_{c,i,j}$ of a layer. The pixels where $\partial a / \partial x \neq 0$ at this
# input are those whose small changes move $a$; one backward pass gives all of them. (A unit
# that is off, or held at its ceiling, has none, even though its box can still influence it.)
# Call `torch.autograd.grad(A, x, grad_outputs=v)` with $v$ a **one-hot** tensor, zero
# everywhere except $v_{c,i,j} = 1$ (a `grad_outputs` of all zeros gives an all-zero gradient, which
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
lesson.expect(torch.equal(mask, mask_by_hand), "the hand-written probe and "
              "convlens.empirical_receptive_field give the same mask")
box = fields[layer].box(i, j) if layer in fields and fields[layer].has_window else None
if box is None:
    print(f"  no analytic box for {layer} (not analysed, or global)")
else:
    print(f"  analytic box (top, left, bottom, right): {box}")
    inside = torch.zeros_like(mask)
    inside[max(box[0], 0):box[2], max(box[1], 0):box[3]] = True
    print(f"  pixels of the box (inside the image): {int(inside.sum())}; "
          f"gradient mask equal to the box: {torch.equal(mask, inside)}")
_ = lesson.expect(box is not None and not (mask & ~inside).any(),
                  "the gradient region sits inside the analytic box",
                  int((mask & ~inside).sum()) if box is not None else None)
lesson.record("probe_fill", "n/a" if box is None else
              f"it fills the box exactly, all {int(inside.sum())} pixels" if torch.equal(mask, inside)
              else f"it has {int(mask.sum())} of the box's {int(inside.sum())} pixels")
lesson.record("probe_box_size", f"{fields[layer].size[0]}×{fields[layer].size[1]}-pixel"
              if box is not None else "n/a")

# %% [markdown]
# The gradient region sits inside the analytic box, never outside it; for this unit
# {{ probe_fill }}. It can be smaller: a ReLU that is off at this input, a ReLU6 held at its
# ceiling, a max pool (its gradient goes to one element per window) or a zero weight cuts
# paths, so the gradient probe answers "which
# pixels have a nonzero local derivative *at this image*", the recurrence "which pixels *could*
# matter". Neither is "which pixels matter": a unit held at its ceiling has a zero derivative
# with respect to every pixel, yet a large enough change of the pixels in its field would move
# it (see
# [below](#when-the-gradient-sees-nothing-off-and-saturated-units)).
#
# The reverse direction, from one input pixel to the units it reaches, needs only forward
# passes: change one pixel and see which units of the layer change. (Feeding an all-zero image
# with a single 1, as is sometimes suggested, works only for a network without biases and batch
# norm; taking the *difference* of two forward passes does not need that.) The difference has
# its own blind spots: a unit whose ReLU is off before and after the change, one that stays at a
# ReLU6 ceiling, or a max pool that keeps the same element does not change, so the units found
# are those *this* change of *this* pixel reached, a subset of the pixel's projective field,
# the set of units whose box holds it. Here, on the course model, the pixel is raised by 2 in
# every channel, and it changes {{ n_reached }} units of `{{ probe_layer }}`: {{ proj_match }}.
# The projective field is a block of units wherever a layer's windows overlap.

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


def holds_pixel(box):
    top, left, bottom, right = box
    return top <= pixel[0] < bottom and left <= pixel[1] < right


holding = None  # the analytic projective field: the units whose box holds the pixel
if layer in fields and fields[layer].has_window:
    holding = [[a, b] for a in range(changed.shape[0]) for b in range(changed.shape[1])
               if holds_pixel(fields[layer].box(a, b))]
    print(f"units whose analytic box holds the pixel: {len(holding)}; the changed units are "
          f"{'exactly these' if holding == reached else 'not exactly these'}")
lesson.record("n_reached", len(reached))
lesson.record("probe_layer", layer)
lesson.record("proj_match", "no analytic field to compare with" if holding is None else
              f"exactly the {len(holding)} units whose analytic box holds it" if holding == reached
              else f"{sum(u in holding for u in reached)} of the {len(holding)} units whose "
              "analytic box holds it")
_ = lesson.expect(len(reached) > 1, "one pixel's projective field is a block of units, not one unit",
                  len(reached))

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.4, 4.6))
axes[0].imshow(ctx.to_display(x))
axes[0].imshow(np.ma.masked_where(~mask.cpu().numpy(), mask.cpu().numpy()), cmap="autumn",
               alpha=0.45, vmin=0, vmax=1)
if box is not None:
    top, left, bottom, right = box
    axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                edgecolor="cyan", linewidth=2))
axes[0].set_title(f"unit ({c}, {i}, {j}) of {layer}:\nnonzero gradient (yellow), analytic box (cyan)",
                  fontsize=9)
axes[1].imshow(changed.cpu(), cmap="Greys", vmin=0, vmax=1.6)
axes[1].set_title(f"units of {layer} changed by pixel {pixel}\n({len(reached)} units)", fontsize=9)
axes[1].set_xlabel("unit column j")
axes[1].set_ylabel("unit row i")
for ax in axes[:1]:
    ax.set_xticks([])
    ax.set_yticks([])
lesson.show(fig, f"Left: pixels with a nonzero gradient for one unit of {ctx.layers['middle']} "
                 "(gradient probe with a one-hot grad_outputs) and its analytic box. Right: the "
                 "units of that layer changed by one input pixel"
                 + (", exactly the units whose analytic box holds it." if holding == reached
                    else "."))

# %% [markdown]
# ## When the gradient sees nothing: off and saturated units
#
# The course model's activation is ReLU6, $a = \min(\max(z, 0), 6)$. Its derivative is 1 on the
# slope $0 < z < 6$ and 0 on both flat parts: a unit that is off ($z \le 0$) and a unit held at
# the ceiling ($z \ge 6$) both pass no gradient back. Every gradient method inherits this: a
# gradient probe, an input-gradient saliency map, an effective receptive field see the input
# only through units on the slope. `convlens.saturation(model, x)` counts, for each clamping
# activation module, the outputs at each end of its range. Over the {{ pool_n }} photos of the
# photo pool (every permissively licensed photo that ships with the course's packages, listed
# on the References page):

# %%
pool = convlens.images.photo_pool()
totals = {}  # activation module -> [units, off, at the ceiling], summed over the pool
for photo in pool:
    stats = convlens.saturation(model, convlens.images.prepare(photo.image, ctx.preprocess)
                                .to(ctx.device))
    for name, st in stats.items():
        t = totals.setdefault(name, [0, 0, 0, st.upper])
        t[0], t[1], t[2] = t[0] + st.units, t[1] + st.at_lower, t[2] + st.at_upper
names_act = list(totals)
off = [totals[n][1] / totals[n][0] for n in names_act]
ceiling = [totals[n][2] / totals[n][0] for n in names_act]
units = sum(t[0] for t in totals.values())
lesson.record("pool_n", len(pool))
lesson.record("n_clamps", len(names_act))
lesson.record("off_all", sum(t[1] for t in totals.values()) / units, ".0%")
lesson.record("ceiling_all", sum(t[2] for t in totals.values()) / units, ".1%")
has_ceiling = any(t[3] is not None for t in totals.values())
print(f"{len(names_act)} clamping activations; over {len(pool)} photos: "
      f"{sum(t[1] for t in totals.values()) / units:.1%} of all their outputs off, "
      f"{sum(t[2] for t in totals.values()) / units:.2%} at the ceiling")
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(off, marker=".", label="off (at the lower bound)")
ax.plot(ceiling, marker=".", label="at the ceiling" if has_ceiling else "at the ceiling (none)")
ax.set(xlabel="activation module, in the order of the network", ylabel="share of its outputs",
       ylim=(0, 1), title=f"{ctx.name}: units without a gradient, {len(pool)} photos")
ax.legend(fontsize=8)
lesson.show(fig, f"Share of the outputs of each clamping activation of {ctx.name} that sit at its "
                 f"lower bound (off) or its upper bound (ReLU6: 6), summed over the {len(pool)} "
                 "photos of the pool: both pass no gradient.")

# the layer the explorer probes last: where the top channel of a position sits
last_act = [n for n in names_act if n == last_name or n.startswith(last_name + ".")]
with torch.no_grad():
    last_maps = convlens.feature_maps(model, x, last_name)[0]
top_values = last_maps.amax(dim=0)
ceiling_value = totals[last_act[0]][3] if last_act else None
top_saturated = (float((top_values >= ceiling_value).float().mean())
                 if ceiling_value is not None else 0.0)
lesson.record("top_saturated", top_saturated, ".0%")
# the same share over the pool's photos (one batched forward pass)
photos = torch.cat([convlens.images.prepare(p.image, ctx.preprocess) for p in pool]).to(ctx.device)
with torch.no_grad():
    pool_tops = convlens.feature_maps(model, photos, last_name).amax(dim=1)  # (photos, h, w)
pool_saturated = ((pool_tops >= ceiling_value).flatten(1).float().mean(dim=1)
                  if ceiling_value is not None else torch.zeros(len(pool)))
lesson.record("top_saturated_pool", float(pool_saturated.mean()), ".0%")
lesson.record("top_saturated_min", float(pool_saturated.min()), ".0%")
lesson.record("top_saturated_max", float(pool_saturated.max()), ".0%")
print(f"{last_name}, over the {len(pool)} photos of the pool: the most active channel sits at the "
      f"ceiling at {float(pool_saturated.mean()):.0%} of the positions (per photo "
      f"{float(pool_saturated.min()):.0%} to {float(pool_saturated.max()):.0%})")
_ = lesson.expect(float(pool_saturated.mean()) > 0.25, f"over the pool, the top channel of a position "
                  f"of {last_name} is at the ceiling often, not rarely", float(pool_saturated.mean()))
lesson.record("last_ceiling_share", (totals[last_act[0]][2] / totals[last_act[0]][0])
              if last_act else 0.0, ".1%")
print(f"{last_name}: the most active channel sits at the ceiling at {top_saturated:.0%} of the "
      "positions of the cat photo")
# probe the centre unit twice: its most active channel, then the explorer's choice
ci, cj = last_maps.shape[1] // 2, last_maps.shape[2] // 2
top_channel = int(last_maps[:, ci, cj].argmax())
top_mask = convlens.empirical_receptive_field(model, last_name, (top_channel, ci, cj), x=x)
last_probes = next(entry["measured"] for entry in rf_explorer.data["layers"]
                   if entry["name"] == last_name)
probe = next(p for p in last_probes if tuple(p["unit"]) == (ci, cj))
skips = [p["skipped"] for p in last_probes]
print(f"centre unit ({ci}, {cj}) of {last_name}: channel {top_channel} = "
      f"{float(last_maps[top_channel, ci, cj]):.2f}, footprint {int(top_mask.sum())} pixels; "
      f"the explorer's channel {probe['channel']} ({probe['skipped']} skipped) = "
      f"{float(last_maps[probe['channel'], ci, cj]):.2f}, footprint {probe['pixels']} pixels")
lesson.record("top_channel", top_channel)
lesson.record("top_value", float(last_maps[top_channel, ci, cj]), ".1f")
lesson.record("top_pixels", int(top_mask.sum()))
lesson.record("probe_channel", probe["channel"])
lesson.record("probe_value", float(last_maps[probe["channel"], ci, cj]), ".2f")
lesson.record("probe_skipped", probe["skipped"])
lesson.record("probe_pixels", probe["pixels"])
lesson.record("image_pixels", H * W)
_ = lesson.expect(probe["pixels"] == H * W, f"the explorer's probe of the centre unit of {last_name} "
                  "reaches every pixel of the image", probe["pixels"])
lesson.record("probes_skipping", sum(k > 0 for k in skips))
lesson.record("probes_n", len(skips))
_ = lesson.expect(top_saturated > 0.5 and int(top_mask.sum()) == 0 and probe["pixels"] > 0,
                  f"at most positions of {last_name} the most active channel is at the ceiling, "
                  "where its gradient, and so its footprint, is empty; the explorer's channel "
                  "has one", (top_saturated, int(top_mask.sum()), probe["pixels"]))

# %% [markdown]
# Across the {{ n_clamps }} activations, {{ off_all }} of all outputs are off and
# {{ ceiling_all }} at the ceiling: the ceiling is rare on average. It is not rare where a
# probe looks first. At the last spatial layer `{{ last_name }}`, whose output is taken after its
# ReLU6, only {{ last_ceiling_share }} of the outputs sit at 6, but the largest channel of a
# position is there at {{ top_saturated_pool }} of the positions of the pool's photos (from
# {{ top_saturated_min }} to {{ top_saturated_max }} per photo) and at {{ top_saturated }} of
# the positions of the cat photo: on this photo, at most positions the strongest response is
# a clipped one. Probe the centre unit's most active channel
# ({{ top_channel }}, value {{ top_value }}) and the footprint has {{ top_pixels }} pixels: not
# because the unit sees nothing, but because its derivative is zero. The explorer therefore
# takes, at each dotted unit, the most active channel whose gradient reaches the input; at
# the centre unit that is channel {{ probe_channel }} (value {{ probe_value }}, after
# {{ probe_skipped }} saturated ones), with {{ probe_pixels }} pixels, and
# {{ probes_skipping }} of the {{ probes_n }} dotted units of `{{ last_name }}` needed the
# skip. When a gradient map is empty or patchy, check the activations on the path before
# concluding that the pixels do not matter.

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
print("convlens.receptive_field(alexnet)['classifier.1']:", traced_fields(alexnet)["classifier.1"])
lesson.expect(bool(reach.all()), "every pixel has a nonzero gradient for the fully connected unit",
              float(reach.float().mean()))

fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(g[0].abs().sum(dim=0), cmap="magma")
ax.set_title("|∂ fc1[84] / ∂x| (AlexNet, random weights)", fontsize=9)
ax.set_xticks([])
ax.set_yticks([])
lesson.show(fig, "Gradient magnitude of unit 84 of AlexNet's first fully connected layer "
                 "(architecture with random weights): every pixel contributes.",
            model="AlexNet, random weights")

# %% [markdown]
# Every pixel has a nonzero gradient. Compare with [Figure 3](#figure-3): a unit of
# `{{ probe_layer }}` has a {{ probe_box_size }} box; a unit of a fully connected layer
# has the whole image, as do the deepest convolutional units here (`{{ last_name }}`'s box is
# {{ last_rf }} pixels wide, and the footprint of its probed centre unit above holds
# {{ probe_pixels }} pixels, all {{ image_pixels }} of the image). (With other input sizes
# this can fail at the borders of networks whose strided layers round down, as torchvision's
# VGG and AlexNet do: when a strided layer's last window ends before the last real pixel, that
# is, when what is left after the last stride is more than the padding on that side, the
# pixels there reach no unit at all. At 224 pixels AlexNet's first layer drops only padding.
# TF-style "same" padding covers every pixel.)
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
# its channels (those off or at the ceiling at that position add nothing), gradient magnitude
# averaged over the {{ pool_n }} photos of the pool.

# %%
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
effective = {}  # role -> (theoretical size, side of the 90% square, edge/peak of the profile)
not_drawn = []  # layers whose box holds the whole image (edges out of view), or that have none
for col, role in enumerate(("middle", "last_spatial")):
    name = ctx.layers[role]
    erf, (ci, cj) = effective_field(model, name, photos)
    f = fields.get(name)
    ax = axes[0][col]
    ax.imshow(erf.sqrt(), cmap="magma")  # square root: the faint tails stay visible
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    profile = erf.sum(dim=0)  # column profile (summed over rows)
    axes[1][col].plot(profile / profile.max(), color="black", linewidth=1)
    axes[1][col].set(xlim=(0, W - 1), ylim=(0, 1.05), xlabel="input column",
                     ylabel="relative |gradient|")
    if f is None or not f.has_window:
        ax.set_title(f"{name}, unit ({ci}, {cj}):\nno local field", fontsize=9)
        print(f"{name}: no analytic field to compare with")
        not_drawn.append(name)
        continue
    top, left, bottom, right = f.box(ci, cj)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                           edgecolor="cyan", linewidth=1.5))
    inside_view = top >= 0 and left >= 0 and bottom <= H and right <= W
    if top < 0 and left < 0 and bottom > H and right > W:
        not_drawn.append(name)
    ax.set_title(f"{name}, unit ({ci}, {cj}):\ntheoretical field {f.size[0]}×{f.size[1]} px "
                 + ("(cyan)" if inside_view else "(beyond the image)"), fontsize=9)
    axes[1][col].axvspan(max(left, 0), min(right, W) - 1, color="cyan", alpha=0.2)
    # the smallest square around the centre that holds 90% of the gradient mass
    total = erf.sum()
    cy, cx = (int(v) for v in f.center(ci, cj))
    for half in range(1, max(H, W)):
        square = erf[max(cy - half, 0):cy + half + 1, max(cx - half, 0):cx + half + 1]
        if square.sum() >= 0.9 * total:
            break
    side = square.shape[-1]  # its width inside the image (the square is clipped at the edges)
    # the profile near the edges of the box (its outer tenth on each side, inside the image)
    rim = max(1, f.size[1] // 10)
    edge_columns = [v for v in [*range(left, left + rim), *range(right - rim, right)] if 0 <= v < W]
    edge = float(profile[edge_columns].max() / profile.max()) if edge_columns else float("nan")
    # and the profile near the image's left and right edges (outer tenth), against its peak
    rim_image = max(1, W // 10)
    image_rim = float(torch.cat([profile[:rim_image], profile[-rim_image:]]).mean() / profile.max())
    effective[role] = (f.size[0], side, edge, image_rim, f.center(ci, cj), 2 * half + 1)
    print(f"{name}: theoretical field {f.size[0]} px, centred on pixel ({cy}, {cx}); 90% of the "
          f"gradient mass lies within a {2 * half + 1}×{2 * half + 1} square around that centre, "
          f"{tuple(square.shape)} of it inside the image; profile at the box's edges: "
          f"{edge:.1%} of its peak" + (" (edges outside the image)" if not edge_columns else ""))
lesson.show(fig, f"Effective receptive field of the centre unit of {ctx.layers['middle']} and "
                 f"{ctx.layers['last_spatial']} (|gradient| averaged over {len(pool)} photos), with the "
                 "theoretical box in cyan"
                 + (f" (none in view for {' and '.join(not_drawn)}, whose box holds the whole image)"
                    if not_drawn else "")
                 + "; square-root colour scale; bottom: column profile, summed over rows.")

mid_rf, mid_side, mid_edge, *_ = effective.get("middle", (None, None, float("nan"), None))
lesson.record("mid_rf", known(mid_rf))
lesson.record("mid_side", known(mid_side))
lesson.record("mid_share", known(mid_side / mid_rf if mid_rf else None, ".0%"))
lesson.record("mid_edge", known(mid_edge, ".1%"))
lesson.expect(mid_rf is not None and mid_side < 0.7 * mid_rf,
              "for the middle layer, 90% of the gradient mass sits in a square well under the "
              "width of the theoretical field", mid_side / mid_rf if mid_rf else None)
lesson.expect(mid_edge < 0.25, "the middle layer's profile falls to a small fraction of its peak "
              "at the edges of the box", mid_edge)
_, last_side, _, last_rim, last_centre, last_full = effective.get(
    "last_spatial", (None, None, None, float("nan"), None, None))
lesson.record("last_centre", "n/a" if last_centre is None else
              f"({last_centre[0]:g}, {last_centre[1]:g})")
lesson.record("image_centre", f"({(H - 1) / 2:g}, {(W - 1) / 2:g})")
_ = lesson.expect(last_centre is not None
                  and max(abs(last_centre[0] - (H - 1) / 2), abs(last_centre[1] - (W - 1) / 2)) > 1,
                  "the last layer's centre unit is not centred on the image", last_centre)
lesson.record("last_clip", "n/a" if last_full is None else
              f"The square needs {last_full} pixels a side, so the image clips it: inside the image "
              f"it is {last_side} pixels wide." if last_side < last_full else
              f"The square, {last_side} pixels a side, fits inside the image.")
lesson.record("last_rim", known(last_rim, ".0%"))
_ = lesson.expect(last_rim < 0.75, "the last layer's effective field is uneven: weaker near the "
                  "image's edges than at its peak", last_rim)
_ = lesson.expect(last_side is not None and last_side >= W // 2,
                  "the last layer's effective field spreads across most of the image", last_side)

# %% [markdown]
# For the middle layer, the bright blob fills only the centre of the cyan box: 90% of the
# gradient mass sits in a {{ mid_side }}-pixel square, {{ mid_share }} of the width of the
# {{ mid_rf }}-pixel theoretical field, and the profile is bell-shaped, not flat like the box:
# at the box's edges it is down to {{ mid_edge }} of its peak. For the last layer the
# theoretical field covers the image several times over; its effective field does spread
# across most of the image, but unevenly. We grow the 90% square around the centre of the
# unit's field (a choice of the measurement, not something it finds), and that centre,
# pixel {{ last_centre }}, is not the image's centre, {{ image_centre }}: where a field sits
# follows from the padding of every strided layer before it (see the traps on padding).
# {{ last_clip }} And near the left
# and right edges of the image the column profile is at {{ last_rim }} of its
# peak. When someone says "this unit has a
# receptive field of {{ last_rf }} pixels", read it as an upper bound on where its input can
# come from, not as where it does come from.
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
# $-p_l$: for the dashed box in <a href="#figure-2">Figure 2</a>, part of the field is padding. When you crop "the
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
offsets = {}
for size in (224, 225):
    offsets[size] = traced_fields(model, (size, size), ctx.name)[first].padding[0]
    print(f"{first} at input {size}×{size}: offset p = {offsets[size]}")
_ = lesson.expect(offsets[224] != offsets[225], "the course model pads dynamically: its first "
                  "convolution's offset changes with the input size", offsets)

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
