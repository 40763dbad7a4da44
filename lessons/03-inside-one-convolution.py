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
# # Inside one convolution
#
# **Summary.** A convolution layer taken apart into per-kernel maps, so you can see which input channel does what.
#
# **The question.** "A feature map is the sum of one 2-D response per input channel. How do I
# get those responses *before* the sum? Can I do it on a pretrained AlexNet or VGG without
# retraining? My version disagrees with the original layer as soon as the layer has a bias:
# why? And is the modified network still trainable?"
#
# A convolution layer with $C_\text{in}$ input channels and $C_\text{out}$ filters computes,
# for every filter $o$,
#
# $$ y_o \;=\; b_o + \sum_{c=1}^{C_\text{in}} w_{o,c} \star x_c , $$
#
# where $w_{o,c}$ is the $k\times k$ kernel of filter $o$ for input channel $c$ and $\star$ is a
# single-channel 2-D cross-correlation (with the layer's stride, padding and dilation). Each
# term $m_{o,c} = w_{o,c}\star x_c$ is a **kernel map**: what filter $o$ would output if it had
# only its $c$-th slice. There are $C_\text{in}\times C_\text{out}$ of them, and the layer
# never materialises them: cuDNN and the CPU kernels fuse the product and the sum.
#
# They can be computed with an ordinary *grouped* convolution from the same weights: make each
# input channel its own group and give that group all $C_\text{out}$ kernels that read it. No
# retraining is involved, only a rearrangement of the pretrained weights, and the sum of the
# maps reproduces the layer exactly, provided the bias is added once. `convlens.kernel_maps`
# returns the maps as `[N, C_out, C_in/groups, H, W]`; `convlens.convert_convs` swaps every
# convolution of a model for a `convlens.KernelMapConv2d` that can keep them.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import torchvision
from matplotlib.patches import Rectangle
from torch import nn

import convlens
from convlens import lesson

ctx = lesson.setup()
model = ctx.model
modules = dict(model.named_modules())
print("model:", ctx.name, "| device:", ctx.device)
x = ctx.image("chelsea")
print("top classes:", ", ".join(f"{label} {p:.1%}" for label, p in ctx.top_classes(x, k=3)))

# %% [markdown]
# ## Per-kernel maps of a pretrained first layer
#
# The first convolution reads the three colour channels, so each filter has three kernel maps:
# its red, green and blue responses. Their sum (plus the bias, if the layer has one) is the
# feature map.

# %%
first = modules[ctx.layers["first_conv"]]
with torch.no_grad():
    maps = convlens.kernel_maps(first, x)  # [1, C_out, 3, H, W]
    y = first(x)  # the layer's own output
bias = first.bias if first.bias is not None else torch.zeros(first.out_channels, device=x.device)
rebuilt = maps.sum(dim=2) + bias[None, :, None, None]
print(f"{ctx.layers['first_conv']}: kernel maps {tuple(maps.shape)}; "
      f"max |sum of maps + bias - conv(x)| = {(rebuilt - y).abs().max():.2e}")

# three telling filters among the stronger half: the most colour-opponent (its colour kernels
# point in opposite directions), the most colour-blind (alike kernels), and the strongest
kernels = first.weight.detach().flatten(2)  # [C_out, C_in, k*k]
unit = kernels / kernels.norm(dim=2, keepdim=True).clamp(min=1e-12)
similarity = torch.einsum("oak,obk->oab", unit, unit).sum(dim=(1, 2))  # high: channels agree
strength = kernels.flatten(1).norm(dim=1)
strong = strength >= strength.median()
opponent = int(similarity.masked_fill(~strong, float("inf")).argmin())
alike = int(similarity.masked_fill(~strong, float("-inf")).argmax())
strongest = next(int(o) for o in strength.argsort(descending=True) if int(o) not in (opponent, alike))
filters = [opponent, alike, strongest]
fig, axes = plt.subplots(len(filters), 4, figsize=(8.4, 2.2 * len(filters)))
for row, o in enumerate(filters):
    panels = [maps[0, o, c] for c in range(3)] + [rebuilt[0, o]]
    names = [f"{c} kernel map" for c in "RGB"[:first.in_channels]] + ["sum = feature map"]
    limit = float(max(p.abs().max() for p in panels))  # one signed scale per filter
    for col, (panel, name) in enumerate(zip(panels, names)):
        ax = axes[row][col]
        ax.imshow(panel.cpu(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(name, fontsize=9)
        if col == 0:
            ax.set_ylabel(f"filter {o}\n({['opponent', 'colour-blind', 'strongest'][row]})",
                          fontsize=9)
lesson.show(fig, f"Kernel maps of three filters of {ctx.layers['first_conv']} on the cat photo: the "
                 "response of each colour kernel, and their sum (red > 0, blue < 0, one scale per row).")

# %% [markdown]
# To look at other filters (the strongest ones by weight norm), or at any channel of two deeper
# layers, pick them here:

# %%
from convlens import explore

x_explore = ctx.image("chelsea")
explore.channels_explorer(ctx.model, x_explore, ctx.to_display(x_explore),
                          [ctx.layers["middle"], ctx.layers["last_conv"]],
                          first_conv=ctx.layers["first_conv"], filters=8)

# %% [markdown]
# The decomposition shows *how* a filter builds its response. The rows are chosen from the
# weights: in the colour-opponent filter (top) two colour maps have opposite signs over the
# same regions and partly cancel, so the sum keeps what differs between the colours; in the
# colour-blind filter (middle) the maps look alike and add up, a brightness detector. A faint
# map is a channel the filter hardly uses.
#
# ## The construction: a grouped convolution and one permutation
#
# A grouped convolution with `groups = G` splits the input channels into $G$ blocks and gives
# each block its own filters; with $G = C_\text{in}$ every input channel is a group of one. To
# get every $w_{o,c}\star x_c$, group $c$ needs the $C_\text{out}$ kernels $w_{0,c}, \dots,
# w_{C_\text{out}-1,c}$: a grouped convolution with $C_\text{in}\cdot C_\text{out}$ output
# channels whose weight is
#
# $$ W^\text{grouped}_{c\,C_\text{out} + o} = w_{o,c}, \quad\text{i.e. }
#    \texttt{w.permute(1, 0, 2, 3).reshape(C\_in * C\_out, 1, k, k)} . $$
#
# Its outputs come out grouped by *input* channel, in the order $[c, o]$. To read them per
# filter, view them as `[N, C_in, C_out, H, W]` and swap the two channel axes to
# `[N, C_out, C_in, H, W]`; then the sum over axis 2 is the original layer. The figure shows the
# order for $C_\text{in}=3$, $C_\text{out}=4$.

# %%
C_in, C_out = 3, 4
colours = plt.get_cmap("tab10").colors
fig, ax = plt.subplots(figsize=(10, 2.2))
for row, (label, order) in enumerate([
        ("grouped conv output\n(order [c, o])", [(c, o) for c in range(C_in) for o in range(C_out)]),
        ("after view + permute\n(order [o, c])", [(c, o) for o in range(C_out) for c in range(C_in)])]):
    for position, (c, o) in enumerate(order):
        y0 = 1.2 * (1 - row)
        ax.add_patch(Rectangle((position, y0), 0.92, 0.8, facecolor=colours[o], alpha=0.35 + 0.2 * c,
                               edgecolor="black", linewidth=0.5))
        ax.text(position + 0.46, y0 + 0.4, f"w{o},{c}⋆x{c}", ha="center", va="center", fontsize=7)
    ax.text(-0.2, 1.2 * (1 - row) + 0.4, label, ha="right", va="center", fontsize=8)
ax.set_xlim(-3.2, C_in * C_out + 0.1)
ax.set_ylim(-0.1, 2.1)
ax.axis("off")
ax.set_title("colour = filter o, shade = input channel c: the sum for filter o runs over one "
             "colour block after the permute", fontsize=9)
lesson.show(fig, "Channel order of the grouped convolution (groups = C_in) and after reordering "
                 "to [C_out, C_in], for C_in = 3 and C_out = 4.")

# %% [markdown]
# Written out by hand, on a layer of the VGG16 architecture (random weights: the identity
# doesn't depend on them), and checked against the plain layer and against
# `convlens.kernel_maps`:

# %%
vgg16 = torchvision.models.vgg16(weights=None).eval()
conv = vgg16.features[2]  # Conv2d(64, 64, 3, padding=1), with a bias
with torch.no_grad():  # torchvision starts VGG biases at 0, which would hide the bias bug below;
    conv.bias.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(ctx.seed))  # trained ones aren't
x_in = torch.randn(2, conv.in_channels, 32, 32, generator=torch.Generator().manual_seed(ctx.seed))
n, C_in, C_out, k = x_in.shape[0], conv.in_channels, conv.out_channels, conv.kernel_size[0]

grouped = nn.Conv2d(C_in, C_in * C_out, k, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, groups=C_in, bias=False)
with torch.no_grad():  # copying into a Parameter is not an operation to differentiate
    grouped.weight.copy_(conv.weight.permute(1, 0, 2, 3).reshape(C_in * C_out, 1, k, k))
    per_kernel = grouped(x_in)  # [N, C_in * C_out, H, W], order [c, o]
    h, w = per_kernel.shape[-2:]
    per_kernel = per_kernel.view(n, C_in, C_out, h, w).permute(0, 2, 1, 3, 4)  # -> [N, C_out, C_in, H, W]
    reference = conv(x_in)
    summed = per_kernel.sum(dim=2) + conv.bias[None, :, None, None]  # bias once, after the sum
    library = convlens.kernel_maps(conv, x_in)
print(f"{C_in} x {C_out} = {C_in * C_out} kernel maps of {tuple(per_kernel.shape[-2:])}")
print(f"max |sum of maps + bias - conv(x)|     = {(summed - reference).abs().max():.2e}")
print(f"max |by hand - convlens.kernel_maps|   = {(per_kernel - library).abs().max():.2e}")

# %% [markdown]
# ## The bias pitfall
#
# A convolution adds $b_o$ once, *after* the sum over channels. If the grouped convolution is
# given a bias too, copied into every group (`bias=True` with `conv.bias.repeat(C_in)`), each of
# the $C_\text{in}$ kernel maps of filter $o$ carries a full $b_o$, and the sum holds
# $C_\text{in}\,b_o$: wrong by $(C_\text{in}-1)\,b_o$ everywhere. Two correct fixes: put
# $b_o/C_\text{in}$ in every group, or leave the bias out of the maps and add it once after the
# sum (what `convlens.kernel_maps` does: its maps exclude the bias).

# %%
def grouped_with_bias(bias_per_group):
    g = nn.Conv2d(C_in, C_in * C_out, k, stride=conv.stride, padding=conv.padding, groups=C_in)
    with torch.no_grad():
        g.weight.copy_(conv.weight.permute(1, 0, 2, 3).reshape(C_in * C_out, 1, k, k))
        g.bias.copy_(bias_per_group.repeat(C_in))  # entry c*C_out + o gets bias_per_group[o]
        return g(x_in).view(n, C_in, C_out, h, w).sum(dim=1)


with torch.no_grad():
    wrong = grouped_with_bias(conv.bias)
    right = grouped_with_bias(conv.bias / C_in)
    after = summed
    expected_error = ((C_in - 1) * conv.bias).abs().max()
print(f"bias copied into every group: max error {(wrong - reference).abs().max():.4f} "
      f"(= max |(C_in - 1) b| = {expected_error:.4f})")
print(f"bias / C_in in every group:   max error {(right - reference).abs().max():.2e}")
print(f"bias added after the sum:     max error {(after - reference).abs().max():.2e}")

# %% [markdown]
# ## Every convolution of a pretrained network
#
# `convlens.convert_convs(model)` returns a copy of the model in which every `nn.Conv2d` is a
# `convlens.KernelMapConv2d` holding the same weights; the original model is not touched. By default the
# copy computes exactly what the original does and stores nothing extra, so it can be checked
# (and trained) like the original. We check the logits of the pretrained course model, and of
# the AlexNet and VGG16 architectures (their pretrained weights aren't available offline here;
# the identity is the same for any weights).

# %%
def count_convs(net):
    return sum(isinstance(m, nn.Conv2d) for m in net.modules())


alexnet = torchvision.models.alexnet(weights=None).eval()
for name, net, inp in [(ctx.name + " (pretrained)", model, x), ("AlexNet (architecture)", alexnet, None),
                       ("VGG16 (architecture)", vgg16, None)]:
    if inp is None:
        inp = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(ctx.seed))
    converted = convlens.convert_convs(net)
    kinds = sum(isinstance(m, convlens.KernelMapConv2d) for m in converted.modules())
    with torch.no_grad():
        difference = (converted(inp) - net(inp)).abs().max()
    print(f"{name:28s}: {kinds:2d} of {count_convs(net):2d} convs replaced; "
          f"max |logits difference| = {difference:.2e}")

# %% [markdown]
# To look at the kernel maps of one layer inside the converted model, switch that layer on:
# `keep_maps=True` stores the maps of its last input in `last_kernel_maps`, and `map_channels`
# keeps only a few filters. Below, a layer deeper in the course model: the first convolution
# with many input channels and `groups == 1`. On EfficientNet that is a $1\times1$ pointwise
# convolution, where each kernel map is simply the input channel times one weight,
# $w_{o,c}\,x_c$: the decomposition tells which input channels a filter draws on, and with
# which sign.

# %%
converted = convlens.convert_convs(model)
target_name = next(n for n, m in converted.named_modules()
                   if isinstance(m, convlens.KernelMapConv2d) and m.groups == 1 and m.in_channels > 3)
target = converted.get_submodule(target_name)
with torch.no_grad():
    target.keep_maps, target.map_channels = True, None
    converted(x)
    kept = target.last_kernel_maps  # [1, C_out, C_in, H, W]
    target.keep_maps = False
o = int(kept[0].sum(dim=1).abs().mean(dim=(1, 2)).argmax())  # the filter with the strongest output
share = kept[0, o].abs().mean(dim=(1, 2))
order = share.argsort(descending=True)
print(f"{target_name}: {tuple(target.weight.shape)}, kernel maps {tuple(kept.shape)}")
print(f"filter {o}: the 6 input channels with the largest mean |kernel map| hold "
      f"{share[order[:6]].sum() / share.sum():.0%} of the total")

fig = plt.figure(figsize=(10, 4.2))
grid = fig.add_gridspec(2, 8, height_ratios=[1.1, 1])
ax = fig.add_subplot(grid[0, :])
ax.bar(range(len(share)), share[order].cpu(), color="tab:blue")
ax.set(xlabel="input channel (sorted)", ylabel="mean |kernel map|",
       title=f"{target_name}, filter {o}: contribution of each input channel")
ax.set_xticks(range(len(share)), [str(int(c)) for c in order], fontsize=6)
panels = [kept[0, o, int(c)] for c in order[:6]] + [kept[0, o].sum(dim=0)]
limit = float(max(p.abs().max() for p in panels[:6]))  # one scale for the six maps
for col, panel in enumerate(panels):
    ax = fig.add_subplot(grid[1, col])
    scale = limit if col < 6 else float(panel.abs().max())
    ax.imshow(panel.cpu(), cmap="RdBu_r", vmin=-scale, vmax=scale)
    ax.set_title(f"in {int(order[col])}" if col < 6 else "sum (own scale)", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
lesson.show(fig, f"Kernel maps of filter {o} of {target_name} on the cat photo: the share of each "
                 "input channel, the six largest maps, and the sum over all of them.")

# %% [markdown]
# ## The memory cost
#
# The kernel maps of one layer are $C_\text{in}$ times bigger than its output: one map per
# (filter, input channel) pair. For VGG16 at $224\times224$ in float32, the second convolution
# alone produces $64\times64$ maps of $224\times224$, 784 MiB per image, against 12 MiB for its
# output; the whole network, several GiB. The table and chart below compute it layer by layer.

# %%
rows, names, sizes, outputs = [], [], [], []
h = w = 224
for index, layer in enumerate(vgg16.features):
    if isinstance(layer, nn.MaxPool2d):
        h, w = h // 2, w // 2
    elif isinstance(layer, nn.Conv2d):  # 3x3, stride 1, padding 1: output size = input size
        maps_bytes = layer.in_channels * layer.out_channels * h * w * 4
        out_bytes = layer.out_channels * h * w * 4
        names.append(f"features.{index}")
        sizes.append(maps_bytes)
        outputs.append(out_bytes)
        rows.append(f"features.{index:<3d} {layer.in_channels:4d} x {layer.out_channels:3d} "
                    f"@ {h:3d}x{w:<3d}  maps {maps_bytes / 2**20:9.1f} MiB   "
                    f"output {out_bytes / 2**20:6.2f} MiB")
print("\n".join(rows))
print(f"all VGG16 convs: kernel maps {sum(sizes) / 2**30:.1f} GiB per image, "
      f"ordinary outputs {sum(outputs) / 2**20:.0f} MiB")

fig, ax = plt.subplots(figsize=(10, 3.4))
positions = range(len(names))
ax.bar([p - 0.2 for p in positions], [s / 2**20 for s in sizes], width=0.4, label="kernel maps")
ax.bar([p + 0.2 for p in positions], [s / 2**20 for s in outputs], width=0.4, label="layer output")
ax.set_yscale("log")
ax.set_xticks(list(positions), names, rotation=45, ha="right", fontsize=8)
ax.set_ylabel("MiB per image (float32)")
ax.set_title("VGG16 at 224×224: memory of all kernel maps vs the ordinary output, per conv layer",
             fontsize=9)
ax.legend(fontsize=8)
lesson.show(fig, "Memory of the full kernel maps (C_in × C_out maps) and of the ordinary output "
                 "of each VGG16 convolution, per 224×224 image, float32.")

# %% [markdown]
# How to keep it affordable:
#
# - **select filters**: `convlens.kernel_maps(conv, x, out_channels=[...])` computes only the maps of
#   the filters you will look at ($C_\text{in}$ maps each);
# - **chunk**: `kernel_maps` builds the grouped weight for `chunk` filters at a time, so the
#   temporaries stay small even when you ask for all of them;
# - **keep only what you need**: `convlens.KernelMapConv2d` stores nothing unless `keep_maps=True`, and
#   then detached (no autograd graph); reduce the maps (mean |map| per channel, as above) as
#   soon as they are computed; use smaller inputs or half precision for exploration.

# %%
with torch.no_grad():
    x_vgg = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(ctx.seed))
    some = convlens.kernel_maps(vgg16.features[0], x_vgg)  # the first layer, all 64 filters: 3 maps each
    two = convlens.kernel_maps(vgg16.features[2], F.relu(vgg16.features[0](x_vgg)), out_channels=[5, 17])
print(f"features.0, all filters:         {tuple(some.shape)} = {some.numel() * 4 / 2**20:.1f} MiB")
print(f"features.2, filters 5 and 17:    {tuple(two.shape)} = {two.numel() * 4 / 2**20:.1f} MiB "
      f"(all 64 filters: {sizes[1] / 2**20:.0f} MiB)")

# %% [markdown]
# ## Copying weights under `no_grad`, and training afterwards
#
# Parameters are leaves of the autograd graph that require gradients; writing into them in
# place (`weight.copy_(...)`) while autograd is recording raises an error, because there would
# be no meaningful gradient for "overwrite this parameter". The copy is not part of the model's
# computation, so it goes under `torch.no_grad()`. That does **not** freeze anything: the new
# parameter still has `requires_grad=True`, and gradients flow through the converted layer as
# through the original one.

# %%
fresh = nn.Conv2d(3, 8, 3)
try:
    fresh.weight.copy_(torch.zeros_like(fresh.weight))
except RuntimeError as error:
    print("copy_ without no_grad ->", str(error).split("\n")[0])
with torch.no_grad():
    fresh.weight.copy_(torch.zeros_like(fresh.weight))
print("copy_ under no_grad    -> ok; requires_grad is still", fresh.weight.requires_grad)

# one gradient through the converted pretrained model, w.r.t. its first conv's weight
converted_first = converted.get_submodule(ctx.layers["first_conv"])
target_class = ctx.class_index(ctx.top_classes(x, k=1)[0][0])
(g_converted,) = torch.autograd.grad(converted(x)[0, target_class], converted_first.weight)
(g_original,) = torch.autograd.grad(model(x)[0, target_class], first.weight)
print(f"{type(converted_first).__name__}.weight: requires_grad={converted_first.weight.requires_grad}, "
      f"gradient norm {g_converted.norm():.4f}; max |difference to the original's gradient| = "
      f"{(g_converted - g_original).abs().max():.2e}")

# %% [markdown]
# The converted model is the same function of the same parameters, so it trains exactly like
# the original: plug it into an optimizer as usual.
#
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: the bias in every group</p>
# <p>A grouped convolution built with <code>bias=True</code> from the layer's bias counts it
# $C_\text{in}$ times. Leave the bias out of the maps and add it once after the sum (or use
# $b/C_\text{in}$ per group). The error is $(C_\text{in}-1)\,b_o$, constant over the map, so it
# is easy to miss in a picture and obvious in <code>(a - b).abs().max()</code>.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: memory</p>
# <p>All kernel maps of a layer are $C_\text{in}$ times its output; of a whole VGG16, over 6 GiB
# per image. Select filters, chunk, and never keep every layer's maps while
# training.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: <code>copy_</code> into a
# parameter without <code>no_grad</code></p>
# <p>It raises; and the "fixes" people reach for (<code>.data</code>, or building the layer
# with <code>requires_grad=False</code>) either bypass autograd's checks or freeze the layer.
# <code>with torch.no_grad(): new.weight.copy_(old.weight)</code> is the right tool; the layer
# stays trainable.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: depthwise convolutions
# are already decomposed</p>
# <p>In a depthwise convolution (<code>groups == C_in</code>, as in MobileNet and EfficientNet)
# each filter reads a single channel: there is no sum over channels to open up, and its kernel
# maps are its output. For a general grouped convolution, the maps of filter $o$ cover only the
# $C_\text{in}/\text{groups}$ channels of its group.</p></div>

# %%
depthwise = next(((n, m) for n, m in model.named_modules()
                  if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1), None)
if depthwise is None:
    print("this model has no depthwise convolution")
else:
    dw_name, dw = depthwise
    dw_input = torch.randn(1, dw.in_channels, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dw_maps = convlens.kernel_maps(dw, dw_input.to(ctx.device))
        print(f"{dw_name} (groups={dw.groups}): kernel maps {tuple(dw_maps.shape)}; max |maps[:, :, 0] "
              f"- conv(x)| = {(dw_maps[:, :, 0] - dw(dw_input.to(ctx.device))).abs().max():.2e}")

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: TensorFlow "same" padding</p>
# <p>timm's <code>Conv2dSame</code> (the course model's strided convolutions) reports
# <code>padding=0</code> and pads inside <code>forward</code>, by an amount that depends on the input
# size, with the odd pixel at the bottom/right. A grouped convolution built from the layer's
# <code>padding</code> attribute then computes a different, smaller map. Pad the input the same way
# first (<code>convlens.kernel_maps</code> and <code>convlens.KernelMapConv2d</code> do).</p></div>

# %%
if type(first).__name__ == "Conv2dSame":
    naive = nn.Conv2d(3, 3 * first.out_channels, first.kernel_size, stride=first.stride,
                      padding=first.padding, groups=3, bias=False).to(ctx.device)
    with torch.no_grad():
        naive.weight.copy_(first.weight.permute(1, 0, 2, 3).reshape(-1, 1, *first.kernel_size))
        print(f"{ctx.layers['first_conv']} output {tuple(first(x).shape[-2:])}; grouped conv built from "
              f"its padding attribute {first.padding}: {tuple(naive(x).shape[-2:])}")
else:
    print(f"{ctx.layers['first_conv']} pads statically ({first.padding}): no dynamic padding here")

# %% [markdown]
# ## Exercises
#
# 1. For each filter of the first layer, compute the share of its response that comes from
#    each colour (mean |kernel map| per channel). Which filters are colour-blind?
# 2. Find, for one filter of `ctx.layers["middle"]`'s first pointwise convolution, the input
#    channels that contribute most, and look at those channels' feature maps
#    ([Filters and feature maps](01-filters-and-feature-maps.ipynb)).
# 3. Zero the three least important kernels of a filter (by mean |map|) and measure how much
#    the model's top-1 probability changes.
# 4. Write `kernel_maps` for a `nn.Conv1d` with the same permutation, and check it against the
#    plain layer, with and without a bias.
# 5. Estimate the peak memory of `convlens.convert_convs(vgg16, keep_maps=True)` on one 224×224 image
#    from the table above, then run it on a 64×64 image and compare.
