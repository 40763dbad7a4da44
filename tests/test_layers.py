"""convlens.layers: the activation table and what is derived from it, sliding-layer geometry
(TensorFlow's "SAME" padding by hand), and the call order of one forward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens import layers
from convlens.hooks import count_hooks


def test_every_activation_row_is_well_formed_and_named_once():
    names = [a.name for a in layers.ACTIVATIONS]
    assert len(names) == len(set(names))
    functions = [f for a in layers.ACTIVATIONS for f in a.functions]
    assert len(functions) == len(set(functions))
    assert all(a.backward in layers.BACKWARD_RULES for a in layers.ACTIVATIONS)


def test_what_the_relu_rules_hook_replace_and_refuse():
    assert layers.RECTIFIER_MODULES == (nn.ReLU, nn.ReLU6)
    assert {"relu", "relu_", "relu6", "hardtanh", "threshold"} <= layers.RECTIFIER_FUNCTIONS
    assert {"silu", "swish", "hardswish", "gelu", "leakyrelu", "mish"} <= layers.REFUSED_NAMES
    assert not {"sigmoid", "tanh", "hardsigmoid", "relu"} & layers.REFUSED_NAMES
    assert layers.refused_activation(nn.SiLU()) == "SiLU"
    assert layers.refused_activation(nn.ReLU()) is None
    assert layers.refused_activation(nn.Sigmoid()) is None

    class Swish(nn.Module):  # another library's class of the same name
        pass

    assert layers.refused_activation(Swish()) == "Swish"


@pytest.mark.parametrize("name, args, kwargs, expected", [
    ("relu", (1,), {}, (1, None, False)),
    ("relu_", (1,), {}, (1, None, True)),
    ("relu", (1,), {"inplace": True}, (1, None, True)),
    ("relu6", (1,), {}, (1, 6.0, False)),
    ("hardtanh", (1, 0.0, 4.0), {}, (1, 4.0, False)),
    ("hardtanh", (1,), {}, None),  # the default lower bound is -1: not a rectifier
    ("threshold", (1, 0.0, 0.0), {}, (1, None, False)),
    ("threshold", (1, 0.5, 0.0), {}, None),
])
def test_rectifier_call_reads_the_arguments(name, args, kwargs, expected):
    assert layers.rectifier_call(name, args, kwargs) == expected


def test_pointwise_modules_depend_on_mode_and_statistics():
    bn = nn.BatchNorm2d(3)
    assert not layers.is_pointwise_module(bn)  # training: batch statistics mix positions
    assert layers.is_pointwise_module(bn.eval())
    assert layers.is_pointwise_module(nn.Dropout().eval()) and not layers.is_pointwise_module(
        nn.Dropout())
    assert layers.is_pointwise_module(nn.Hardswish()) and layers.is_pointwise_module(nn.Identity())
    assert not layers.is_pointwise_module(nn.Conv2d(1, 1, 1))

    class MyReLU(nn.ReLU):  # a subclass may compute something else
        pass

    assert not layers.is_pointwise_module(MyReLU())


@pytest.mark.parametrize("size, kernel, stride, dilation, expected", [
    (224, 3, 2, 1, (0, 1)),  # 112 outputs: (111 * 2 + 3) - 224 = 1, the odd pixel after
    (112, 3, 1, 1, (1, 1)),
    (7, 5, 2, 1, (2, 2)),    # 4 outputs: (3 * 2 + 5) - 7 = 4
    (10, 3, 2, 2, (1, 2)),   # 5 outputs, reach 2 * 2 + 1: (4 * 2 + 5) - 10 = 3
    (5, 1, 5, 1, (0, 0)),
])
def test_tf_same_padding_by_hand(size, kernel, stride, dilation, expected):
    before, after = layers.tf_same_padding(size, kernel, stride, dilation)
    assert (before, after) == expected
    outputs = (size + before + after - dilation * (kernel - 1) - 1) // stride + 1
    assert outputs == -(-size // stride)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_padding_matches_pytorch():
    for kernel, dilation in [(3, 1), (4, 1), (5, 2), (2, 3)]:
        x = torch.randn(1, 1, 9, 9)
        w = torch.randn(1, 1, kernel, kernel)
        before, after = layers.same_padding(kernel, dilation)
        padded = F.conv2d(F.pad(x, (before, after, before, after)), w, dilation=dilation)
        torch.testing.assert_close(padded, F.conv2d(x, w, padding="same", dilation=dilation))


def test_sliding_windows_of_convolutions_and_pools():
    conv = nn.Conv2d(1, 1, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1))
    assert layers.sliding_windows(conv, (9, 9)) == (layers.Window(3, 1, 2, 1),
                                                    layers.Window(5, 2, 1, 2))
    same = nn.Conv2d(1, 1, 4, padding="same")
    assert [g.before for g in layers.sliding_windows(same, (9, 9))] == [1, 1]
    assert layers.sliding_windows(nn.MaxPool2d(3, 2, 1), (9, 9)) == (layers.Window(3, 2, 1, 1),) * 2
    assert layers.sliding_windows(nn.AvgPool2d(2), (9, 9)) == (layers.Window(2, 2, 1, 0),) * 2
    assert layers.sliding_windows(nn.ReLU(), (9, 9)) is None
    assert layers.stride_of(nn.MaxPool2d(3)) == (3, 3) and layers.stride_of(nn.ReLU()) is None
    assert layers.Window(3, 2, 2, 1).reach == 5
    assert layers.Window(3, 2, 1, 1).after(8, 4) == 0 and layers.Window(3, 2, 1, 1).after(7, 4) == 1


def test_is_pooling():
    assert layers.is_pooling(nn.AdaptiveAvgPool2d(1)) and layers.is_pooling(nn.MaxPool2d(2))
    assert not layers.is_pooling(nn.Conv2d(1, 1, 1))


class Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.late = nn.Linear(4, 2)  # defined first, called last
        self.block = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.act(self.act(self.block(x)))
        return self.late(x.mean(dim=(2, 3)))


def test_forward_calls_in_return_order_with_start_ranks():
    model = Reused().train()
    running_mean = model.block[1].running_mean.clone()
    calls = layers.forward_calls(model, torch.randn(2, 1, 6, 6))
    assert [c.name for c in calls] == ["block.0", "block.1", "block", "act", "act", "late", ""]
    started = [c.name for c in sorted(calls, key=lambda c: c.started)]
    assert started == ["", "block", "block.0", "block.1", "act", "act", "late"]
    assert calls[-1].output.shape == (2, 2) and calls[0].module is model.block[0]
    # eval mode during the pass, flags and statistics as found after it, no hook left
    assert model.training and torch.equal(model.block[1].running_mean, running_mean)
    assert count_hooks(model) == 0
