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
# # Grad-CAM
#
# **Summary.** Class-specific heat maps from the last convolutional layer, and their combination with guided backprop.
#
# **The question.** "The photo holds a cat *and* a cup of coffee. When the network says
# *tabby*, which part of the picture is it using, and does that region change when I ask
# about *espresso* instead?"
#
# The input-gradient maps of the [saliency lesson](06-saliency-and-smoothgrad.ipynb) answer
# at the resolution of pixels, and [guided back-propagation](07-deconvnet-and-guided-backprop.ipynb)
# sharpens them, but neither is reliably *class-discriminative*: the pictures for two classes
# often look alike. Grad-CAM (Selvaraju et al. 2017) looks somewhere else. The last
# convolutional layers of a classifier hold maps $A^k$ that are still spatial (7×7 for a
# 224-pixel input here) but already semantic: channel $k$ fires where some part of some
# object is. The class score is computed from those maps by the rest of the network, so the
# gradient $\partial y^c / \partial A^k$ says how much the score of class $c$ cares about
# channel $k$. Averaging that gradient over the positions gives one weight per channel;
# the weighted sum of the maps, with negative evidence cut off, is a coarse map of where the
# evidence *for class c* lies.
#
# With $A^k \in \mathbb R^{h \times w}$ the $k$-th channel of the chosen layer and $y^c$ the
# logit of class $c$ (before the softmax):
#
# $$ \alpha_k^c = \frac{1}{hw}\sum_{i=1}^{h}\sum_{j=1}^{w} \frac{\partial y^c}{\partial A^k_{ij}},
#    \qquad L^c = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big). $$
#
# $L^c$ has the layer's resolution; it is upsampled (bilinearly) to the input size to be laid
# over the photo. Paper: Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks
# via Gradient-based Localization* ([arXiv:1610.02391](https://arxiv.org/abs/1610.02391)),
# which generalises the CAM of Zhou et al. 2016
# ([arXiv:1512.04150](https://arxiv.org/abs/1512.04150)) to any architecture.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import convlens
from convlens import lesson, plot
from convlens._hooks import capture

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device, "| Grad-CAM layer:", ctx.layers["last_conv"])

# The two-object photo, resized whole (no centre crop, which would cut off both objects).
x = ctx.image("cat_and_coffee", size=(224, 448))
print("top classes of the composite:")
for label, p in ctx.top_classes(x, k=5):
    print(f"  {p:6.1%}  {label}")

with torch.no_grad():
    logits = model(x)[0]
cat_labels = ["tabby", "tiger cat", "Egyptian cat"]
cat = max((ctx.class_index(label) for label in cat_labels), key=lambda c: logits[c].item())
coffee = ctx.class_index("espresso")
print(f"explaining {ctx.labels[cat]!r} (class {cat}) and {ctx.labels[coffee]!r} (class {coffee})")

# %% [markdown]
# ## Two classes, two maps
#
# `convlens.gradcam(model, x, target, layer)` returns the raw map, upsampled to the input
# size, shape `[N, 1, H, W]`. Targets are per example, so one call explains both classes: the
# batch holds the same photo twice, and example $n$ is explained for `target[n]`.

# %%
layer = ctx.layers["last_conv"]
pair = x.repeat(2, 1, 1, 1)
cams = convlens.gradcam(model, pair, torch.tensor([cat, coffee]), layer)  # [2, 1, 224, 448]
print("map shape:", tuple(cams.shape))

# Where does each map put its mass? The cat is the left half, the cup the right half.
shares = []
for name, cam in zip([ctx.labels[cat], ctx.labels[coffee]], cams):
    left = (cam[..., :224].sum() / cam.sum()).item()
    shares.append(left)
    print(f"{name:>12}: {left:5.1%} of the map on the cat's half, {1 - left:5.1%} on the cup's half")
lesson.record("cat_share", shares[0], ".0%")
lesson.record("cup_share", 1 - shares[1], ".0%")
lesson.expect(shares[0] > 0.5 and shares[1] < 0.5,
              "the two maps land on different objects of the same input",
              f"cat map {shares[0]:.0%} on the cat's half, espresso map {shares[1]:.0%}")

photo = ctx.to_display(x)
fig, axes = plt.subplots(1, 3, figsize=(10, 2.2))
axes[0].imshow(photo)
axes[0].set_title("input", fontsize=9)
axes[0].set_axis_off()
for ax, cam, c in zip(axes[1:], cams, [cat, coffee]):
    plot.overlay(ax, photo, (cam[0] / cam.max()).cpu(), alpha=0.5,
                 title=f"Grad-CAM for {ctx.labels[c]!r}")
lesson.show(fig, f"Grad-CAM at {layer} for two classes of the same input; each map is divided "
                 "by its own maximum for display.")

# %% [markdown]
# The two maps land on different objects of the same input ({{ cat_share }} of the cat map
# on the cat's half, {{ cup_share }} of the espresso map on the cup's half): the weights $\alpha^c$ differ by
# class, so the same feature maps are mixed differently. That is what "class-discriminative"
# means, and it is what the gradient maps of the previous lessons do poorly.
#
# ## The whole method in six lines
#
# Nothing in Grad-CAM needs a framework. Record the layer's output during the forward pass,
# differentiate one logit with respect to it, average, weight, sum, ReLU. `capture` is the
# library's one hook helper (it records the layer's output and hands the rest of the network
# a copy, so an in-place ReLU after the layer cannot overwrite what we recorded, and it
# removes its hook on exit).

# %%
with capture(model, layer) as recorded:
    score = model(x)[0, cat]
A = recorded[layer][0]                                 # [1, K, h, w], part of the graph
(dA,) = torch.autograd.grad(score, A)                  # ∂y^c / ∂A
alpha = dA.mean(dim=(2, 3), keepdim=True)              # one weight per channel
by_hand = torch.relu((alpha * A).sum(dim=1, keepdim=True))

library = convlens.gradcam(model, x, cat, layer, upsample=False)
print("layer-resolution map:", tuple(by_hand.shape),
      "| largest difference from convlens.gradcam:", (by_hand - library).abs().max().item())

# %% [markdown]
# ## Raw values, and the map before upsampling
#
# The map is computed at the layer's resolution, here 16 times coarser than the input along
# each side. Upsampling only interpolates; it adds no detail. The values are raw logit units
# (a sum of activations times gradients), so maps of different classes of the same image can be
# compared directly. We normalise only for display, and the colour bars below show raw values.

# %%
coarse = convlens.gradcam(model, pair, torch.tensor([cat, coffee]), layer, upsample=False)
top_value = coarse.max().item()
fig, axes = plt.subplots(1, 3, figsize=(10, 2.3), gridspec_kw={"width_ratios": [1, 1, 1]})
for ax, cam, c in zip(axes[:2], coarse, [cat, coffee]):
    im = ax.imshow(cam[0].detach().cpu(), cmap="magma", vmin=0, vmax=top_value)
    ax.set_title(f"{ctx.labels[c]!r}, raw, {cam.shape[1]}×{cam.shape[2]}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes[:2], fraction=0.025, label="raw Grad-CAM")
axes[2].imshow(cams[0, 0].detach().cpu(), cmap="magma", vmin=0, vmax=top_value)
axes[2].set_title(f"{ctx.labels[cat]!r}, bilinear to 224×448", fontsize=9)
axes[2].set_xticks([])
axes[2].set_yticks([])
lesson.show(fig, f"The maps at {layer}'s own resolution with raw values on one shared scale "
                 "(left, middle), and the cat map upsampled to the input (right).")

# %% [markdown]
# ## Which layer?
#
# Grad-CAM works at any layer with a spatial output, but what it shows changes with depth.
# Early layers have fine maps whose channels respond to edges and textures everywhere; their
# gradients are weakly tied to the class, so the map is fine-grained and barely
# class-specific. The last convolutional block is coarse but semantic. Selvaraju et al. use
# the last convolutional layer for that reason. We compute the cat map at four depths (the
# stages of each registry model, listed below; another model falls back to two roles).

# %%
STAGES = {
    "efficientnet_lite0": ["blocks.2", "blocks.4", "blocks.5", "bn2"],
    "alexnet": ["features.4", "features.7", "features.9", "features.11"],
    "vgg16": ["features.15", "features.22", "features.25", "features.29"],
    "vgg19": ["features.17", "features.26", "features.31", "features.35"],
    "resnet18": ["layer1", "layer2", "layer3", "layer4"],
    "resnet50": ["layer1", "layer2", "layer3", "layer4"],
}
depths = STAGES.get(ctx.name, [ctx.layers["middle"], ctx.layers["last_conv"]])
fig, axes = plt.subplots(1, len(depths), figsize=(10, 1.9))
for ax, name in zip(axes, depths):
    size = tuple(convlens.gradcam(model, x, cat, name, upsample=False).shape[-2:])
    cam = convlens.gradcam(model, x, cat, name)[0, 0]
    plot.overlay(ax, photo, (cam / cam.max().clamp_min(1e-12)).cpu(), alpha=0.55,
                 title=f"{name} ({size[0]}×{size[1]})")
lesson.show(fig, f"Grad-CAM for {ctx.labels[cat]!r} at four depths of {ctx.name}; each map "
                 "divided by its own maximum.")

# %% [markdown]
# Any of the five most probable classes of each photo, at each of these depths:

# %%
from convlens import explore

x_explore = {name: ctx.image(name, size=(224, 448) if name == "cat_and_coffee" else None)
             for name in ("cat_and_coffee", "chelsea", "coffee")}
depths_explore = list(ctx.stages) or explore.stage_layers(
    ctx.model, x_explore["chelsea"], ctx.layers["middle"], ctx.layers["last_conv"])
explore.gradcam_explorer(ctx.model, {name: (xi, ctx.to_display(xi)) for name, xi in x_explore.items()},
                         depths_explore, ctx.labels, top=5)

# %% [markdown]
# ## Guided Grad-CAM
#
# Grad-CAM is coarse; guided back-propagation is sharp but barely class-specific. Their
# pointwise product (Selvaraju et al. call it Guided Grad-CAM) keeps the fine detail of the
# second only where the first says the class is: `convlens.guided_gradcam` returns a
# gradient-like tensor of the input's shape.

# %%
guided = convlens.guided_gradcam(model, pair, torch.tensor([cat, coffee]), layer)
fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
for ax, g, c in zip(axes, guided, [cat, coffee]):
    magnitude = plot.heatmap(g)  # max |value| over colour channels, divided by its maximum
    ax.imshow(magnitude, cmap="gray_r", vmin=0, vmax=np.percentile(magnitude, 99.5))
    ax.set_title(f"Guided Grad-CAM, {ctx.labels[c]!r}", fontsize=9)
    ax.set_axis_off()
lesson.show(fig, f"Guided Grad-CAM at {layer} for both classes: max |value| over colour "
                 "channels, dark = large, saturated at the 99.5th percentile.")

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: normalising hides an absent class</p>
# <p>Every map divided by its own maximum looks confident. Ask for a class that is not in the
# picture and the normalised map still glows somewhere. The raw maximum tells the truth: compare
# it with the present classes' below.</p></div>

# %%
absent = ctx.class_index("goldfish")
raw = convlens.gradcam(model, x.repeat(3, 1, 1, 1), torch.tensor([cat, coffee, absent]), layer,
                       upsample=False)
for c, cam in zip([cat, coffee, absent], raw):
    print(f"{ctx.labels[c]:>12}: raw maximum {cam.max().item():8.4f}")

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: an in-place ReLU right after the layer</p>
# <p>A hook that stores a conv's output keeps a reference, and the in-place ReLU that follows
# (torchvision's <code>ReLU(inplace=True)</code>) overwrites that very tensor: you silently get
# the post-ReLU map, and autograd may raise a version-counter error. Clone what you record, or
# hand the network a clone as <code>capture</code> does.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: the wrong layer</p>
# <p>After global pooling there is no space left: a 1×1 map upsampled is a constant. Choose the
# last layer that still has a spatial output (for this model <code>bn2</code>, which includes
# its ReLU6; for VGG, the last ReLU of <code>features</code>; for ResNet, <code>layer4</code>).
# Taking a conv's output before its activation also works but mixes in negative evidence
# that the activation would have removed.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: one target for a whole batch</p>
# <p>Summing the logits of a batch and back-propagating once is right only when each example
# uses its own target: <code>logits[range(N), targets].sum()</code>. Taking
# <code>logits[:, c]</code> for every example, or explaining only item 0, gives maps for the
# wrong classes without any error.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: upsampling in the wrong order</p>
# <p><code>F.interpolate</code> takes <code>size=(H, W)</code>; passing the image's
# <code>(width, height)</code>, as PIL reports it, transposes a non-square map. The composite
# here is 224×448 precisely so that such a mistake would show.</p></div>

# %% [markdown]
# ## Exercises
#
# 1. Explain the cat's *second* most likely class. Does the map move? Compute the correlation of
#    the two upsampled maps.
# 2. Replace the average of the gradients by their positive part before averaging (the idea of
#    Grad-CAM++, Chattopadhyay et al. 2018, in its simplest form). What changes on the
#    composite?
# 3. Make your own two-object image (`convlens.images.load("my.jpg")`) and find a pair of
#    classes for which Grad-CAM fails to separate the objects. What do the raw maxima say?
# 4. Remove the final ReLU from the six-line version. Where is the negative evidence for
#    "espresso" on the composite?
# 5. Run the lesson on another model (`nox -s site -- --model resnet18` where its weights are
#    available) and compare the maps at `layer4` with EfficientNet's at `bn2`.
