"""Batched vs naive attribution loops, timed in the same run (prints ratios, never asserts).

    python benchmarks/bench_attribution.py            # CPU-friendly: a few minutes on 2 cores
    python benchmarks/bench_attribution.py --full     # time every position of every setting

Occlusion: ``convlens.occlusion`` (masked copies built by broadcasting, ``batch_size`` per
forward pass) against one forward pass per window position. SmoothGrad:
``convlens.smoothgrad`` (noisy samples chunked into one batch) against one forward/backward
per sample. Model: torchvision resnet18 with random weights (timing does not depend on
the weights), one 224x224 image, on CUDA when available. Without ``--full`` the slow
columns are timed on the first positions only and extrapolated linearly (marked ``*``):
every window position costs the same forward pass.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from convlens.occlusion import occlusion
from convlens.saliency import gradient, smoothgrad


def timed(device, function, *args, **kwargs):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def naive_occlusion(model, x, target, window, stride, positions, fill=0.0):
    """One forward pass per window position, for the first ``positions`` positions."""
    cols = (x.shape[3] - window) // stride + 1
    drops = []
    with torch.no_grad():
        base = model(x)[0, target]
        for p in range(positions):
            top, left = p // cols * stride, p % cols * stride
            occluded = x.clone()
            occluded[:, :, top : top + window, left : left + window] = fill
            drops.append(base - model(occluded)[0, target])
    return torch.stack(drops)


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
    parser.add_argument("--full", action="store_true", help="no extrapolation")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64, help="occlusion batch size")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    x = torch.randn(1, 3, args.size, args.size, device=device)
    target, window = 7, 32
    with torch.no_grad():  # warm-up (kernel selection, allocator)
        model(x.repeat(args.batch_size, 1, 1, 1))
    print(f"device: {device} ({torch.cuda.get_device_name(device) if on_gpu else f'{torch.get_num_threads()} threads'}), "
          f"torch {torch.__version__}, resnet18 random weights, 1x3x{args.size}x{args.size}, "
          f"occlusion batch_size={args.batch_size}\n")

    print("Occlusion: batched (convlens) vs naive one-forward-per-window loop")
    header = f"{'window/stride':>13} {'positions':>9} | {'batched s':>10} {'win/s':>8} | {'naive s':>10} {'win/s':>8} | {'speed-up':>8}"
    print(header + "\n" + "-" * len(header))
    batched_rate = None
    for stride in (16, 2):
        side = (args.size - window) // stride + 1
        positions = side * side
        if args.full or on_gpu or batched_rate is None:
            batched_s, _ = timed(device, occlusion, model, x, target, window, stride,
                                 batch_size=args.batch_size)
            batched_rate, batched_mark = positions / batched_s, " "
        else:
            batched_s, batched_mark = positions / batched_rate, "*"
        timed_positions = positions if (args.full or on_gpu) else min(positions, 24)
        naive_part, _ = timed(device, naive_occlusion, model, x, target, window, stride,
                              timed_positions)
        naive_s = naive_part * positions / timed_positions
        naive_mark = " " if timed_positions == positions else "*"
        print(f"{f'{window}/{stride}':>13} {positions:>9} | {batched_s:>9.2f}{batched_mark} "
              f"{positions / batched_s:>8.1f} | {naive_s:>9.2f}{naive_mark} "
              f"{positions / naive_s:>8.1f} | {naive_s / batched_s:>7.2f}x")
    if not (args.full or on_gpu):
        print("* extrapolated linearly: naive loop timed on the first 24 positions; batched "
              "32/2 from the 32/16 run's windows/s (same image, window and batch size).")

    samples = 50 if (args.full or on_gpu) else 16
    print(f"\nSmoothGrad, {samples} samples: chunked (convlens) vs one forward/backward per sample")
    header = f"{'method':>22} | {'seconds':>8} {'samples/s':>10} | {'speed-up':>8}"
    print(header + "\n" + "-" * len(header))
    gradient(model, x, target)  # warm-up of the backward pass
    loop_s, _ = timed(device, naive_smoothgrad, model, x, target, samples)
    print(f"{'per-sample loop':>22} | {loop_s:>8.2f} {samples / loop_s:>10.1f} | {1.0:>7.2f}x")
    for chunk in (8, 16):
        seeded = torch.Generator(device=device).manual_seed(0)
        chunk_s, _ = timed(device, smoothgrad, model, x, target, samples=samples,
                           batch_size=chunk, generator=seeded)
        print(f"{f'chunked batch_size={chunk}':>22} | {chunk_s:>8.2f} {samples / chunk_s:>10.1f} | "
              f"{loop_s / chunk_s:>7.2f}x")


if __name__ == "__main__":
    main()
