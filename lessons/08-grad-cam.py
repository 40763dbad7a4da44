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
# {{ cat_name }}, which part of the picture is it using, and does that region change when I ask
# about {{ cup_name }} instead?" (The two classes are computed below: the most probable cat
# class and the most probable coffee class of this picture.)
#
# The input-gradient maps of the [saliency lesson](06-saliency-and-smoothgrad.ipynb) answer
# at the resolution of pixels, and [guided back-propagation](07-deconvnet-and-guided-backprop.ipynb)
# sharpens them, but neither is built to be *class-discriminative*: Selvaraju et al. show
# guided back-propagation's pictures for two classes of one image looking alike. Grad-CAM
# (Selvaraju et al. 2017) looks somewhere else. The last
# convolutional layers of a classifier hold maps $A^k$ that are still spatial
# ({{ square_size }} for a 224-pixel input on {{ name }}) but already semantic: channel $k$ fires where some part of some
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
import torch
import torch.nn.functional as F
from torch import nn

import convlens
from convlens import plot
from convlens.hooks import capture
from convlens_course import lesson

ctx = lesson.setup()
model = ctx.model
layer = ctx.layers["last_spatial"]
print("model:", ctx.name, "| device:", ctx.device, "| Grad-CAM layer:", layer)
lesson.record("name", ctx.name)
lesson.record("layer", f"`{layer}`")
square = convlens.gradcam(model, ctx.image("chelsea"), 0, layer, upsample=False).shape[-2:]
lesson.record("square_size", f"{square[0]}×{square[1]}")


# The two-object photo, resized whole (no centre crop, which would cut off both objects).
x = ctx.image("cat_and_coffee", size=(224, 448))
print("top classes of the composite:")
for label, p in ctx.top_classes(x, k=5):
    print(f"  {p:6.1%}  {label}")

cat = ctx.most_probable(lesson.CAT_CLASSES, x)  # the most probable cat class, as in lessons 05 and 07
coffee = ctx.most_probable(lesson.COFFEE_CLASSES, x, exclude=(cat,))
print(f"explaining {ctx.labels[cat]!r} (class {cat}) and {ctx.labels[coffee]!r} (class {coffee})")
lesson.record("cat_name", f"*{ctx.labels[cat]}*")
cup_name = lesson.record("cup_name", f"*{ctx.labels[coffee]}*")

# %% [markdown]
# ## Two classes, two maps
#
# `convlens.gradcam(model, x, target, layer)` returns the raw map, upsampled to the input
# size, shape `[N, 1, H, W]`. Targets are per example, so one call explains both classes: the
# batch holds the same photo twice, and example $n$ is explained for `target[n]`.

# %%
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
              f"cat map {shares[0]:.0%} on the cat's half, coffee map {shares[1]:.0%}")

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
# on the cat's half, {{ cup_share }} of the {{ cup_name }} map on the cup's half): the weights $\alpha^c$ differ by
# class, so the same feature maps are mixed differently. That is what "class-discriminative"
# means.
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
before_relu = (alpha * A).sum(dim=1, keepdim=True)     # the raw map, signed
by_hand = torch.relu(before_relu)

library = convlens.gradcam(model, x, cat, layer, upsample=False)
difference = (by_hand - library).abs().max().item()
print("layer-resolution map:", tuple(by_hand.shape),
      "| largest difference from convlens.gradcam:", difference)
same_map = lesson.expect(difference <= 1e-5 * library.abs().max().item(),
                         "the six lines give convlens.gradcam's map", difference)

# %% [markdown]
# ## At the last layer, Grad-CAM is CAM
#
# Grad-CAM was introduced as a generalisation of the **class activation map** (CAM) of Zhou et
# al. 2016 ([arXiv:1512.04150](https://arxiv.org/abs/1512.04150)), which needs a specific
# head: global average pooling of the last feature maps, then one linear layer. That is
# exactly the head of EfficientNet-Lite0 (and of ResNet) after the layer we chose. Write the
# head out: with $h \times w$ positions, classifier weights $w^c_k$ and bias $b_c$,
#
# $$ y^c = b_c + \sum_k w^c_k \,\frac{1}{hw}\sum_{i,j} A^k_{ij}
#    \quad\Longrightarrow\quad \frac{\partial y^c}{\partial A^k_{ij}} = \frac{w^c_k}{hw}
#    \quad\Longrightarrow\quad \alpha^c_k = \frac{w^c_k}{hw}. $$
#
# The gradient is the same at every position, so averaging it changes nothing, and the
# Grad-CAM weights are the classifier's weights divided by the number of positions. The map
# before the ReLU, $M^c_{ij} = \sum_k \alpha^c_k A^k_{ij} = \frac{1}{hw}\sum_k w^c_k A^k_{ij}$,
# is Zhou et al.'s CAM up to the constant $1/hw$, and summing it over the positions gives back
# the logit without its bias:
#
# $$ \sum_{i,j} M^c_{ij} = \sum_k w^c_k\,\frac{1}{hw}\sum_{i,j}A^k_{ij} = y^c - b_c. $$
#
# So at this layer the raw map is an exact decomposition of the logit over the $h \times w$
# positions: each cell says how many logit units that position of the feature map
# contributes; its activations depend on far more of the picture than the patch it covers
# (see [receptive fields](02-receptive-fields.ipynb)). We
# check both identities on the maps just computed (on a model whose head is not global
# average pooling and one linear layer, such as AlexNet or VGG with their three linear
# layers, they fail, and the page says so).

# %%
head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]  # the classifier
bias = head.bias[cat].item() if head.bias is not None else 0.0
h, w = A.shape[-2:]
logit = score.item()
total = before_relu.sum().item()
print(f"logit y^c = {logit:.4f}, bias b_c = {bias:.4f}, y^c - b_c = {logit - bias:.4f}")
print(f"sum of the raw map before the ReLU ({h}×{w} cells) = {total:.4f}")
tolerance = 1e-4 * (abs(logit) + abs(bias) + 1)
lesson.record("logit", logit, ".3f")
lesson.record("bias", bias, ".3f")
lesson.record("raw_sum", total, ".3f")
lesson.record("logit_minus_bias", logit - bias, ".3f")
lesson.expect(abs(total - (logit - bias)) < tolerance,
              "the raw map sums to the logit minus the bias", total - (logit - bias))
if head.in_features == A.shape[1]:
    cam_weights = head.weight[cat].detach() / (h * w)
    gap = (alpha.flatten() - cam_weights).abs().max().item()
    print("largest |alpha_k - w_k / (hw)|:", gap)
    same_weights = gap <= 1e-5 * cam_weights.abs().max().item()
else:
    print(f"the classifier takes {head.in_features} inputs, the layer has {A.shape[1]} channels")
    same_weights = False
cam_is_gradcam = lesson.expect(
    same_weights, "the Grad-CAM weights are the classifier's weights divided by hw",
    head.in_features)

# %% [markdown]
# The logit of {{ cat_name }} is {{ logit }} and its bias {{ bias }}, so the logit minus the
# bias is {{ logit_minus_bias }}; the raw map sums to {{ raw_sum }}. Two consequences. Grad-CAM at this layer is no
# approximation: the gradient's only role is to read the classifier's weights. And the ReLU
# that Grad-CAM applies throws away the cells that count *against* the class, so the displayed
# map no longer sums to anything; keep the raw map when you want to account for the score.

# %% [markdown]
# ## Raw values, and the map before upsampling
#
# The map is computed at the layer's resolution, here {{ coarser }} times coarser than the
# input along each side. Upsampling only interpolates; it adds no detail. The values are in logit
# units (a sum of activations times gradients) and built from the same feature maps, so maps of
# different classes of one image can share a colour scale; but like logits they have no natural
# zero across classes (adding one vector to every row of the classifier changes every map and
# no probability), so read such comparisons together with the probabilities. We normalise only
# for display, and the colour bars below show raw values.

# %%
coarse = convlens.gradcam(model, pair, torch.tensor([cat, coffee]), layer, upsample=False)
lesson.record("coarser", x.shape[-2] / coarse.shape[-2], ".0f")
top_value = coarse.max().item()
fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.4), layout="constrained",
                         gridspec_kw={"width_ratios": [1, 1, 2]})
for ax, cam, c in zip(axes[:2], coarse, [cat, coffee]):
    im = ax.imshow(cam[0].detach().cpu(), cmap="magma", vmin=0, vmax=top_value)
    ax.set_title(f"{ctx.labels[c]!r}, raw, {cam.shape[1]}×{cam.shape[2]}", fontsize=9)
axes[2].imshow(cams[0, 0].detach().cpu(), cmap="magma", vmin=0, vmax=top_value)
axes[2].set_title(f"{ctx.labels[cat]!r}, bilinear to {x.shape[-2]}×{x.shape[-1]}", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, location="right", shrink=0.9, label="raw Grad-CAM (logit units)")
lesson.show(fig, f"The maps at {layer}'s own resolution with raw values on one shared scale "
                 "(left, middle), and the cat map upsampled to the input (right, same scale).")

# %% [markdown]
# ## Many classes, several photos
#
# One pair of classes is a thin test. Here are the five most probable classes of the
# composite, each with its own Grad-CAM map, and the share of each map on the cat's half
# (each map divided by its own maximum for display; the raw maximum is in the title).

# %%
def to_input(coarse_maps, like):
    """Bilinear upsampling to the input's size, exactly as convlens.gradcam does it."""
    return F.interpolate(coarse_maps, size=like.shape[-2:], mode="bilinear", align_corners=False)


top5 = [ctx.labels.index(label) for label, _ in ctx.top_classes(x, k=5)]
coarse5 = convlens.gradcam(model, x.repeat(len(top5), 1, 1, 1), torch.tensor(top5), layer,
                           upsample=False)
cams5 = to_input(coarse5, x)
fig, axes = plt.subplots(2, 3, figsize=(10, 3.6))
axes[0, 0].imshow(photo)
axes[0, 0].set_title("input", fontsize=9)
axes[0, 0].set_axis_off()
left_share = {}
for ax, c, cam, small in zip(axes.flat[1:], top5, cams5, coarse5):
    left_share[c] = (cam[..., : x.shape[-1] // 2].sum() / cam.sum().clamp_min(1e-12)).item()
    plot.overlay(ax, photo, (cam[0] / cam.max().clamp_min(1e-12)).cpu(), alpha=0.5,
                 title=f"{ctx.labels[c]!r}: max {small.max().item():.2g}, "
                       f"{left_share[c]:.0%} left")
lesson.show(fig, f"Grad-CAM at {layer} for the five most probable classes of the composite; "
                 "each map divided by its own maximum, its raw maximum (at the layer's "
                 "resolution) and its share on the left (cat) half in the title.")

cat_like = [c for c in top5 if ctx.labels[c] in lesson.CAT_CLASSES]
cup_like = [c for c in top5 if ctx.labels[c] in lesson.COFFEE_CLASSES]
for c in top5:
    kind = "cat" if c in cat_like else "coffee" if c in cup_like else "other"
    print(f"{ctx.labels[c]:>14} ({kind:6s}): {left_share[c]:5.1%} of the map on the cat's half")
lesson.record("n_cat_like", len(cat_like))
lesson.record("n_cup_like", len(cup_like))
lesson.expect(len(cat_like) > 0 and len(cup_like) > 0,
              "the top five classes include cat classes and coffee classes",
              f"{len(cat_like)} cat, {len(cup_like)} coffee")
sorted_halves = lesson.expect(
    all(left_share[c] > 0.5 for c in cat_like) and all(left_share[c] < 0.5 for c in cup_like),
    "every cat class of the top five lands on the cat's half, every coffee class on the cup's half",
    {ctx.labels[c]: round(v, 2) for c, v in left_share.items()})

# %% [markdown]
# The top five hold {{ n_cat_like }} cat classes and {{ n_cup_like }} coffee classes: every cat
# class puts most of its map on the cat's half, every coffee class on the cup's half.
#
# Other photos, each with its two most probable classes (the correlation of the two maps of
# each photo, computed on the maps at the layer's resolution, before upsampling, is printed
# above the figure):

# %%
others = ["astronaut", "rocket", "chelsea", "coffee"]
pair_corr = {}
fig, axes = plt.subplots(2, len(others), figsize=(2.5 * len(others), 5.0))
for col, name in enumerate(others):
    image_x = ctx.image(name)
    shown = ctx.to_display(image_x)
    two = [ctx.labels.index(label) for label, _ in ctx.top_classes(image_x, k=2)]
    coarse2 = convlens.gradcam(model, image_x.repeat(2, 1, 1, 1), torch.tensor(two), layer,
                               upsample=False)
    for row, (c, cam) in enumerate(zip(two, to_input(coarse2, image_x))):
        plot.overlay(axes[row, col], shown, (cam[0] / cam.max().clamp_min(1e-12)).cpu(),
                     alpha=0.5, title=f"{name}: {ctx.labels[c]!r}")
    if coarse2[0].max() > 0 and coarse2[1].max() > 0:  # correlated at the layer's resolution
        pair_corr[name] = plot.correlation(coarse2[0].cpu(), coarse2[1].cpu())
        print(f"{name:>10}: {ctx.labels[two[0]]!r} vs {ctx.labels[two[1]]!r}, correlation of the "
              f"maps {pair_corr[name]:.2f}")
lesson.show(fig, f"Grad-CAM at {layer} on four photos, for each photo's most probable class "
                 "(top row) and second most probable class (bottom row); each map divided by "
                 "its own maximum.")
lesson.record("pair_corrs", ", ".join(f"{k} {v:.2f}" for k, v in pair_corr.items()) or "none")

# the same measurement over every photo of the pool, at the layer's resolution, with a
# baseline: the class the model ranks in the middle of all its classes for that photo
def map_correlation(a, b):
    return plot.correlation(a.cpu(), b.cpu()) if a.max() > 0 and b.max() > 0 else float("nan")


pool_rows, pool_corr, pool_base = [], {}, {}
for pool_photo in convlens.images.photo_pool():
    image_x = convlens.images.prepare(pool_photo.image, ctx.preprocess).to(ctx.device)
    with torch.no_grad():
        ranking = model(image_x)[0].argsort(descending=True)
    three = [int(ranking[0]), int(ranking[1]), int(ranking[len(ranking) // 2])]
    coarse3 = convlens.gradcam(model, image_x.repeat(3, 1, 1, 1), torch.tensor(three), layer,
                               upsample=False)
    pool_corr[pool_photo.name] = map_correlation(coarse3[0], coarse3[1])
    pool_base[pool_photo.name] = map_correlation(coarse3[0], coarse3[2])
    pool_rows.append([pool_photo.name, ctx.labels[three[0]], ctx.labels[three[1]],
                      f"{pool_corr[pool_photo.name]:.2f}", ctx.labels[three[2]],
                      f"{pool_base[pool_photo.name]:.2f}"])
_ = plot.table(["photo", "most probable class", "second", "r (1st, 2nd)", "middle-ranked class",
                "r (1st, middle)"], pool_rows)
alike = sum(v > 0.7 for v in pool_corr.values())
base_values = torch.tensor(list(pool_base.values()))
lesson.record("n_pool", len(pool_corr))
lesson.record("n_alike", alike)
lesson.record("median_corr", float(torch.tensor(list(pool_corr.values())).nanmedian()), ".2f")
lesson.record("n_base", int((~base_values.isnan()).sum()))
lesson.record("median_base", float(base_values.nanmedian()), ".2f")
lesson.record("max_base", float(base_values[~base_values.isnan()].max()), ".2f")
# the pairs of the table that correlate at least as highly as chelsea's two classes
pool_pairs = {row[0]: (row[1], row[2]) for row in pool_rows}
chelsea_r = pool_corr.get("chelsea", float("nan"))
cat_pair = "chelsea" in pool_pairs and all(c in lesson.CAT_CLASSES for c in pool_pairs["chelsea"])
higher = sorted(((r, name) for name, r in pool_corr.items() if name != "chelsea" and r >= chelsea_r),
                reverse=True)
print(f"chelsea: {pool_pairs.get('chelsea')}, r {chelsea_r:.2f}; pairs at least as high: "
      + ", ".join(f"{name} {pool_pairs[name]} {r:.2f}" for r, name in higher))
lesson.record("chelsea_pair", " and ".join(f"*{c}*" for c in pool_pairs.get("chelsea", ())))
lesson.record("chelsea_r", chelsea_r, ".2f")
lesson.record("related_or_not", ", whether or not the two classes are related" if higher else "")
lesson.record("higher_note", (
    f", and {len(higher)} pairs of the table correlate at least as highly: "
    + "; ".join(f"*{pool_pairs[name][0]}* and *{pool_pairs[name][1]}* ({r:.2f})"
                for r, name in higher)) if higher else ", higher than any other pair of the table")
_ = lesson.expect(cat_pair, "chelsea's two most probable classes are two cat classes",
                  pool_pairs.get("chelsea"))
similar_pairs = lesson.expect(alike > len(pool_corr) / 2,
                              "on most photos of the pool the two classes' maps correlate "
                              "above 0.7", pool_corr)
_ = lesson.expect(float(base_values.nanmedian()) < float(torch.tensor(list(pool_corr.values()))
                                                         .nanmedian()) - 0.3,
                  "the middle-ranked class's map correlates with the top class's map much less, "
                  "on the median, than the second class's does", pool_base)
# where the two rocket maps peak: the rocket stands in the middle column of the photo
rocket_x = ctx.image("rocket")
rocket_two = [ctx.labels.index(label) for label, _ in ctx.top_classes(rocket_x, k=2)]
rocket_maps = convlens.gradcam(model, rocket_x.repeat(2, 1, 1, 1), torch.tensor(rocket_two),
                               layer, upsample=False)[:, 0]
middle = rocket_maps.shape[-1] // 2
column_profiles = [m.amax(dim=0) / m.max().clamp_min(1e-12) for m in rocket_maps]  # per column
high_columns = [[int(c) for c in torch.nonzero(p >= 0.9).flatten()] for p in column_profiles]
middle_share = [float(p[middle]) for p in column_profiles]
cell_width = rocket_x.shape[-1] / rocket_maps.shape[-1]
print(f"rocket: columns within 10% of each map's maximum {high_columns} of {rocket_maps.shape[-1]} "
      f"(counted from 0, each {cell_width:.0f} px wide); the middle column {middle} reaches "
      f"{[round(v, 2) for v in middle_share]} of each map's maximum")
lesson.record("rocket_columns", rocket_maps.shape[-1])
lesson.record("rocket_cell", cell_width, ".0f")


same = high_columns[0] == high_columns[1]
_ = lesson.record("rocket_high", (f"both maps are largest (within 10% of their maximum) in "
                                  f"column{'s' * (len(high_columns[0]) > 1)} {lesson.and_list(high_columns[0])}")
                  if same else ("the first class's map is largest (within 10% of its maximum) in "
                                f"columns {lesson.and_list(high_columns[0])}, the second's in "
                                f"{lesson.and_list(high_columns[1])}"))
_ = lesson.record("rocket_where",
                  f"the rocket stands in column {middle}, which reaches {min(middle_share):.0%} to "
                  f"{max(middle_share):.0%} of each map's maximum: both maps peak beside the "
                  "rocket, not on it (why, this page does not measure)"
                  if max(middle_share) < 0.9 else
                  f"the rocket stands in column {middle}: here the maps do peak on the object")

# %% [markdown]
# On the four photos above the two maps correlate at {{ pair_corrs }} (all correlations here
# are of the maps at the layer's resolution, before the bilinear upsampling, which smooths
# the maps and so changes their correlation). Over the {{ n_pool }} photos of the photo
# pool (every permissively licensed photo that ships with the course's packages, textures
# included; the References page of this site lists them), the maps of the two most probable
# classes correlate above 0.7 on {{ n_alike }} photos (median r {{ median_corr }}).
#
# What can such a number show? A map of {{ square_size }} cells has few places to be large,
# and every class's map is a weighted sum of the same feature maps $A^k$. A baseline shows
# what that alone can give: for the class the model ranks in the middle of all its classes,
# the correlation of its map with the top class's map has median {{ median_base }} over the
# {{ n_base }} photos where both maps are non-zero, and reaches {{ max_base }}. The two most
# probable classes correlate much more than that (median {{ median_corr }} against
# {{ median_base }}){{ related_or_not }}: chelsea's two cat classes, {{ chelsea_pair }},
# correlate at {{ chelsea_r }}{{ higher_note }}. The
# baseline is not a like-for-like control, though: a class ranked in the middle is one the
# model barely considers, and its map may be weaker and noisier for that reason alone, so
# part of the gap may come from that rather than from evidence the top two share. A high
# correlation says that the two maps are large in the same cells; it cannot say whether the
# two classes use the same features inside those cells. Whether the maps lie on the object
# is a separate question. On the rocket photo, {{ rocket_high }} of {{ rocket_columns }}
# (counted from 0; each column of the map covers {{ rocket_cell }} pixels of the photo);
# {{ rocket_where }}. Grad-CAM answers "where is the evidence for this
# class", not "what tells these two classes apart"; for that, explain the difference of the
# two logits.
#
# ## Which layer?
#
# Grad-CAM works at any layer with a spatial output, but what it shows changes with depth.
# The usual account is that maps become more class-specific with depth, the last
# convolutional layer being coarse but semantic; Selvaraju et al. use that layer for this
# reason. We measure how class-specific the map is on the composite, computing the cat map
# at a few depths of the model (`ctx.stages`: blocks chosen from early to late, ending with
# the Grad-CAM layer; two of them may share a resolution, as the sizes in the titles show),
# here {{ stages }}.

# %%
depths = list(ctx.stages) or [ctx.layers["middle"], layer]
lesson.record("stages", ", ".join(f"`{d}`" for d in depths))
columns = min(2, len(depths))  # the composite is twice as wide as high: two panels per row
rows = -(-len(depths) // columns)
fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 2.9 * rows), squeeze=False)
for ax in axes.flat[len(depths):]:
    ax.axis("off")
sizes = {}
for ax, name in zip(axes.flat, depths):
    size = sizes[name] = tuple(convlens.gradcam(model, x, cat, name, upsample=False).shape[-2:])
    cam = convlens.gradcam(model, x, cat, name)[0, 0]
    plot.overlay(ax, photo, (cam / cam.max().clamp_min(1e-12)).cpu(), alpha=0.55,
                 title=f"{name} ({size[0]}×{size[1]})")
lesson.show(fig, f"Grad-CAM for {ctx.labels[cat]!r} at {len(depths)} depths of {ctx.name}; "
                 "each map divided by its own maximum.")

# how class-specific is each depth? the cat map's share on the cat's half minus the coffee map's
separation = {}
for name in depths:
    both_maps = convlens.gradcam(model, pair, torch.tensor([cat, coffee]), name)
    halves = [(m[..., :x.shape[-1] // 2].sum() / m.sum().clamp_min(1e-12)).item() for m in both_maps]
    separation[name] = halves[0] - halves[1]
    print(f"{name:>12}: cat map {halves[0]:.0%} on the cat's half, coffee map {halves[1]:.0%}; "
          f"separation {separation[name]:+.2f}")
stats = convlens.saturation(model, x)
units = sum(st.units for st in stats.values())
lesson.record("separations", ", ".join(f"{separation[d]:+.2f} at `{d}` ({sizes[d][0]}×{sizes[d][1]})"
                                        for d in depths))
same_size = [d for d in depths[:-1] if sizes[d] == sizes[depths[-1]]]
lesson.record("n_depths", len(depths))
signed = [d for d in depths if convlens.feature_maps(model, pair, d).min() < 0]
print("depths with negative activations (taken before any activation):", signed)
lesson.record("depth_kinds", (
    f"Note what the depths are: {', '.join(f'`{d}`' for d in signed)} hold negative values "
    f"(outputs taken before any activation) and `{depths[-1]}` does not, so the comparison mixes "
    "two kinds of map: it measures Grad-CAM on these tensors, not where the network's "
    "representation separates the classes.") if signed and depths[-1] not in signed else "")
lesson.record("trap_depths", (
    f" On this page the earlier depths ({', '.join(signed)}), taken "
    "before any activation, did not separate the two classes, but they are also earlier layers, "
    'so this page cannot say which of the two is the cause (see "Which layer?").')
    if signed and depths[-1] not in signed
    and all(separation[d] < 0.25 for d in signed) else "")
earlier_best = max(depths[:-1], key=separation.get)
lesson.record("where_separates", (
    f"only the last, `{depths[-1]}`, separates the two maps on this input")
    if separation[earlier_best] < 0.25 else (
    f"the last separates the two maps best, and earlier ones at most partly (up to "
    f"{separation[earlier_best]:+.2f} at `{earlier_best}`)"))
lesson.record("same_size", (", and not from coarseness: " + " and ".join(f"`{d}`" for d in same_size)
                            + f" already {'has' if len(same_size) == 1 else 'have'} the last "
                            f"layer's {sizes[depths[-1]][0]}×{sizes[depths[-1]][1]} resolution")
              if same_size else "")
_ = lesson.expect(separation[depths[-1]] > 0.5, "the last depth separates the two maps (above 0.5)",
                  separation)
lesson.record("off_share", sum(st.at_lower for st in stats.values()) / units, ".0%")
lesson.record("ceiling_share", sum(st.at_upper for st in stats.values()) / units, ".1%")
_ = lesson.expect(max(separation, key=separation.get) == depths[-1]
                  and separation[depths[-1]] > separation[depths[0]] + 0.2,
                  "the last depth separates the cat and the coffee maps best, and clearly better "
                  "than the first", separation)

# %% [markdown]
# The printed shares put a number on it: the cat map's share on the cat's half minus the
# coffee map's is {{ separations }}. Of the {{ n_depths }} depths measured,
# {{ where_separates }}{{ same_size }}. {{ depth_kinds }} Why the earlier depths separate less well is
# not measured here. One possible part of the reason: every depth but the last reads gradients
# that have passed back through later ReLU6 activations, and a unit that is off or held at the ceiling of 6 passes
# none (on this input {{ off_share }} of all ReLU6 outputs are off and {{ ceiling_share }} at
# the ceiling); the channels of early layers, which respond to edges and textures, are
# another.
#
# Any of the five most probable classes of each photo, at each of these depths:

# %%
from convlens_course import explore

x_explore = {name: ctx.image(name, size=(224, 448) if name == "cat_and_coffee" else None)
             for name in ("cat_and_coffee", "chelsea", "coffee")}
depths_explore = list(ctx.stages) or explore.stage_layers(
    ctx.model, x_explore["chelsea"], ctx.layers["middle"], ctx.layers["last_spatial"])
explore.gradcam_explorer(ctx.model, {name: (xi, ctx.to_display(xi)) for name, xi in x_explore.items()},
                         depths_explore, ctx.labels, top=5)

# %% [markdown]
# ## Guided Grad-CAM
#
# Grad-CAM is coarse; guided back-propagation is sharp but only weakly class-specific (lesson
# 07: its maps for two classes of one image stay strongly correlated). Their
# pointwise product (Selvaraju et al. call it Guided Grad-CAM) keeps the fine detail of the
# second only where the first says the class is: `convlens.guided_gradcam` returns a
# gradient-like tensor of the input's shape.

# %%
support = convlens.guided.rectifier_support(model)
if support in ("modules", "functional"):
    guided = convlens.guided_gradcam(model, pair, torch.tensor([cat, coffee]), layer)
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
    for ax, g, c in zip(axes, guided, [cat, coffee]):
        magnitude = plot.heatmap(g, percentile=99.5)  # max |value| over RGB, clipped at 99.5th pct
        ax.imshow(magnitude, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"Guided Grad-CAM, {ctx.labels[c]!r}", fontsize=9)
        ax.set_axis_off()
    lesson.show(fig, f"Guided Grad-CAM at {layer} for both classes: max |value| over colour "
                     "channels, dark = large, saturated at the 99.5th percentile.")
else:
    print(f"Guided Grad-CAM skipped: guided backprop refuses {ctx.name} (rectifier_support: "
          f"{support!r}, see lesson 07).")

# %% [markdown]
# ## Traps
#
# <div class="admonition warning"><p class="admonition-title">Trap: normalising hides an absent class</p>
# <p>Every map divided by its own maximum looks confident. Ask for a class that is not in the
# picture and the normalised map still glows somewhere. The raw maximum says more, though it
# is no test of presence on its own (see below): here the same three maps are drawn both
# ways.</p></div>

# %%
absent = ctx.most_probable(("goldfish",), x, exclude=(cat, coffee))
three = [cat, coffee, absent]
raw_coarse = convlens.gradcam(model, x.repeat(3, 1, 1, 1), torch.tensor(three), layer,
                              upsample=False)
raw = to_input(raw_coarse, x)
shared = raw.max().item()
fig, axes = plt.subplots(2, 3, figsize=(10.5, 3.6), layout="constrained")
for col, (c, cam) in enumerate(zip(three, raw)):
    plot.overlay(axes[0, col], photo, (cam[0] / cam.max().clamp_min(1e-12)).cpu(), alpha=0.5,
                 title=f"{ctx.labels[c]!r}, divided by its own max")
    axes[1, col].imshow(photo)
    im = axes[1, col].imshow(cam[0].cpu(), cmap="jet", alpha=0.5, vmin=0, vmax=shared)
    axes[1, col].set_title(f"{ctx.labels[c]!r}, raw, shared scale", fontsize=9)
    axes[1, col].set_xticks([])
    axes[1, col].set_yticks([])
fig.colorbar(im, ax=axes[1, :], location="right", shrink=0.9, label="raw Grad-CAM")
lesson.show(fig, f"Grad-CAM at {layer} for a cat class, a coffee class and an absent class: "
                 "each divided by its own maximum (top) and raw on one shared scale (bottom).")

maxima = {c: cam.max().item() for c, cam in zip(three, raw_coarse)}  # as the explorer shows it
for c in three:
    print(f"{ctx.labels[c]:>12}: raw maximum at the layer's resolution {maxima[c]:8.4f}")
smaller = min(maxima[cat], maxima[coffee])  # 0 where a map is empty (all evidence negative)
dimmer = maxima[absent] / smaller if smaller > 0 else float("inf")
# against the photo's most probable class, as for the unlikely classes below
top_max = coarse5[0].max().item()
absent_ratio = maxima[absent] / top_max if top_max > 0 else float("inf")
with torch.no_grad():
    absent_p = model(x).softmax(dim=1)[0, absent].item()
print(f"{ctx.labels[absent]!r}: p = {absent_p:.2e}; raw maximum {absent_ratio:.0%} of the maximum "
      f"for the most probable class {ctx.labels[top5[0]]!r}, {dimmer:.0%} of the smaller present "
      "class's maximum")
lesson.record("absent_name", repr(ctx.labels[absent]))
lesson.record("absent_ratio", absent_ratio, ".0%")
lesson.record("absent_p", absent_p, ".2%" if absent_p >= 1e-4 else "{:.0e}")
lesson.record("top_name", repr(ctx.labels[top5[0]]))
absent_dark = lesson.expect(
    dimmer < 0.5, "the absent class's raw maximum is far below the present classes'", dimmer)

# The explorer's photos: raw maxima of the unlikely classes among each photo's top five,
# relative to the photo's most probable class, at the Grad-CAM layer.
UNLIKELY = 0.01  # probability below 1%
unlikely = []
for name, xi in x_explore.items():
    top = ctx.top_classes(xi, k=5)
    targets = torch.tensor([ctx.labels.index(label) for label, _ in top])
    peak = convlens.gradcam(model, xi.repeat(len(top), 1, 1, 1), targets, layer,
                            upsample=False).amax(dim=(1, 2, 3))
    for (label, p), m in zip(top[1:], peak[1:]):
        if p < UNLIKELY:
            unlikely.append((name, label, p, (m / peak[0]).item()))
            print(f"{name:>14}: {label!r} (p = {p:.1%}) raw maximum {m.item():.3f}, "
                  f"{unlikely[-1][3]:.0%} of the maximum for {top[0][0]!r}")
ratios = [u[3] for u in unlikely]
lesson.record("n_unlikely", len(unlikely))
lesson.record("unlikely_low", min(ratios) if ratios else float("nan"), ".0%")
lesson.record("unlikely_high", max(ratios) if ratios else float("nan"), ".0%")
_ = lesson.expect(len(ratios) > 0 and min(ratios) > absent_ratio,
                  "classes under 1% on the explorer's photos keep raw maxima above the absent "
                  "class's ratio", ratios)

# %% [markdown]
# Divided by its own maximum, the map of {{ absent_name }} glows as brightly as the others
# (top row). On the shared raw scale (bottom row) it is much dimmer: its raw maximum is
# {{ absent_ratio }} of the maximum for the photo's most probable class, {{ top_name }}
# (the model gives {{ absent_name }} a probability of {{ absent_p }}). (Raw maxima here, in
# the titles of [Figure 3](#figure-3) and in the explorer are all taken on the map at the
# layer's resolution; the bilinear upsampling averages neighbouring cells, so it can only
# lower a maximum.)
#
# That is one absent class on one photo, and a low-probability class need not have a dim map:
# on the explorer's three photos, the {{ n_unlikely }} classes among the top five to which the
# model gives less than 1% reach raw maxima of {{ unlikely_low }} to {{ unlikely_high }} of
# their photo's most probable class. At this layer the raw maximum is the largest
# contribution of one cell to the class's logit, not a test of whether the class is there:
# compare it with the other classes' maxima on the same photo, and with the probabilities.

# %% [markdown]
# <div class="admonition warning"><p class="admonition-title">Trap: an in-place ReLU right after the layer</p>
# <p>A hook that stores a conv's output keeps a reference, and the in-place ReLU that follows
# (torchvision's <code>ReLU(inplace=True)</code>) overwrites that very tensor: you silently get
# the post-ReLU map, and autograd may raise a version-counter error. Clone what you record, or
# hand the network a clone as <code>capture</code> does.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: the wrong layer</p>
# <p>After global pooling there is no space left: a 1×1 map upsampled is a constant. Choose the
# last layer that still has a spatial output (for EfficientNet-Lite0 <code>bn2</code>, which
# includes its ReLU6; for VGG, the last ReLU of <code>features</code>; for ResNet,
# <code>layer4</code>; on this page {{ layer }}, the model's <code>last_spatial</code> role).
# Taking a conv's output before its activation is possible, but it mixes in negative evidence
# that the activation would have removed.{{ trap_depths }}</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: one target for a whole batch</p>
# <p>Summing the logits of a batch and back-propagating once is right only when each example
# uses its own target: <code>logits[range(N), targets].sum()</code>. Taking
# <code>logits[:, c]</code> for every example, or explaining only item 0, gives maps for the
# wrong classes without any error.</p></div>
#
# <div class="admonition warning"><p class="admonition-title">Trap: upsampling in the wrong order</p>
# <p><code>F.interpolate</code> takes <code>size=(H, W)</code>; passing the image's
# <code>(width, height)</code>, as PIL reports it, asks for a map of the wrong shape: the
# 7×14 map of the 224×448 composite would be stretched to 448×224 and no longer lie over the
# photo.</p></div>

# %% [markdown]
# ## Exercises
#
# 1. Explain the cat's *second* most likely class. Does the map move? Compute the correlation of
#    the two upsampled maps, and compare it with the coarse maps' correlation. (The page
#    answers part of this: chelsea's two most probable classes are in
#    [Figure 4](#figure-4) and the table below it.)
# 2. Replace the average of the gradients by their positive part before averaging (the idea of
#    Grad-CAM++, Chattopadhyay et al. 2018, in its simplest form). What changes on the
#    composite?
# 3. Make your own two-object image (`convlens.images.load("my.jpg")`) and find a pair of
#    classes for which Grad-CAM fails to separate the objects. What do the raw maxima say?
# 4. Remove the final ReLU from the six-line version. Where is the negative evidence for
#    the coffee class on the composite? Check that the signed map still sums to the logit
#    minus the bias.
# 5. Run the lesson on another model (`nox -s site -- --model resnet18` where its weights are
#    available) and compare the maps at `layer4` with EfficientNet's at `bn2`.
