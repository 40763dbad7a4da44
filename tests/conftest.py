"""Shared pytest fixtures: torchvision architectures with seeded random weights, threads."""

from __future__ import annotations

import pytest
import torch
import torchvision


def _seeded_eval(builder, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return builder(weights=None).eval()


@pytest.fixture(scope="session")
def attribution_resnet18() -> torch.nn.Module:
    """torchvision resnet18 with random (seeded) weights, eval mode: its shared ``relu`` is
    in-place and called twice per block. Tests must not modify it."""
    return _seeded_eval(torchvision.models.resnet18)


@pytest.fixture(scope="session")
def attribution_alexnet() -> torch.nn.Module:
    """torchvision alexnet, random seeded weights, eval mode (needs inputs >= 63 px)."""
    return _seeded_eval(torchvision.models.alexnet)


@pytest.fixture(scope="session")
def attribution_vgg11() -> torch.nn.Module:
    """torchvision vgg11, random seeded weights, eval mode."""
    return _seeded_eval(torchvision.models.vgg11)


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module of small-tensor tests: avoids OpenMP contention
    on a busy 2-core machine. The previous setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
