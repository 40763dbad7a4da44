"""Memory and time of kernel maps on VGG16's features.10 (128 -> 256 channels, 56 x 56).

Compares, in one run:

- ``full grouped conv``: every C_in x C_out kernel map in one depthwise convolution
  (the construction of the reference forum thread, generalised), then reordered;
- ``kernel_maps, all``: the same maps, computed ``chunk`` filters at a time;
- ``kernel_maps, k filters``: only a few output channels, as a lesson needs.

Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the peak resident
set size (``VmHWM`` in ``/proc/self/status``, reset through ``/proc/self/clear_refs``)
minus the resident size before the call, next to the analytic size of the tensors
each method creates. Printed as ratios to the full construction.

    python benchmarks/bench_kernel_maps.py

The peaks and seconds also go to ``benchmarks/results/kernel-maps-<date>-<commit>.json``
(``--json PATH``; see ``_results.py``).
"""

from __future__ import annotations

import argparse
import gc
import time

import _results
import torch
import torch.nn.functional as F
import torchvision

from convlens.kernel_decomposition import kernel_maps

MIB = 2**20


def full_grouped_conv(conv, x):
    """All C_in x C_out maps from one depthwise conv (groups=1 conv, no chunking)."""
    c_out, c_in, kh, kw = conv.weight.shape
    weight = conv.weight.transpose(0, 1).reshape(c_in * c_out, 1, kh, kw)
    out = F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, groups=c_in)
    n, _, h, w = out.shape
    return out.reshape(n, c_in, c_out, h, w).transpose(1, 2).contiguous()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / MIB


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(fn, device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mib()
        _reset_peak()
    start = time.perf_counter()
    with torch.no_grad():
        result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / MIB
    else:
        peak = _peak_rss_mib() - base
    shape = tuple(result.shape)
    del result
    return seconds, peak, shape


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="where to write the results (default: "
                        "benchmarks/results/kernel-maps-<date>-<commit>.json)")
    args, _ = parser.parse_known_args()  # nox -s bench passes its options to every script
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    conv = torchvision.models.vgg16(weights=None).features[10].to(device).eval()
    x = torch.randn(1, conv.in_channels, 56, 56, device=device)
    c_out, c_in = conv.out_channels, conv.in_channels
    h_out, w_out = 56, 56
    bytes_per = x.element_size()
    picked = [0, 17, 101, 255]
    map_mib = h_out * w_out * bytes_per / MIB

    runs = [
        ("full grouped conv", lambda: full_grouped_conv(conv, x), 2 * c_in * c_out * map_mib),
        ("kernel_maps, all (chunk 64)", lambda: kernel_maps(conv, x), (c_out + 2 * 64) * c_in * map_mib),
        (f"kernel_maps, {len(picked)} filters", lambda: kernel_maps(conv, x, picked), 3 * len(picked) * c_in * map_mib),
    ]
    measure(runs[2][1], device)  # warm-up
    results = [(name, *measure(fn, device), analytic) for name, fn, analytic in runs]

    kind = "CUDA max_memory_allocated" if device.type == "cuda" else "CPU peak RSS delta"
    print(f"VGG16 features.10 ({c_in}->{c_out}, 3x3, 56x56 maps), batch 1, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"peak memory: {kind}; analytic = result + temporaries, an upper bound (float32)\n")
    header = f"{'method':30} {'shape':>24} {'time s':>8} {'peak MiB':>9} {'analytic MiB':>13} {'time ratio':>10} {'mem ratio':>9}"
    print(header)
    print("-" * len(header))
    full_time, full_peak = results[0][1], results[0][2]
    for name, seconds, peak, shape, analytic in results:
        print(
            f"{name:30} {str(shape):>24} {seconds:8.3f} {peak:9.1f} {analytic:13.1f} "
            f"{seconds / full_time:10.3f} {peak / full_peak:9.3f}"
        )

    where = f"VGG16 features.10 ({c_in}->{c_out}, 3x3, 56x56 maps)"
    rows = [_results.comparison(f"{name}, {where}", measure, unit,
                                (results[0][0], results[0][column]), (name, value[column]))
            for value in results[1:] for name in [value[0]]
            for measure, unit, column in (("seconds", "s", 1), (f"peak memory ({kind})", "MiB", 2))]
    _results.write(_results.result("kernel-maps", device, comparisons=rows), args.json)


if __name__ == "__main__":
    main()
