"""Every technique runs where the model and input are, and matches its CPU answer.

Runs on each device this machine has: on the CPU always, on CUDA where
``torch.cuda.is_available()``. Nothing in the library names a device; this checks it.
"""

import copy

import pytest
import torch
import torchvision

import convlens


@pytest.fixture(scope="module")
def small_resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


METHODS = {
    "gradient": lambda m, x: convlens.gradient(m, x, [1, 2]),
    "smoothgrad": lambda m, x: convlens.smoothgrad(
        m, x, [1, 2], samples=4, generator=torch.Generator(x.device).manual_seed(0)),
    "deconvnet": lambda m, x: convlens.deconvnet(m, x, [1, 2]),
    "guided_backprop": lambda m, x: convlens.guided_backprop(m, x, [1, 2]),
    "gradcam": lambda m, x: convlens.gradcam(m, x, [1, 2], "layer3"),
    "guided_gradcam": lambda m, x: convlens.guided_gradcam(m, x, [1, 2], "layer3"),
    "occlusion": lambda m, x: convlens.occlusion(m, x, [1, 2], window=16, stride=16),
    "feature_maps": lambda m, x: convlens.feature_maps(m, x, "layer2"),
    "kernel_maps": lambda m, x: convlens.kernel_maps(m.conv1, x, out_channels=[0, 5]),
    # feature visualisation: the picture is made on the model's device from CPU randomness
    "maco": lambda m, x: convlens.maco(
        m, [convlens.ClassObjective(1), convlens.ChannelObjective("layer2", 3)], steps=2,
        image_size=32, crops=2, spectrum=_spectrum())[1].image,
    "accentuate": lambda m, x: convlens.accentuate(
        m, x[0].sigmoid(), convlens.ClassObjective(2), steps=2).image,
}


def _spectrum():
    from PIL import Image

    from convlens import natural_statistics

    generator = torch.Generator().manual_seed(0)
    photos = [Image.fromarray((torch.rand(40, 48, 3, generator=generator).numpy() * 255)
                              .astype("uint8")) for _ in range(2)]
    return natural_statistics.natural_spectrum(32, photos, cache=False)


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_runs_on_the_inputs_device(small_resnet, name, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    torch.manual_seed(1)
    x_cpu = torch.randn(2, 3, 64, 64)
    expected = METHODS[name](small_resnet, x_cpu)
    model = copy.deepcopy(small_resnet).to(device)
    result = METHODS[name](model, x_cpu.to(device))
    assert result.device.type == device
    assert result.shape == expected.shape
    # the smoothgrad noise comes from a generator on the device: other numbers on CUDA
    if name != "smoothgrad" or device == "cpu":
        assert torch.allclose(result.cpu(), expected, rtol=1e-3, atol=1e-4)
