"""Deconvnet and guided backprop: hand-computed answers, in-place and shared ReLUs,
ReLU6, functional rectifiers, refused activations, and torchvision models against a reference."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.guided import deconvnet, guided_backprop, rectifier_support, unsupported_activations
from convlens.saliency import gradient

# s = W1 x = [2, -1, 3] for x = [1, 2, 0, -1]; logit 0 weights g = [-1, 2, 0.5] at the ReLU.
W1 = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, -1.0], [1.0, 1.0, 0.0, 0.0]])
W2 = torch.tensor([[-1.0, 2.0, 0.5], [1.0, 1.0, 1.0]])
X = torch.tensor([1.0, 2.0, 0.0, -1.0]).view(1, 4, 1, 1)
# plain: 1{s>0} g = [-1, 0, .5];  deconvnet: max(0, g) = [0, 2, .5];  guided: [0, 0, .5]
# then through W1^T:
EXPECTED_TARGET0 = {
    "plain": [-1.5, 0.5, -1.0, 0.0],
    "deconvnet": [0.5, -1.5, 0.0, -2.0],
    "guided": [0.5, 0.5, 0.0, 0.0],
}
# logit 1: g = [1, 1, 1]: plain/guided W1^T [1, 0, 1]; deconvnet W1^T [1, 1, 1]
EXPECTED_TARGET1 = {"plain": [3.0, 1.0, 1.0, 0.0], "deconvnet": [3.0, 0.0, 1.0, -1.0],
                    "guided": [3.0, 1.0, 1.0, 0.0]}
METHODS = {"plain": gradient, "deconvnet": deconvnet, "guided": guided_backprop}


def two_layer_net(w1=W1, rectifier=None):
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), rectifier or nn.ReLU(),
                        nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(w1)
        net[3].weight.copy_(W2)
    return net.eval()


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("method", ["plain", "deconvnet", "guided"])
def test_hand_computed_relu_net(method, inplace):
    net = two_layer_net(rectifier=nn.ReLU(inplace=inplace))
    x = torch.cat([X, X])
    result = METHODS[method](net, x, [0, 1]).view(2, 4)
    torch.testing.assert_close(result[0], torch.tensor(EXPECTED_TARGET0[method]))
    torch.testing.assert_close(result[1], torch.tensor(EXPECTED_TARGET1[method]))


@pytest.mark.parametrize("inplace", [False, True])
def test_relu6_gate_closes_above_six(inplace):
    # third hidden unit: s = 3 + 4 = 7 >= 6, so the forward gate is shut there.
    w1 = W1.clone()
    w1[2] = torch.tensor([3.0, 2.0, 0.0, 0.0])
    net = two_layer_net(w1, nn.ReLU6(inplace=inplace))
    with torch.no_grad():
        net[3].weight[0] = torch.tensor([1.0, 2.0, 0.5])
    # g = [1, 2, .5]; s = [2, -1, 7]. plain/guided: [1, 0, 0]; deconvnet: [1, 2, .5]
    torch.testing.assert_close(gradient(net, X, 0).flatten(), torch.tensor([2.0, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(guided_backprop(net, X, 0).flatten(), torch.tensor([2.0, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(deconvnet(net, X, 0).flatten(), torch.tensor([3.5, -1.0, 1.0, -2.0]))


# ---- an independent reference: the rule written as the ReLU itself ----

class GuidedReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s):
        ctx.save_for_backward(s)
        return s.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        return g * (s > 0).to(g.dtype) * (g > 0).to(g.dtype)


class DeconvReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s):
        return s.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0)


class ReferenceReLU(nn.Module):
    def __init__(self, function, first_call_only=False):
        super().__init__()
        self.function, self.first_call_only, self.calls = function, first_call_only, 0

    def forward(self, s):
        self.calls += 1
        if self.first_call_only and self.calls > 1:
            return F.relu(s)
        return self.function.apply(s)


class SharedReLUNet(nn.Module):
    """The same ReLU instance runs twice, like torchvision ResNet's ``relu``."""

    def __init__(self, relu):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.relu = relu

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x.flatten(1))))))


def reference_gradient(net, x, target):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(net(x)[torch.arange(len(x)), target].sum(), x)[0]


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("method, function", [(guided_backprop, GuidedReLUFunction),
                                               (deconvnet, DeconvReLUFunction)])
def test_shared_relu_gets_rule_on_both_calls(method, function, inplace):
    torch.manual_seed(1)
    x, target = torch.randn(5, 4, 1, 1), torch.tensor([0, 1, 2, 0, 1])
    expected = reference_gradient(SharedReLUNet(ReferenceReLU(function)), x, target)
    only_first = reference_gradient(SharedReLUNet(ReferenceReLU(function, True)), x, target)
    assert not torch.allclose(expected, only_first)  # the test can tell the difference
    torch.testing.assert_close(method(SharedReLUNet(nn.ReLU(inplace=inplace)), x, target), expected)


class FunctionalReLUNet(nn.Module):
    def __init__(self, call):
        super().__init__()
        torch.manual_seed(4)
        self.fc1, self.relu = nn.Linear(4, 5), nn.ReLU()
        self.mid, self.fc2 = nn.Linear(5, 5), nn.Linear(5, 2)
        with torch.no_grad():
            self.mid.weight.mul_(8.0)  # some pre-activations above 6: the ReLU6 gate shuts
        self.call = call

    def forward(self, x):
        return self.fc2(self.call(self.mid(self.relu(self.fc1(x.flatten(1))))))


class GuidedClamp(torch.autograd.Function):
    """Reference: clamp(s, 0, upper) forward; 1{0 < s < upper} 1{g > 0} g backward."""

    @staticmethod
    def forward(ctx, s, upper):
        ctx.save_for_backward(s)
        ctx.upper = upper
        return s.clamp(min=0) if upper is None else s.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        gate = (s > 0) if ctx.upper is None else (s > 0) & (s < ctx.upper)
        return g * gate.to(g.dtype) * (g > 0).to(g.dtype), None


class DeconvClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, upper):
        return s.clamp(min=0) if upper is None else s.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0), None


def _in_place_unused(t):
    F.relu_(t)  # the return value is dropped: the caller relies on the side effect
    return t


FUNCTIONAL_CALLS = {
    "F.relu": (F.relu, None), "torch.relu": (torch.relu, None),
    "Tensor.relu": (lambda t: t.relu(), None), "F.relu inplace": (lambda t: F.relu(t, True), None),
    "torch.relu_": (torch.relu_, None), "relu_ unused result": (_in_place_unused, None),
    "F.relu6": (F.relu6, 6.0), "F.hardtanh(0, 6)": (lambda t: F.hardtanh(t, 0.0, 6.0), 6.0),
    "F.threshold(0, 0)": (lambda t: F.threshold(t, 0.0, 0.0), None),
}


@pytest.mark.parametrize("call_name", list(FUNCTIONAL_CALLS))
@pytest.mark.parametrize("method, function", [(guided_backprop, GuidedClamp),
                                               (deconvnet, DeconvClamp)])
def test_functional_rectifier_gets_the_rule(method, function, call_name):
    call, upper = FUNCTIONAL_CALLS[call_name]
    torch.manual_seed(6)
    x, target = torch.randn(6, 4, 1, 1), torch.tensor([0, 1, 0, 1, 1, 0])
    reference = FunctionalReLUNet(lambda t: function.apply(t, upper))
    reference.relu = ReferenceReLU(GuidedReLUFunction if function is GuidedClamp
                                   else DeconvReLUFunction)
    expected = reference_gradient(reference, x, target)
    net = FunctionalReLUNet(call)
    result = method(net, x, target)
    torch.testing.assert_close(result, expected)
    assert not torch.allclose(result, gradient(net, x, target))  # the rule did something
    assert not net.fc1._forward_hooks and not net._forward_pre_hooks
    with torch.no_grad():  # outside the block, the functional call is plain again
        torch.testing.assert_close(net(x), reference(x))


class NamedBlockNet(nn.Module):
    """A functional activation inside a named submodule, as in a user's own block."""

    class Block(nn.Module):
        def __init__(self, activation):
            super().__init__()
            self.conv, self.activation = nn.Conv2d(3, 4, 3), activation

        def forward(self, x):
            return self.activation(self.conv(x))

    def __init__(self, activation):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())
        self.block = NamedBlockNet.Block(activation)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("activation, named", [
    (F.silu, "functional silu"), (F.gelu, "functional gelu"), (F.hardswish, "functional hardswish"),
    (lambda t: F.hardtanh(t, -1.0, 1.0), "hardtanh (not a rectifier"),
    (lambda t: F.leaky_relu(t, 0.1), "functional leaky_relu"),
])
@pytest.mark.parametrize("method", [deconvnet, guided_backprop])
def test_functional_other_activation_refused_naming_module(method, activation, named):
    net = NamedBlockNet(activation).eval()
    with pytest.raises(ValueError) as error:
        method(net, torch.randn(1, 3, 8, 8), 0)
    assert named in str(error.value) and "'block'" in str(error.value)
    assert "plain gradient" in str(error.value)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    F.silu(torch.randn(3))  # no mode left behind


@pytest.mark.parametrize("builder, activation, module", [
    ("mobilenet_v3_small", "Hardswish", "features.0.2"),
    ("efficientnet_b0", "SiLU", "features.0.2"),
    ("convnext_tiny", "GELU", "features.1.0.block.4"),
])
@pytest.mark.slow
def test_torchvision_other_activation_modules_refused(builder, activation, module):
    import torchvision

    model = getattr(torchvision.models, builder)(weights=None).eval()
    assert type(model.get_submodule(module)).__name__ == activation
    with pytest.raises(ValueError, match=rf"{activation} at '{re.escape(module)}'"):
        guided_backprop(model, torch.randn(1, 3, 32, 32), 0)
    assert rectifier_support(model, (32, 32)) == "unsupported"
    assert (module, activation) in unsupported_activations(model, (32, 32))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_rectifier_support_cases(attribution_resnet18):
    assert rectifier_support(attribution_resnet18, (32, 32)) == "modules"
    assert rectifier_support(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Tanh())) == "none"
    only_functional = nn.Sequential(nn.Conv2d(3, 2, 1))
    only_functional.forward = lambda x: F.relu(only_functional[0](x))
    assert rectifier_support(only_functional, (8, 8)) == "functional"
    assert unsupported_activations(attribution_resnet18, (32, 32)) == []


def _patched_relu_gradient(monkeypatch, model, x, target, function):
    """Reference: every F.relu (nn.ReLU modules call it too) replaced by the rule."""
    with monkeypatch.context() as patch:
        patch.setattr(F, "relu", lambda t, inplace=False: function.apply(t))
        return reference_gradient(model, x, torch.tensor(target))


@pytest.mark.parametrize("builder", ["densenet121", "googlenet"])
@pytest.mark.parametrize("method, function", [(guided_backprop, GuidedReLUFunction),
                                               (deconvnet, DeconvReLUFunction)])
@pytest.mark.slow
def test_torchvision_functional_relu_models_match_reference(monkeypatch, builder, method,
                                                             function):
    import torchvision

    torch.manual_seed(0)
    extra = {"aux_logits": False, "init_weights": True} if builder == "googlenet" else {}
    model = getattr(torchvision.models, builder)(weights=None, **extra).eval()
    x, target = torch.randn(1, 3, 64, 64), [3]
    assert rectifier_support(model, (64, 64)) == "functional"
    expected = _patched_relu_gradient(monkeypatch, model, x, target, function)
    result = method(model, x, target)
    scale = expected.abs().max()  # googlenet's initialisation gives gradients near 1e-15
    assert scale > 0
    torch.testing.assert_close(result / scale, expected / scale, rtol=1e-4, atol=1e-5)
    plain = gradient(model, x, target)
    assert not torch.allclose(result / scale, plain / scale, rtol=1e-3, atol=1e-3)


def test_model_without_relu_modules_raises():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Tanh())
    with pytest.raises(ValueError, match="no nn.ReLU/nn.ReLU6 module or functional relu"):
        guided_backprop(net, torch.randn(1, 4, 1, 1), 0)


def test_unknown_rule_name():
    from convlens.hooks import relu_backward_rule

    with pytest.raises(ValueError, match="rule"):
        with relu_backward_rule(two_layer_net(), "plain-ish"):
            pass


def swap_relus_for_reference(model, function):
    """A copy of ``model`` whose ReLU modules are replaced by the reference function."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, ReferenceReLU(function))
    return model


@pytest.mark.parametrize("method, function", [(guided_backprop, GuidedReLUFunction),
                                               (deconvnet, DeconvReLUFunction)])
def test_resnet18_shared_inplace_relu_matches_reference(attribution_resnet18, method, function):
    torch.manual_seed(0)
    x, target = torch.randn(2, 3, 32, 32), [3, 7]
    expected = reference_gradient(swap_relus_for_reference(attribution_resnet18, function), x,
                                  torch.tensor(target))
    result = method(attribution_resnet18, x, target)
    torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(result, gradient(attribution_resnet18, x, target))


@pytest.mark.slow
def test_vgg11_guided_matches_reference(attribution_vgg11):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    expected = reference_gradient(swap_relus_for_reference(attribution_vgg11, GuidedReLUFunction),
                                  x, torch.tensor([5]))
    torch.testing.assert_close(guided_backprop(attribution_vgg11, x, 5), expected,
                               rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_timm_relu6_model_runs_with_rule():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    result = guided_backprop(model, x, 2)
    assert result.shape == x.shape and torch.isfinite(result).all()
    assert not torch.allclose(result, gradient(model, x, 2))


@pytest.mark.parametrize("method", [deconvnet, guided_backprop])
def test_batch_with_different_targets_equals_per_example(attribution_resnet18, method):
    torch.manual_seed(2)
    x, target = torch.randn(2, 3, 32, 32), [1, 5]
    together = method(attribution_resnet18, x, target)
    for n in range(2):
        torch.testing.assert_close(together[n : n + 1], method(attribution_resnet18, x[n : n + 1], target[n]),
                                   rtol=1e-4, atol=1e-6)


# --- deconvnet with and without max-pooling switches -------------------------------------

def pooled_net():
    """conv -> ReLU -> 2x2 max-pool -> linear, with a hand-set 1x1 conv (identity)."""
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[4].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 4.0]]))
    return net.eval()


def test_deconvnet_switches_route_to_the_maximum_and_without_spread_evenly():
    net = pooled_net()
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)  # max: bottom-right of each window
    with_switches = deconvnet(net, x, 0)
    expected = torch.zeros(4, 4)
    # the ReLU rule passes max(0, g): -2 is dropped; the switches pick position (1, 1) of
    # each 2x2 window
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1.0, 0.0, 3.0, 4.0
    torch.testing.assert_close(with_switches[0, 0], expected)
    without = deconvnet(net, x, 0, switches=False)
    spread = torch.tensor([[1.0, 0.0], [3.0, 4.0]]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(without[0, 0], spread / 4)
    other = torch.flip(x, (2, 3))  # maxima now top-left: switches move, no-switch map stays
    assert not torch.equal(deconvnet(net, other, 0), with_switches)
    torch.testing.assert_close(deconvnet(net, other, 0, switches=False), without)


def test_deconvnet_without_switches_is_the_same_for_every_input(attribution_alexnet):
    a, b = torch.randn(2, 1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    maps = [deconvnet(attribution_alexnet, x, 3, switches=s) for x in (a, b) for s in (True, False)]
    assert not torch.allclose(maps[0], maps[2])
    torch.testing.assert_close(maps[1], maps[3])
    assert count_all_hooks(attribution_alexnet) == 0


def count_all_hooks(model):
    from convlens.hooks import count_hooks

    return count_hooks(model)


def test_deconvnet_without_switches_functional_pool_and_refusals():
    class Functional(nn.Module):
        def __init__(self, pool):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(1, 2, 3, padding=1), pool
            self.head = nn.Linear(2, 2)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            h = F.max_pool2d(h, 2) if self.pool is None else self.pool(h)
            return self.head(h.mean((2, 3)))

    torch.manual_seed(0)
    module_net = Functional(nn.MaxPool2d(2)).eval()
    functional_net = copy.deepcopy(module_net)
    functional_net.pool = None
    x = torch.randn(1, 1, 6, 6)
    torch.testing.assert_close(deconvnet(functional_net, x, 1, switches=False),
                               deconvnet(module_net, x, 1, switches=False))
    adaptive = copy.deepcopy(module_net)
    adaptive.pool = nn.AdaptiveMaxPool2d(2)
    with pytest.raises(ValueError, match="adaptive_max_pool2d"):
        deconvnet(adaptive, x, 1, switches=False)
    dilated = copy.deepcopy(module_net)
    dilated.pool = nn.MaxPool2d(2, dilation=2)
    with pytest.raises(ValueError, match="dilated"):
        deconvnet(dilated, x, 1, switches=False)
    with pytest.raises(TypeError, match="switches must be a bool"):
        deconvnet(module_net, x, 1, switches="no")
