"""Chunked vs naive SmoothGrad, timed in the same run (prints ratios, never asserts).

    python benchmarks/bench_attribution.py            # CPU-friendly: 16 samples
    python benchmarks/bench_attribution.py --full     # 50 samples

SmoothGrad: ``convlens.smoothgrad`` (noisy samples chunked into one batch) against one
forward/backward per sample. Model: torchvision resnet18 with random weights (timing does
not depend on the weights), one 224x224 image, on CUDA when available. Occlusion has its
own benchmark against Captum: ``benchmarks/bench_occlusion.py``. The seconds also go to
``benchmarks/results/smoothgrad-<date>-<commit>.json`` (``--json PATH``; see ``_results.py``).
"""

from __future__ import annotations

import argparse
import time

import _results
import torch
import torchvision

from convlens.saliency import gradient, smoothgrad


def timed(device, function, *args, **kwargs):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def naive_smoothgrad(model, x, target, samples, noise=0.15, seed=0):
    generator = torch.Generator(device=x.device).manual_seed(seed)
    sigma = noise * (x.max() - x.min())
    total = torch.zeros_like(x)
    for _ in range(samples):
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        total += gradient(model, x + sigma * eps, target)
    return total / samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="50 samples instead of 16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--json", default=None, help="where to write the results (default: "
                        "benchmarks/results/smoothgrad-<date>-<commit>.json)")
    args, _ = parser.parse_known_args()  # nox -s bench passes its options to every script
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    x = torch.randn(1, 3, args.size, args.size, device=device)
    target = 7
    print(f"device: {device} ({torch.cuda.get_device_name(device) if on_gpu else f'{torch.get_num_threads()} threads'}), "
          f"torch {torch.__version__}, resnet18 random weights, 1x3x{args.size}x{args.size}\n")

    samples = 50 if (args.full or on_gpu) else 16
    print(f"SmoothGrad, {samples} samples: chunked (convlens) vs one forward/backward per sample")
    header = f"{'method':>22} | {'seconds':>8} {'samples/s':>10} | {'speed-up':>8}"
    print(header + "\n" + "-" * len(header))
    gradient(model, x, target)  # warm-up of the backward pass
    loop_s, _ = timed(device, naive_smoothgrad, model, x, target, samples)
    print(f"{'per-sample loop':>22} | {loop_s:>8.2f} {samples / loop_s:>10.1f} | {1.0:>7.2f}x")
    rows = []
    for chunk in (8, 16):
        seeded = torch.Generator(device=device).manual_seed(0)
        chunk_s, _ = timed(device, smoothgrad, model, x, target, samples=samples,
                           batch_size=chunk, generator=seeded)
        print(f"{f'chunked batch_size={chunk}':>22} | {chunk_s:>8.2f} {samples / chunk_s:>10.1f} | "
              f"{loop_s / chunk_s:>7.2f}x")
        rows.append(_results.comparison(
            f"SmoothGrad, {samples} samples, ResNet-18 (random weights), 1x3x{args.size}x"
            f"{args.size}", "seconds", "s", ("one pass per sample", loop_s),
            (f"chunks of {chunk}", chunk_s)))
    _results.write(_results.result("smoothgrad", device, comparisons=rows), args.json)


if __name__ == "__main__":
    main()
