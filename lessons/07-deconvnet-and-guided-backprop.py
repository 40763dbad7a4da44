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
# **Summary.** Changing how gradients pass through ReLUs, and what these sharper pictures do and do not show.
#
# **The question.** "Papers show crisp, almost photographic pictures labelled *deconvnet* or
# *guided backprop* next to the grainy input gradient. What do these methods compute that the
# gradient does not, and how do I implement them in PyTorch without getting it subtly wrong?"
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
# That one change has large consequences. Dropping every negative signal at every ReLU means
# that contributions can no longer cancel on the way down; on the plain VGG-style networks of
# the papers this gives crisp, almost photographic maps. The price is that they are no longer
# the derivative of anything: they stop answering "how would the score change", and, as we
# will measure, they depend far less on which class you asked about. With $s$ the ReLU's
# forward input and $g$ the gradient arriving at its output, the three backward rules are
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

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import convlens
from convlens import lesson, plot

ctx = lesson.setup()
model = ctx.model
print("model:", ctx.name, "| device:", ctx.device)

x = ctx.image("chelsea")  # the cat photo, normalized, [1, 3, 224, 224]
top = ctx.top_classes(x, k=3)
for label, p in top:
    print(f"  {p:6.1%}  {label}")
target = ctx.class_index(top[0][0])
print("explaining class", target, repr(top[0][0]))

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
                 "for every combination of the signs of s and g.")

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
# Same network, same photo, same class, three rules. The signed view maps 0 to grey (all three
# colour channels scaled together); the magnitude view is $\max_{\text{colour}}|\cdot|$ per
# pixel, each map divided by its own maximum.

# %%
maps = {
    "gradient": convlens.gradient(model, x, target),
    "deconvnet": convlens.deconvnet(model, x, target),
    "guided backprop": convlens.guided_backprop(model, x, target),
}


LEVELS = 16  # display maps are rounded to 16 levels: invisible, and the PNGs stay small


def magnitude(attribution, percentile=99.5):
    """max |a| over colour channels, scaled so a high percentile maps to 1 (display only)."""
    m = plot.heatmap(attribution)
    m = np.clip(m / max(np.percentile(m, percentile), 1e-12), 0, 1)
    return np.round(m * (LEVELS - 1)) / (LEVELS - 1)


def signed(attribution, percentile=99.5):
    """Signed RGB view (grey = 0), clipped at a high percentile of |a| (display only)."""
    q = max(float(attribution.abs().quantile(percentile / 100)), 1e-12)
    rgb = plot.signed_to_rgb(attribution.clamp(-q, q))
    return np.round(rgb * (LEVELS // 2)) / (LEVELS // 2)  # 9 levels per colour channel


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
lesson.show(fig, f"Gradient, deconvnet and guided backprop of the logit of {top[0][0]!r} on the "
                 "cat photo: signed (grey = 0) and max |·| over RGB, both clipped at the 99.5th "
                 "percentile of |·|.")

print("            max |value|   share of positive entries")
for name, a in maps.items():
    print(f"{name:16s} {a.abs().max().item():9.3g}   {(a > 0).float().mean().item():10.1%}")

# %% [markdown]
# The gradient is the familiar speckle of [the saliency lesson](06-saliency-and-smoothgrad.ipynb).
# The deconvnet has no forward gate at all, so nothing ties it to *this* photo: on this network
# its picture is a regular grid printed by the stride-2 convolutions, and its raw values are
# more than a hundred times larger than the gradient's, because negative contributions never
# cancel on the way down. Guided backprop is the cleanest of the three: the background goes
# quiet and the eyes and the nose stand out, with sharp outlines. (On EfficientNet-Lite0 a fine
# checkerboard from the strided, depthwise convolutions remains; the published pictures come
# from VGG-like networks and look more like an edge-enhanced photo.) A picture that looks this
# much like the photo should make us suspicious, as the next sections show.

# %% [markdown]
# ## Implementing the rules with hooks, correctly
#
# `convlens.deconvnet` and `convlens.guided_backprop` are the plain gradient computed while
# every rectifier module back-propagates by the other rule (`convlens._hooks.relu_backward_rule`).
# The library's approach, in four sentences:
#
# 1. The new rule is a small `torch.autograd.Function` whose forward is the rectifier and whose
#    backward is the rule; for guided backprop it saves the forward gate $\mathbf 1\{s>0\}$.
# 2. A **forward pre-hook** on each `nn.ReLU`/`nn.ReLU6` runs that function on the module's
#    input *before* the module itself runs, so an in-place ReLU, which overwrites its input, can
#    no longer destroy the $s$ the rule needs.
# 3. A **forward hook** then returns that output instead of the module's own, so the rest of the
#    network is wired to the new backward rule. Each call pushes and pops its own output, so a
#    module called several times in one forward pass gets the rule on *every* call.
# 4. All hooks are removed in a `finally` block: after the call (or an exception) the model is
#    exactly as it was, with no attribute set on any module.
#
# Here is the same idea in a dozen lines of your own, for guided backprop, checked against the
# library. `upper` is the rectifier's ceiling: $+\infty$ for ReLU, 6 for ReLU6 (see below).

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


mine = my_guided_backprop(model, x, target)
print("my version == convlens.guided_backprop:",
      torch.allclose(mine, maps["guided backprop"], rtol=1e-4, atol=1e-6))

# %% [markdown]
# ### ReLU6: where is the gate?
#
# EfficientNet-Lite0, the course's default model, has no `nn.ReLU` at all: its rectifiers are
# ReLU6, $\min(\max(0, s), 6)$, which is flat on *both* sides. Its true derivative is
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
rectifiers = [type(m).__name__ for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
print(f"{ctx.name}: {len(rectifiers)} rectifier modules, types {sorted(set(rectifiers))}")

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
# <div class="admonition warning"><p class="admonition-title">Trap: functional F.relu</p>
# <p>A model that writes <code>F.relu(x)</code> (or <code>x.relu()</code>) in its
# <code>forward</code> has no module to hook: a hook-based implementation silently computes
# the plain gradient there. <code>convlens</code> watches for functional rectifiers during the
# forward pass and raises a <code>ValueError</code> instead (below).</p></div>
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
# functional-ReLU trap.

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
print("convlens on the in-place net works:",
      tuple(convlens.guided_backprop(inplace_net, torch.randn(1, 3, 8, 8), 0).shape))


class FunctionalReLU(nn.Module):
    """One nn.ReLU module, and one F.relu call that no module hook can see."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = F.relu(self.conv1(x))  # functional: invisible to module hooks
        h = self.relu(self.conv2(h))
        return self.head(h.mean(dim=(2, 3)))


functional_net = FunctionalReLU().eval()
try:
    convlens.guided_backprop(functional_net, torch.randn(1, 3, 8, 8), 0)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# Finally, hooks left behind. We count the forward hooks, forward pre-hooks and backward hooks
# on every module before and after the calls above, including the one that raised.

# %%
def count_hooks(net):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in net.modules())


convlens.guided_backprop(model, x, target)
convlens.deconvnet(model, x, target)
print(f"hooks on {ctx.name} after guided backprop and deconvnet:", count_hooks(model))
print("hooks on the F.relu net after the ValueError:", count_hooks(functional_net))
print("hooks on the twice-called net:", count_hooks(twice),
      "| attribute 'kept' left on its ReLU:", hasattr(twice.relu, "kept"))

# %% [markdown]
# ## Does the picture depend on the class?
#
# A class explanation should change when the class changes. The two-object image below has a
# cat on the left and an espresso on the right; we ask each method for **"tabby"** and for
# **"espresso"**. (The image is resized to 224×448 so that the centre crop keeps both objects.)

# %%
pair = ctx.image("cat_and_coffee", size=(224, 448))
for label, p in ctx.top_classes(pair, k=5):
    print(f"  {p:6.1%}  {label}")
classes = ["tabby", "espresso"]
methods = {"gradient": convlens.gradient, "deconvnet": convlens.deconvnet,
           "guided backprop": convlens.guided_backprop}
results = {(m, c): f(model, pair, ctx.class_index(c)) for m, f in methods.items() for c in classes}


def correlation(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


fig, axes = plt.subplots(2, 3, figsize=(9.6, 4.0))
for col, name in enumerate(methods):
    for row, c in enumerate(classes):
        ax = axes[row, col]
        ax.imshow(magnitude(results[name, c]), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name}: {c!r}", fontsize=9)
fig.tight_layout()
lesson.show(fig, "Gradient, deconvnet and guided backprop on the cat + coffee image for the "
                 "classes 'tabby' (top) and 'espresso' (bottom); max |·| over RGB.")

print("correlation of the 'tabby' and 'espresso' maps:")
print("                   signed values   magnitude maps")
for name in methods:
    a, b = results[name, "tabby"], results[name, "espresso"]
    print(f"{name:16s}  {correlation(a.cpu(), b.cpu()):13.2f}   "
          f"{correlation(plot.heatmap(a), plot.heatmap(b)):14.2f}")

# %% [markdown]
# Look at the numbers first. The signed gradients for "tabby" and "espresso" are
# uncorrelated: each class score is sensitive to its own pattern of pixels (even if their
# magnitude maps, which discard the sign, share the strong edges of the cup). The deconvnet
# gives the *same* picture for both classes (correlation 1.00). Guided backprop shifts the
# emphasis a little (the rings of the cup are brighter for "espresso"), but its two maps are
# still correlated at about 0.9: both draw the cat's face and the cup, whichever class we ask
# about.
#
# This is the central finding of Nie et al. 2018: dropping the negative signals at every
# rectifier (and, for guided backprop, gating by the forward pass) makes these methods perform
# a partial **image recovery**: the map is dominated by the input's own edges, and the class
# you start from has little influence. Adebayo et al. 2018 turned this into a sanity check:
# if a saliency map barely changes when the model's weights are randomised, it cannot be
# explaining what the model learned. Let us run the simplest version of their test: replace
# the final classification layer by random weights and recompute.

# %%
randomized = copy.deepcopy(model)
last_linear = [m for m in randomized.modules() if isinstance(m, nn.Linear)][-1]
with torch.no_grad():
    w = torch.randn(last_linear.weight.shape, generator=ctx.generator, device=ctx.device)
    last_linear.weight.copy_(w * last_linear.weight.std())
    if last_linear.bias is not None:
        last_linear.bias.zero_()

after = {name: f(randomized, x, target) for name, f in methods.items() if name != "deconvnet"}
fig, axes = plt.subplots(1, 4, figsize=(8.8, 2.6))
panels = [("gradient", "trained", maps["gradient"]), ("gradient", "random head", after["gradient"]),
          ("guided backprop", "trained", maps["guided backprop"]),
          ("guided backprop", "random head", after["guided backprop"])]
for ax, (name, state, a) in zip(axes, panels):
    ax.imshow(magnitude(a), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name}\n{state}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
lesson.show(fig, f"Sanity check (Adebayo et al. 2018): maps of class {target} on the cat photo "
                 "with the trained model and with its last linear layer re-initialised at random.")

for name in after:
    print(f"{name:16s} correlation trained vs random head (magnitude): "
          f"{correlation(plot.heatmap(maps[name]), plot.heatmap(after[name])):.2f}")

# %% [markdown]
# With a random classifier, one that has never learned what a cat is, guided backprop draws
# the same picture as with the trained one (correlation of the magnitude maps ≈ 1.00), while
# the gradient changes a lot. Guided backprop fails this sanity check: its picture is made by
# the lower layers and the input, not by what the top of the network learned. So read guided
# backprop and deconvnet pictures as what they are: a sharp view of the input structures that
# the convolutional layers respond to, largely independent of the class and of the classifier,
# not an answer to "why this class?".
#
# For a class-discriminative map, use a method that depends on the class by construction, such
# as [Grad-CAM](08-grad-cam.ipynb) (whose "guided" variant multiplies guided backprop by the
# class-specific Grad-CAM map to get both sharpness and discrimination).

# %% [markdown]
# ## Exercises
#
# 1. Extend the six-number table with a second ReLU stacked on the first (a linear layer
#    between them). Find inputs for which guided backprop passes a positive value to a unit
#    where the true gradient is negative.
# 2. Apply `my_guided_backprop` to a model with `nn.ReLU(inplace=True)` modules and to the
#    `TwiceReLU` network above. Then rewrite it to store the input on the module in a forward
#    hook instead of using the pre-hook and a stack, and find the case where it breaks.
# 3. Repeat the "tabby" vs "espresso" comparison on your own two-object photo, and add a class
#    that is in neither object (e.g. `"goldfish"`). How correlated is its guided backprop map
#    with the other two?
# 4. Make the sanity check cascading, as Adebayo et al. do: re-initialise the layers one at a
#    time from the top (the classifier, then `ctx.layers["last_conv"]`, then earlier blocks) and
#    plot the correlation with the trained map after each step, for the gradient and for guided
#    backprop.
# 5. Write the deconvnet as your own `autograd.Function` (its backward ignores $s$) and check
#    that it equals `convlens.deconvnet` on the cat photo.
