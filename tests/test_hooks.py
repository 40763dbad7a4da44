"""The public hook API (convlens.hooks) and the model device/dtype helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from convlens._checks import model_device_dtype
from convlens.hooks import capture, count_hooks, only_call


def test_public_module_is_reachable_from_the_package():
    assert convlens.hooks.capture is capture
    assert "hooks" in convlens.__all__
    assert {"capture", "only_call", "count_hooks"} <= set(convlens.hooks.__all__)


def test_count_hooks_counts_each_kind_on_every_submodule():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Flatten()))
    assert count_hooks(net) == 0
    handles = [
        net[0].register_forward_hook(lambda m, i, o: None),
        net[0].register_forward_hook(lambda m, a, k, o: None, with_kwargs=True),
        net[1][0].register_forward_pre_hook(lambda m, i: None),
        net[1][1].register_full_backward_hook(lambda m, gi, go: None),
        net.register_full_backward_pre_hook(lambda m, go: None),
    ]
    assert count_hooks(net) == 5
    assert count_hooks(net[1]) == 2  # only the submodules of that branch
    for handle in handles:
        handle.remove()
    assert count_hooks(net) == 0


def test_count_hooks_is_zero_after_capture_even_when_forward_raises():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(4, 1))  # second layer: wrong size
    with pytest.raises(RuntimeError), capture(net, ["0", "1"]):
        assert count_hooks(net) == 2  # inside the block: one hook per captured layer
        net(torch.randn(2, 3))
    assert count_hooks(net) == 0


def test_count_hooks_rejects_a_non_module():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        count_hooks(torch.zeros(1))


def test_only_call_returns_the_single_call_and_names_ambiguity():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Linear(2, 2), relu, nn.Linear(2, 2), relu)
    x = torch.tensor([[1.0, -1.0]])
    with capture(net, ["0", "1"]) as records:
        net(x)
    torch.testing.assert_close(only_call(records, "0"), net[0](x))
    with pytest.raises(ValueError, match="called 2 times"):
        only_call(records, "1")
    with pytest.raises(ValueError, match="was not called"):
        only_call({"head": []}, "head")


def test_model_device_dtype():
    assert model_device_dtype(nn.Linear(2, 2)) == (torch.device("cpu"), torch.float32)
    assert model_device_dtype(nn.Linear(2, 2).double()) == (torch.device("cpu"), torch.float64)
    assert model_device_dtype(nn.ReLU()) == (torch.device("cpu"), torch.float32)  # no parameters
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        model_device_dtype("resnet18")
