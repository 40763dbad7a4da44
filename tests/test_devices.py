"""Every technique runs where the model and input are, and matches its CPU answer.

Runs on each device this machine has: on the CPU always, on CUDA where
``torch.cuda.is_available()``. Nothing in the library names a device; this checks it.
"""

import copy
import re

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


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def values_agree(cpu: str, cuda: str, relative: float = 0.02, absolute: float = 0.01) -> bool:
    """Two recorded texts agree: equal, or the same words around numbers that differ by at
    most ``relative`` (or ``absolute``), since GPU kernels round differently."""
    if cpu == cuda:
        return True
    a, b = NUMBER.findall(cpu), NUMBER.findall(cuda)
    if len(a) != len(b) or NUMBER.sub("#", cpu) != NUMBER.sub("#", cuda):
        return False
    return all(abs(float(x) - float(y)) <= max(absolute, relative * abs(float(x)))
               for x, y in zip(a, b))


def test_values_agree_within_the_tolerance_only():
    assert values_agree("0.51 of the map", "0.5102 of the map")
    assert values_agree("12%", "12%") and not values_agree("12%", "15%")
    assert not values_agree("stride 4", "stride 2") and not values_agree("a cat", "a dog")


@pytest.mark.slow
def test_a_lesson_on_cuda_records_the_cpu_values_and_holds_every_claim(tmp_path, monkeypatch):
    """The default model is strict on every device: lesson 08 built on CUDA passes its checks
    (a false claim would fail the build) and records the CPU's values within the tolerance
    of GPU rounding; timings are left out."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    from pathlib import Path

    from coursebuild.pipeline import build

    root = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("CONVLENS_STRICT", raising=False)
    records = {}
    for device in ("cpu", "cuda"):
        results = build(lessons_dir=root / "lessons", out=tmp_path / device / "docs",
                        cache=tmp_path / device / "cache", assets=root / "site_assets",
                        device=device, only=["08"], log=lambda *a, **k: None)
        [result] = [r for r in results if r.slug.startswith("08-")]
        assert result.cache == "miss" and result.entry.manifest["notes"] == []
        manifest = result.entry.manifest
        records[device] = {k: v for k, v in manifest["records"].items()
                           if k not in manifest.get("timings", [])}
    assert records["cpu"].keys() == records["cuda"].keys()
    differ = {k: (v, records["cuda"][k]) for k, v in records["cpu"].items()
              if not values_agree(v, records["cuda"][k])}
    assert not differ, f"CUDA and CPU disagree beyond rounding: {differ}"
