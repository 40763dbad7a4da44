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
# maps reproduces the layer up to float rounding (errors of {{ first_rebuild_err }} and
# {{ vgg_rebuild_err }} in the first two checks below), provided the bias is added once. `convlens.kernel_maps`
# returns the maps as `[N, C_out, C_in/groups, H, W]`; `convlens.convert_convs` swaps every
# convolution of a model for a `convlens.KernelMapConv2d` that can keep them.

# %%
import copy

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import torchvision
from matplotlib.patches import Rectangle
from torch import nn

import convlens
from convlens.hooks import capture, record_outputs
from convlens_course import lesson

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
# the maps exclude the bias: it is added once, after the sum (detached: a picture, not a graph)
bias = (first.bias.detach() if first.bias is not None
        else torch.zeros(first.out_channels, device=x.device))
rebuilt = maps.sum(dim=2) + bias[None, :, None, None]
first_rebuild_err = float((rebuilt - y).abs().max())
print(f"{ctx.layers['first_conv']}: kernel maps {tuple(maps.shape)}; bias: "
      f"{'yes' if first.bias is not None else 'none'}; "
      f"max |sum of maps + bias - conv(x)| = {first_rebuild_err:.2e}")
lesson.record("first_rebuild_err", first_rebuild_err, ".1e")

# how much the colour maps of each filter cancel: |sum| / sum of |maps|, averaged over pixels
# (1: the maps have the same sign everywhere and add up; near 0: they cancel)
response = maps[0]  # [C_out, C_in, H, W]
parts = response.abs().sum(dim=1).mean(dim=(1, 2))
agreement = response.sum(dim=1).abs().mean(dim=(1, 2)) / parts.clamp(min=1e-12)
active = parts >= parts.median()  # among the filters with the stronger response
cancelling = int(agreement.masked_fill(~active, float("inf")).argmin())
adding = int(agreement.masked_fill(~active, float("-inf")).argmax())
# the filter whose colour *kernels* are most opposed (lowest cosine between two of them)
kernels = first.weight.detach().flatten(2)  # [C_out, C_in, k*k]
unit = kernels / kernels.norm(dim=2, keepdim=True).clamp(min=1e-12)
cosine = torch.einsum("oak,obk->oab", unit, unit)  # [C_out, C_in, C_in]
pair_cosine, pair = cosine.flatten(1).masked_fill(~active[:, None], float("inf")).min(dim=1)
opponent = int(pair_cosine.argmin())
a, b = divmod(int(pair[opponent]), first.in_channels)
same_sign = float((response[opponent, a] * response[opponent, b] > 0).float().mean())
names = "RGB" if first.in_channels == 3 else [str(c) for c in range(first.in_channels)]
print(f"among the {int(active.sum())} filters of stronger response (at least the median):")
print(f"filter {cancelling}: maps cancel most, |sum| / sum|maps| = {agreement[cancelling]:.2f}")
add_parts = response[adding].abs().mean(dim=(1, 2))  # mean |map| per colour
add_main = int(add_parts.argmax())
add_main_share = float(add_parts[add_main] / add_parts.sum())
print(f"filter {adding}: maps cancel least, |sum| / sum|maps| = {agreement[adding]:.2f}; its "
      f"{names[add_main]} map holds {add_main_share:.0%} of the summed mean |maps|")
opposite_inputs = float((x[0, a] * x[0, b] < 0).float().mean())
print(f"filter {opponent}: most opposed kernels, {names[a]} and {names[b]} (cosine "
      f"{pair_cosine[opponent]:.2f}); their maps have the same sign on {same_sign:.0%} of "
      f"the pixels, |sum| / sum|maps| = {agreement[opponent]:.2f}; the {names[a]} and "
      f"{names[b]} inputs have opposite signs on {opposite_inputs:.0%} of the pixels")
print(f"input range [{x.min():.2f}, {x.max():.2f}]; {float((x < 0).float().mean()):.0%} of "
      "the input values are negative")
lesson.record("cancel_filter", cancelling)
lesson.record("n_active", int(active.sum()))
lesson.record("n_filters", len(active))
lesson.record("cancel_ratio", agreement[cancelling], ".2f")
lesson.record("add_filter", adding)
lesson.record("add_ratio", agreement[adding], ".2f")
lesson.record("add_main", names[add_main])
lesson.record("add_main_share", add_main_share, ".0%")
lesson.record("opp_filter", opponent)
lesson.record("opp_pair", f"{names[a]} and {names[b]}")
lesson.record("opp_cosine", pair_cosine[opponent], ".2f")
lesson.record("opp_sign_note", (
    f"Yet its {names[a]} and {names[b]} maps have the same sign on {same_sign:.0%} of the pixels. "
    "Opposite kernels give opposite responses only when they read the same input; these two "
    "read two different colour channels, each of them signed after the model's preprocessing "
    "(the page does not trace which pixels make the maps agree). Opposite weights are not "
    "opposite responses: to see cancellation, look at the maps.") if same_sign > 0.5 else (
    f"Its {names[a]} and {names[b]} maps have the same sign on only {same_sign:.0%} of the "
    "pixels: here opposite kernels do give mostly opposite responses. Still, the weights alone "
    "do not say this: to see cancellation, look at the maps."))
lesson.expect(bool(agreement[cancelling] < 0.5), "in the top row the colour maps cancel: "
              "|sum| is under half the summed |maps|", agreement[cancelling])
lesson.expect(bool(agreement[adding] > 0.8), "in the middle row little of the colour maps "
              "cancels", agreement[adding])
lesson.expect(add_main_share > 0.5, "in the middle row the largest colour map holds over half "
              "of the summed mean magnitudes", add_main_share)
lesson.expect(opponent not in (cancelling, adding),
              "the filter with the most opposed kernels is not one of the two rows above it",
              (opponent, cancelling, adding))
lesson.expect(bool((x < 0).any()), "the normalised input is signed", float(x.min()))

filters = [cancelling, adding, opponent]
tags = ["maps cancel", "little cancels", "opposed kernels"]
fig, axes = plt.subplots(len(filters), first.in_channels + 1,
                         figsize=(2.1 * (first.in_channels + 1), 2.2 * len(filters)), squeeze=False)
for row, o in enumerate(filters):
    panels = [maps[0, o, c] for c in range(first.in_channels)] + [rebuilt[0, o]]
    titles = [f"{c} kernel map" for c in names] + [
        ("sum + bias" if first.bias is not None else "sum") + " = feature map"]
    limit = float(max(p.abs().max() for p in panels))  # one signed scale per filter
    for col, (panel, title) in enumerate(zip(panels, titles)):
        ax = axes[row][col]
        ax.imshow(panel.cpu(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(title, fontsize=9)
        if col == 0:
            ax.set_ylabel(f"filter {o}\n({tags[row]})", fontsize=9)
lesson.show(fig, f"Kernel maps of three filters of {ctx.layers['first_conv']} on the cat photo: the "
                 "response of each colour kernel, and their sum"
                 + (" plus the bias (" if first.bias is not None else " (the layer has no bias; ")
                 + "red > 0, blue < 0, one scale per row).")

# %% [markdown]
# To look at other filters, or at any channel of two deeper layers, pick them here. The
# explorer offers the eight strongest filters, ranked as in the lesson on filters and feature
# maps: with the BatchNorm that reads the layer's
# output folded in ($w'_o = w_o\,\gamma_o/\sigma_o$), because the raw weight norm of a
# convolution followed by a BatchNorm is not the strength the next layer sees: here the two
# top-eight lists printed below share only {{ top_shared }} filters.

# %%
from convlens_course import explore

with torch.no_grad(), record_outputs(model) as first_calls:
    model(x)
after_first = [n for n, _ in first_calls]
after_first = after_first[after_first.index(ctx.layers["first_conv"]) + 1:]
first_bn = next((modules[n] for n in after_first[:3] if isinstance(modules[n], nn.BatchNorm2d)
                 and modules[n].num_features == first.out_channels), None)
fold = (torch.ones(first.out_channels, device=x.device) if first_bn is None else
        (first_bn.weight / torch.sqrt(first_bn.running_var + first_bn.eps)).detach())
strength = (first.weight.detach().flatten(1).norm(dim=1) * fold.abs())
strongest = sorted(strength.argsort(descending=True)[:8].tolist())
raw_top = sorted(first.weight.detach().flatten(1).norm(dim=1).argsort(descending=True)[:8].tolist())
top_shared = len(set(strongest) & set(raw_top))
print("BatchNorm folded:", "none found" if first_bn is None else type(first_bn).__name__,
      "| eight strongest, folded:", strongest, "| by raw norm:", raw_top,
      f"| {top_shared} in both")
lesson.record("top_shared", top_shared)
_ = lesson.expect(top_shared < len(strongest), "folding the BatchNorm changes which eight "
                  "filters are the strongest", top_shared)
x_explore = ctx.image("chelsea")
explore.channels_explorer(ctx.model, x_explore, ctx.to_display(x_explore),
                          [ctx.layers["middle"], ctx.layers["last_spatial"]],
                          first_conv=ctx.layers["first_conv"], filters=strongest)

# %% [markdown]
# The decomposition shows *how* a filter builds its response. The rows are chosen by
# computation, among the {{ n_active }} of the {{ n_filters }} filters whose response is at
# least the median (ranked by the raw response, before the BatchNorm). In the top row (filter
# {{ cancel_filter }}, the one among them whose maps cancel most)
# the colour maps have opposite signs over the same regions: the magnitude of their sum is
# only {{ cancel_ratio }} of the summed magnitudes, so the feature map keeps what differs
# between the colours. In the middle row (filter {{ add_filter }}, the one whose maps cancel
# least) the ratio is {{ add_ratio }}: little cancels. The ratio does not say how the response
# is shared among the colours: here the {{ add_main }} map holds {{ add_main_share }} of the
# summed mean magnitudes, the other two the rest. A faint map is a channel that
# contributes little to this filter on this photo.
#
# The bottom row is the filter whose *kernels* look most colour-opponent: its {{ opp_pair }}
# kernels point in nearly opposite directions (cosine {{ opp_cosine }}). {{ opp_sign_note }}
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
                 "to [C_out, C_in], for C_in = 3 and C_out = 4.", model="none (schematic)")

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
vgg_rebuild_err = float((summed - reference).abs().max())
print(f"max |sum of maps + bias - conv(x)|     = {vgg_rebuild_err:.2e}")
lesson.record("vgg_rebuild_err", vgg_rebuild_err, ".1e")
_ = lesson.expect(0 < max(first_rebuild_err, vgg_rebuild_err) < 1e-4, "the sum of the maps "
                  "reproduces the layer up to float rounding, not exactly",
                  (first_rebuild_err, vgg_rebuild_err))
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
# ## Swapping every convolution of a network
#
# `convlens.convert_convs(model)` returns a copy of the model in which every `nn.Conv2d` is a
# `convlens.KernelMapConv2d` holding the same weights; the original model is not touched. By default the
# copy computes exactly what the original does and stores nothing extra, so it can be used
# (and trained) like the original. Below we check the swap on the pretrained course model and
# on the AlexNet and VGG16 architectures (their pretrained weights aren't available offline
# here): that every convolution was replaced and that the logits are unchanged. That the
# logits agree to the last bit says only that the swap is harmless (the count says it is complete): a
# `KernelMapConv2d` runs the ordinary convolution, so they could not differ. What tests the
# decomposition is the maps themselves: on the course model we switch on `keep_maps` in every
# converted layer, for {{ check_filters }} filters of each, and compare the sum of each
# filter's maps plus its bias with the layer's output.

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
    lesson.expect(kinds == count_convs(net) and bool(difference == 0),
                  f"every convolution of {name} is replaced and the logits agree to the last bit",
                  float(difference))
    if net is model:
        converted_course = converted

# the decomposition itself, in every layer of the course model: a few filters per layer
layer_names = [n for n, m in converted_course.named_modules()
               if isinstance(m, convlens.KernelMapConv2d)]
per_layer = 4
for n in layer_names:
    layer_ = converted_course.get_submodule(n)
    layer_.keep_maps = True
    layer_.map_channels = torch.linspace(0, layer_.out_channels - 1, per_layer).long().tolist()
with torch.no_grad(), capture(converted_course, layer_names) as outputs:
    converted_course(x)
worst = 0.0  # the largest |sum of maps + bias - output|, relative to the layer's largest output
for n in layer_names:
    layer_ = converted_course.get_submodule(n)
    chosen = layer_.map_channels
    kept_bias = (layer_.bias.detach()[chosen] if layer_.bias is not None
                 else torch.zeros(len(chosen), device=x.device))
    out = outputs[n][-1][:, chosen]
    gap = (layer_.last_kernel_maps.sum(dim=2) + kept_bias[None, :, None, None] - out).abs().max()
    worst = max(worst, float(gap / out.abs().max().clamp(min=1e-12)))
    layer_.keep_maps, layer_.last_kernel_maps = False, None
print(f"{ctx.name}: in each of its {len(layer_names)} convolutions, {per_layer} filters: largest "
      f"|sum of maps + bias - output| = {worst:.1e} of that layer's largest output")
lesson.record("check_filters", per_layer)
lesson.record("check_layers", len(layer_names))
lesson.record("check_depthwise", sum(
    converted_course.get_submodule(n).groups == converted_course.get_submodule(n).in_channels > 1
    for n in layer_names))
lesson.record("check_worst", worst, ".0e")
_ = lesson.expect(worst < 1e-5, "for the filters checked in every convolution of the course "
                  "model, the sum of the maps plus the bias is the layer's output, up to float "
                  "rounding", worst)

# %% [markdown]
# For the {{ check_filters }} filters checked in each of the {{ check_layers }} convolutions of
# the course model, the sum of the maps plus the bias matches the layer's output to within
# {{ check_worst }} of the layer's largest value, float rounding ({{ check_depthwise }} of
# those convolutions are depthwise, where each filter has a single map and the check is
# trivial). `KernelMapConv2d` runs the ordinary convolution and, only when asked, computes the
# maps on the side; that is why the logits agree to the last bit. To look at one layer's maps inside
# the converted model, switch it on: `keep_maps=True` stores the maps of its last input in
# `last_kernel_maps`, and `map_channels` keeps only a few filters.
#
# ## The forum's case: a deeper convolution over many channels
#
# The question was about a pretrained network's deeper layers, where a $3\times3$ filter reads
# dozens or hundreds of channels and the sum hides what each of them contributes. We take the
# first such convolution of the course model (`groups == 1`, a spatial kernel, more than three
# input channels), capture its input on the photo, and open it up with `convlens.kernel_maps`.
# {{ deep_case }}

# %%
with torch.no_grad(), record_outputs(model) as calls:
    model(x)
called = [n for n, _ in calls]
convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
full = next(((n, m) for n, m in convs
             if m.groups == 1 and max(m.kernel_size) > 1 and m.in_channels > 3), None)
if full is not None:
    deep_name, deep_conv = full
    spatial_name, spatial = deep_name, deep_conv
    lesson.record("deep_case", f"Here that is `{deep_name}`, a "
                  f"{deep_conv.kernel_size[0]}×{deep_conv.kernel_size[1]} convolution over "
                  f"{deep_conv.in_channels} channels.")
else:  # a depthwise-separable network: the pair depthwise k×k -> pointwise 1×1 plays that role
    spatial_name, spatial = next((n, m) for n, m in convs
                                 if m.groups == m.in_channels > 3 and max(m.kernel_size) > 1)
    deep_name, deep_conv = next(
        (n, m) for n, m in convs[[n for n, _ in convs].index(spatial_name) + 1:]
        if m.groups == 1 and m.in_channels == spatial.out_channels)
    lesson.record("deep_case", "This network has none: after its stem, every spatial "
                  "convolution is depthwise (one kernel per channel). Its version of a "
                  f"{spatial.kernel_size[0]}×{spatial.kernel_size[1]} convolution over many "
                  f"channels is the depthwise-separable pair `{spatial_name}` (one "
                  f"{spatial.kernel_size[0]}×{spatial.kernel_size[1]} kernel $d_c$ per channel, "
                  "then a per-channel batch norm and activation $\\phi_c$) followed by "
                  f"`{deep_name}` (a 1×1 convolution that mixes the {deep_conv.in_channels} "
                  "channels). Filter $o$ of the pair still sums one term per input channel, "
                  "$m_{o,c} = p_{o,c}\\,\\phi_c(d_c \\star x_c)$, and each term depends on "
                  "channel $c$ alone, through its own spatial kernel: the kernel maps of "
                  f"`{deep_name}` are exactly these terms.")
target_out = convlens.feature_maps(model, x, deep_name)  # the layer's output, as recorded
deep_input = None  # the output of the module that feeds the layer, checked by recomputing
for _, out in reversed(calls[:called.index(deep_name)]):
    if (isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[1] == deep_conv.in_channels
            and out.shape[0] == x.shape[0]):
        with torch.no_grad():
            again = deep_conv(out)
        if again.shape == target_out.shape and torch.allclose(again, target_out, atol=1e-4,
                                                              rtol=1e-4):
            deep_input = out.detach().clone()
            break
_ = lesson.expect(deep_input is not None, "the input of the layer is found among the recorded outputs")

# %%
if deep_input is None:
    print(f"the input of {deep_name} was not found among the recorded outputs: no figure")
else:
    o = int(target_out[0].abs().mean(dim=(1, 2)).argmax())  # the filter with the strongest output
    with torch.no_grad():
        deep_maps = convlens.kernel_maps(deep_conv, deep_input, out_channels=[o])[0, 0]  # [C_in, h, w]
    deep_bias = deep_conv.bias.detach()[o] if deep_conv.bias is not None else 0.0
    rebuilt_error = float((deep_maps.sum(dim=0) + deep_bias - target_out[0, o]).abs().max())
    # the same maps from the converted model, switched on for this one filter
    converted = convlens.convert_convs(model)
    switched = converted.get_submodule(deep_name)
    with torch.no_grad():
        switched.keep_maps, switched.map_channels = True, [o]
        converted(x)
        kept = switched.last_kernel_maps  # [1, 1, C_in, h, w]
        switched.keep_maps = False
    keep_gap = float((kept[0, 0] - deep_maps).abs().max())
    lesson.expect(keep_gap == 0, "KernelMapConv2d(keep_maps) gives the same maps", keep_gap)
    share = deep_maps.abs().mean(dim=(1, 2))
    order = share.argsort(descending=True)
    top = 8
    print(f"{deep_name}: weight {tuple(deep_conv.weight.shape)}, kernel maps of filter {o}: "
          f"{tuple(deep_maps.shape)}; max |sum of maps + bias - layer output| = "
          f"{rebuilt_error:.2e}; max |kernel_maps - KernelMapConv2d(keep_maps)| = "
          f"{keep_gap:.2e}")
    top_share = float(share[order[:top]].sum() / share.sum())
    print(f"filter {o}: the {top} input channels with the largest mean |kernel map| hold "
          f"{top_share:.0%} of the total, of {deep_conv.in_channels} channels")
    lesson.record("deep_filter", o)
    lesson.record("deep_layer", deep_name)
    lesson.record("deep_top_share", top_share, ".0%")
    lesson.record("deep_channels", deep_conv.in_channels)
    lesson.expect(rebuilt_error < 1e-3 * float(target_out.abs().max()),
                  "the sum of the maps plus the bias is the layer's output", rebuilt_error)
    lesson.expect(top_share > 0.5, "a handful of input channels carry most of the filter's "
                  "response", top_share)
    # how much of each large map is a constant offset: its spread over the photo against its mean
    flat = [float(deep_maps[int(c)].std() / deep_maps[int(c)].mean().abs().clamp(min=1e-12))
            for c in order[:2]]
    print("the two largest maps, channels", [int(c) for c in order[:2]], ": std / |mean| =",
          [round(v, 2) for v in flat])
    lesson.record("flat_channels", " and ".join(str(int(c)) for c in order[:2]))
    lesson.record("flat_spread", " and ".join(f"{v:.0%}" for v in flat))
    lesson.expect(max(flat) < 0.5, "the two largest maps are mostly a constant offset", max(flat))

    if full is not None:
        kernel_of = [deep_conv.weight.detach()[o, int(c)] for c in order[:top]]
        kernel_label = "w_{o,c}"
    else:
        kernel_of = [spatial.weight.detach()[int(c), 0] * deep_conv.weight.detach()[o, int(c)].sum()
                     for c in order[:top]]
        kernel_label = "p_{o,c} d_c"  # the depthwise kernel, signed by the mixing weight
    # where the drawn kernel's centre and the map below it have opposite signs
    centre_sign = [float(kern[kern.shape[0] // 2, kern.shape[1] // 2]) for kern in kernel_of]
    map_sign = [float(deep_maps[int(c)].mean()) for c in order[:top]]
    flipped = [int(c) for c, a, b in zip(order[:top], centre_sign, map_sign) if a * b < 0]
    print(f"of the {top} drawn, channels whose kernel centre and mean map have opposite signs:",
          flipped)
    lesson.record("flipped_maps", ", ".join(map(str, flipped)) if flipped else "none")
    lesson.record("n_flipped_maps", len(flipped))
    lesson.expect(len(flipped) > 0, "some of the drawn kernels have a centre of the opposite "
                  "sign to their map", flipped)
    if full is not None:
        lesson.record("kernel_caveat", "A map is the kernel correlated with the whole input "
                      "channel, so its sign and offset depend on that channel's values (the output "
                      "of the previous layer's normalisation and activation) as much as on the "
                      "kernel")
    else:
        mixing = deep_conv.weight.detach()[o, :, 0, 0]  # p_{o,c}
        against = int((deep_maps * mixing[:, None, None] < 0).sum())
        print(f"map values of the opposite sign to their mixing weight: {against}")
        lesson.record("kernel_caveat", "Between the depthwise kernel and the $1\\times1$ mixing "
                      "sit a BatchNorm, which rescales, shifts and can flip the kernel's response, "
                      "and an activation, here a ReLU6, whose output is never negative, so a map's "
                      "sign is that of its mixing weight, whatever the kernel looks like")
        lesson.expect(against == 0, "every map has the sign of its mixing weight", against)
    fig = plt.figure(figsize=(11, 6.4))
    grid = fig.add_gridspec(3, top + 1, height_ratios=[1.0, 0.9, 0.9], hspace=0.5)
    ax = fig.add_subplot(grid[0, :])
    ax.bar(range(len(share)), share[order].cpu(), color="tab:blue")
    ax.set(xlabel=f"input channel (sorted; the {top} drawn below are labelled)", ylabel="mean |kernel map|",
           title=f"{deep_name}, filter {o}: contribution of each of its "
                 f"{deep_conv.in_channels} input channels")
    ax.set_xticks(range(top), [str(int(c)) for c in order[:top]], fontsize=8)
    limit = float(max(p.abs().max() for p in kernel_of))
    map_limit = float(deep_maps[order[:top]].abs().max())  # one scale for the maps
    for col in range(top + 1):
        if col < top:
            ax = fig.add_subplot(grid[1, col])
            ax.imshow(kernel_of[col].cpu(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"c = {int(order[col])}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"${kernel_label}$", fontsize=8)
        ax = fig.add_subplot(grid[2, col])
        panel = deep_maps[int(order[col])] if col < top else deep_maps.sum(dim=0) + deep_bias
        scale = map_limit if col < top else float(panel.abs().max())
        ax.imshow(panel.cpu(), cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel("$m_{o,c}$", fontsize=8)
        if col == top:
            ax.set_title("sum + bias\n(own scale)", fontsize=8)
    lesson.show(fig, f"Kernel maps of filter {o} of {deep_name} on the cat photo: the share of each "
                     f"input channel, the {top} largest maps (one signed scale) under the "
                     + ("kernel that made each" if full is not None else
                        "depthwise kernel of each channel times its mixing weight")
                     + " (one signed scale), and the sum over all of them plus the bias.")

# %% [markdown]
# Filter {{ deep_filter }} of `{{ deep_layer }}` reads {{ deep_channels }} channels, but its
# eight largest kernel maps hold {{ deep_top_share }} of its total response (mean $|m_{o,c}|$):
# the decomposition tells which input channels a filter draws on, and with which sign, which
# the summed feature map does not show. The two largest maps (channels {{ flat_channels }})
# carry a large constant part: their standard deviation over the photo is {{ flat_spread }} of
# their mean. Nor is the kernel drawn above a map simply the pattern its channel
# was matched against. {{ kernel_caveat }}: of the eight drawn, channels {{ flipped_maps }}
# have a kernel whose centre has the opposite sign of their map. The same maps come out of `convert_convs` with `keep_maps` switched on for
# that one layer and filter (the printed difference is zero).

# %% [markdown]
# ## The memory cost
#
# The kernel maps of one layer are $C_\text{in}$ times bigger than its output: one map per
# (filter, input channel) pair. For VGG16 at $224\times224$ in float32, the second convolution
# alone produces $64\times64$ maps of $224\times224$, {{ vgg_second_maps }} per image, against
# {{ vgg_second_output }} for its output; the whole network, {{ vgg_total }}. The table and chart below compute it layer by layer.

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
lesson.record("vgg_second_maps", sizes[1] / 2**20, "{:.0f} MiB")
lesson.record("vgg_second_output", outputs[1] / 2**20, "{:.0f} MiB")
lesson.record("vgg_total", sum(sizes) / 2**30, "{:.1f} GiB")

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
                 "of each VGG16 convolution, per 224×224 image, float32.",
            model="VGG16 (architecture only)")

# %% [markdown]
# How to keep it affordable:
#
# - **select filters**: `convlens.kernel_maps(conv, x, out_channels=[...])` computes only the maps of
#   the filters you will look at ($C_\text{in}$ maps each);
# - **chunk**: `kernel_maps` builds the grouped weight for `chunk` filters at a time (by design,
#   to bound the temporaries when you ask for all of them; this page does not measure it);
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
# parameter still has `requires_grad=True`; whether the network built from it trains like the
# original is a separate question, answered by training it below.

# %%
fresh = nn.Conv2d(3, 8, 3)
try:
    fresh.weight.copy_(torch.zeros_like(fresh.weight))
except RuntimeError as error:
    print("copy_ without no_grad ->", str(error).split("\n")[0])
with torch.no_grad():
    fresh.weight.copy_(torch.zeros_like(fresh.weight))
print("copy_ under no_grad    -> ok; requires_grad is still", fresh.weight.requires_grad)

# %% [markdown]
# Does a network built this way still train like the original? For `convert_convs` the answer
# is yes by construction: `KernelMapConv2d` *is* the ordinary convolution, with the maps
# computed on the side. The forum's network is different: there the forward pass *is* the
# grouped convolution, followed by the permute and the sum, and the trainable parameter is the
# grouped weight $W^\text{grouped}$ (and a bias added after the sum). Below, that layer as a
# module, a small network with biases built twice (plain convolutions, and the same weights
# in grouped layers), and both trained side by side with the same optimiser on the same
# batches. The gradient of the loss with respect to $W^\text{grouped}$ is the permuted
# gradient with respect to $w$, and SGD updates each number on its own, so the two networks
# should stay the same function step after step, up to float rounding.

# %%
class GroupedPermuteSum(nn.Module):
    """The forum's layer: grouped conv (groups = C_in) -> view/permute -> sum over c -> + bias."""

    def __init__(self, conv):
        super().__init__()
        self.c_in, self.c_out = conv.in_channels, conv.out_channels
        self.grouped = nn.Conv2d(self.c_in, self.c_in * self.c_out, conv.kernel_size,
                                 stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                                 groups=self.c_in, bias=False)
        with torch.no_grad():  # copying pretrained weights is not part of the computation
            self.grouped.weight.copy_(conv.weight.permute(1, 0, 2, 3).reshape(
                self.c_in * self.c_out, 1, *conv.kernel_size))
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None

    def forward(self, x):
        m = self.grouped(x)  # [N, C_in * C_out, H, W], order [c, o]
        n, _, h, w = m.shape
        maps = m.view(n, self.c_in, self.c_out, h, w).permute(0, 2, 1, 3, 4)  # [N, C_out, C_in, ...]
        y = maps.sum(dim=2)
        return y if self.bias is None else y + self.bias[:, None, None]  # the bias once

    def plain_weight(self):
        """The grouped weight read back as an ordinary [C_out, C_in, k, k] weight."""
        k = self.grouped.kernel_size
        return self.grouped.weight.view(self.c_in, self.c_out, *k).permute(1, 0, 2, 3)


torch.manual_seed(ctx.seed)
plain = nn.Sequential(
    nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
grouped_net = nn.Sequential(*[GroupedPermuteSum(m) if isinstance(m, nn.Conv2d) else copy.deepcopy(m)
                              for m in plain])
optimisers = [torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
              for net in (plain, grouped_net)]
initial = [m.weight.detach().clone() for m in plain if isinstance(m, nn.Conv2d)]
batches = torch.Generator().manual_seed(ctx.seed)
# a toy task: 10 classes, each a colour, plus noise; 64 images in 4 batches, each seen 3 times
targets = torch.randint(0, 10, (64,), generator=batches)
class_colours = torch.randn(10, 3, 1, 1, generator=batches)
data = class_colours[targets] + 0.5 * torch.randn(64, 3, 32, 32, generator=batches)
losses = {"plain": [], "grouped": []}
n_batches = 4  # step s trains on batch s % n_batches
for step in range(12):
    batch = slice(16 * (step % n_batches), 16 * (step % n_batches + 1))
    images, labels = data[batch], targets[batch]
    for tag, net, optimiser in zip(losses, (plain, grouped_net), optimisers):
        loss = F.cross_entropy(net(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses[tag].append(loss.item())
loss_gap = max(abs(a - b) for a, b in zip(losses["plain"], losses["grouped"]))
weight_gap = max(float((g.plain_weight() - p.weight).detach().abs().max())
                 for p, g in zip(plain, grouped_net) if isinstance(p, nn.Conv2d))
bias_gap = max(float((g.bias - p.bias).detach().abs().max())
               for p, g in zip(plain, grouped_net) if isinstance(p, nn.Conv2d))
moved = max(float((p.weight - w0).detach().abs().max()) for p, w0 in zip(
    [m for m in plain if isinstance(m, nn.Conv2d)], initial))
print("step  loss (plain convs)  loss (grouped + permute + sum)")
for step, (a, b) in enumerate(zip(losses["plain"], losses["grouped"])):
    print(f"{step:4d}  {a:18.6f}  {b:18.6f}")
print(f"max |loss difference| over the steps: {loss_gap:.2e}")
print(f"after training: max |weight difference| {weight_gap:.2e}, max |bias difference| "
      f"{bias_gap:.2e}; requires_grad of the grouped weight: "
      f"{grouped_net[0].grouped.weight.requires_grad}")
lesson.record("train_steps", len(losses["plain"]))
lesson.record("loss_gap", loss_gap, ".1e")
lesson.record("weight_gap", max(weight_gap, bias_gap), ".1e")
visits = {b: [losses["plain"][s] for s in range(b, len(losses["plain"]), n_batches)]
          for b in (0, n_batches - 1)}
print("loss on the same batch at its first and last visit:",
      ", ".join(f"batch {b}: {v[0]:.3f} -> {v[-1]:.3f}" for b, v in visits.items()))
lesson.record("n_batches", n_batches)
lesson.record("n_visits", len(visits[0]))
lesson.record("first_batch_start", visits[0][0], ".3f")
lesson.record("first_batch_end", visits[0][-1], ".3f")
lesson.record("last_batch_start", visits[n_batches - 1][0], ".3f")
lesson.record("last_batch_end", visits[n_batches - 1][-1], ".3f")
lesson.expect(loss_gap < 1e-4 and max(weight_gap, bias_gap) < 1e-4,
              "the grouped network trains like the plain one, up to float rounding",
              max(loss_gap, weight_gap, bias_gap))
print(f"the largest change of a conv weight during training: {moved:.2e}")
lesson.record("weight_moved", moved, ".1e")
lesson.expect(all(v[-1] < v[0] for v in visits.values()), "the loss on the first and on "
              "the last batch went down between their first and last visits", visits)
_ = lesson.expect(moved > 100 * max(weight_gap, bias_gap), "training moved the weights far more "
                  "than the two networks differ", moved)

# %% [markdown]
# Over {{ train_steps }} steps on a toy task (ten classes, each a colour plus noise; each of the
# {{ n_batches }} batches seen {{ n_visits }} times), the loss on the first batch went from
# {{ first_batch_start }} at its first visit to {{ first_batch_end }} at its last, and on the
# last batch from {{ last_batch_start }} to {{ last_batch_end }}, identically in both networks
# up to float rounding: the largest difference between their losses is {{ loss_gap }}, and after training
# their weights and biases differ by at most {{ weight_gap }}, while training changed single
# weights by up to {{ weight_moved }}. The difference is float rounding (the grouped layer sums
# the same products in a different order). The grouped network is trainable, and trains like
# the original. It is not free: every step materialises all $C_\text{in}\times C_\text{out}$
# maps, the memory cost priced above.
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
# <p>All kernel maps of a layer are $C_\text{in}$ times its output; of a whole VGG16, {{ vgg_total }}
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
