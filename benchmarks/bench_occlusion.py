"""Occlusion: convlens vs Captum's ``Occlusion`` vs one forward pass per window, same run.

    python benchmarks/bench_occlusion.py            # the full table (tens of minutes on 2 cores)
    python benchmarks/bench_occlusion.py --quick    # smoke run: small images, one repeat
    python benchmarks/bench_occlusion.py --floor    # also: our multiply-add kernels' seconds

Besides the table, the results go to a JSON file (``--json PATH``, default
``benchmarks/results/occlusion-<date>-<commit>.json``, see ``_results.py``): the host, the
commit, the settings, and per model the seconds and ratios (and with ``--floor`` the
multiply-add seconds). The site's Benchmarks page is built from the files in
``benchmarks/results/``: commit a run there to publish it.

Per model (AlexNet, VGG16, ResNet-18 with random weights: timing does not depend on the
weights; the course model EfficientNet-Lite0 with its real weights), one 224x224 image,
window 32, stride 8 (625 positions):

* ours: ``convlens.occlusion(model, x, target, 32, 8)`` with its defaults (device batch
  size, the path ``occlusion_plan`` reports);
* Captum: ``captum.attr.Occlusion(model).attribute(x, sliding_window_shapes=(3, 32, 32),
  strides=(3, 8, 8), baselines=0, target=target, perturbations_per_eval=16)``;
* naive: the definition, one forward pass per window position (``torch.no_grad``).

Seconds are the median of ``--repeats`` alternating runs (ours, Captum, naive, ours, ...).
``max|d|/drop``: the largest difference between our map and the naive one, divided by the
largest naive drop (the issue's exactness criterion: at most 1e-4).

Then the lecture's setting for EfficientNet-Lite0: window 32, stride 2 (9409 positions),
ours vs Captum; the naive loop is timed on ``--sample`` positions spread over the image
and extrapolated linearly (every position costs one forward pass), and ours is compared
with it on those positions. 2 intra-op threads on a CPU (``torch.set_num_threads(2)``);
on CUDA when available (``--device``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import _results  # benchmarks/_results.py: where and how results are written
import torch
import torchvision

import convlens
from convlens.occlusion_maps import occlusion, occlusion_plan


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, function, *args, **kwargs):
    synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    synchronize(device)
    return time.perf_counter() - start, result


def naive(model, x, target, window, stride, positions=None):
    """Drops [len(positions)] (all positions when None), one forward pass each."""
    cols = (x.shape[3] - window) // stride + 1
    if positions is None:
        positions = range(((x.shape[2] - window) // stride + 1) * cols)
    drops = []
    with torch.no_grad():
        base = model(x)[0, target]
        for p in positions:
            top, left = p // cols * stride, p % cols * stride
            occluded = x.clone()
            occluded[:, :, top:top + window, left:left + window] = 0.0
            drops.append(base - model(occluded)[0, target])
    return torch.stack(drops).cpu()


def captum(model, x, target, window, stride):
    from captum.attr import Occlusion

    with torch.no_grad():
        return Occlusion(model).attribute(
            x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            baselines=0, target=target, perturbations_per_eval=16)


def ours(model, x, target, window, stride):
    return occlusion(model, x, target, window, stride)


#: the profiler's names of the kernels that do the multiply-adds: convolutions and the matrix
#: products of fully connected layers (their self time: a parent such as aten::linear adds
#: nothing of its own)
MULTIPLY_ADD_KERNELS = ("convolution", "addmm", "aten::mm", "aten::bmm", "matmul")


@contextlib.contextmanager
def quiet_stderr():
    """Standard error closed at the file descriptor: the profiler's C++ side logs its start
    and stop there, between the rows of the table."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def multiply_add_seconds(device, function, *args):
    """Seconds that the multiply-add kernels alone take in one call of ``function``:
    (convolution s, matrix product s), the profiler's self time (on CUDA, device time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with quiet_stderr(), profile(activities=activities) as prof:
        function(*args)
        synchronize(device)
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    conv = products = 0.0
    for e in prof.key_averages():
        seconds = getattr(e, attribute) / 1e6
        if "convolution" in e.key:
            conv += seconds
        elif any(name in e.key for name in MULTIPLY_ADD_KERNELS[1:]):
            products += seconds
    return conv, products


def models(quick):
    torch.manual_seed(0)
    course = convlens.models.load("efficientnet_lite0")
    built = [(name, getattr(torchvision.models, name)(weights=None).eval())
             for name in ("alexnet", "vgg16", "resnet18")]
    return built + [("efficientnet_lite0", course.model)], course


def floor(args, device, model, x, target, window, stride, seconds):
    """The ``--floor`` columns and their JSON entry (``None`` without ``--floor``), from one
    profiled run of ours: the seconds of its convolutions, of its matrix products (fully
    connected layers), and their sum over Captum's median: the ratio ours would reach if
    nothing but the multiply-adds cost time."""
    if not args.floor:
        return "", None
    conv, products = multiply_add_seconds(device, ours, model, x, target, window, stride)
    over = (conv + products) / seconds["captum"]
    return (f" | {conv:>6.2f} {products:>6.2f} {over:>5.3f}x",
            {"convolution_seconds": conv, "matrix_product_seconds": products,
             "counts": "convolutions and matrix products", "over_captum": over})


def row(name, plan, positions, seconds, error, floor_seconds=None) -> dict:
    """One model's results for the JSON file (``floor``: with ``--floor``)."""
    data = {"model": name, "path": plan.path, "recomputed_fraction": plan.recomputed_fraction,
            "positions": positions, "seconds": seconds,
            "ratios": {"ours_over_captum": seconds["ours"] / seconds["captum"],
                       "naive_over_ours": seconds["naive"] / seconds["ours"]},
            "max_error_over_largest_drop": error}
    if floor_seconds:
        data["floor"] = floor_seconds
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 96-px images, stride 16, one repeat, small sample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=96,
                        help="naive positions timed at stride 2 (extrapolated)")
    parser.add_argument("--lecture-repeats", type=int, default=1,
                        help="repeats of the stride-2 comparison (minutes each on a CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="alexnet,vgg16,resnet18,efficientnet_lite0",
                        help="comma-separated subset of the four models at stride 8")
    parser.add_argument("--floor", action="store_true",
                        help="also profile one run of ours: its convolutions' seconds and "
                             "those over Captum's (no cost but the convolutions)")
    parser.add_argument("--no-lecture", action="store_true", help="skip the stride-2 comparison")
    parser.add_argument("--json", default=None,
                        help="where to write the results as JSON (default: "
                             "benchmarks/results/occlusion-<date>-<commit>.json)")
    args, _ = parser.parse_known_args()  # nox -s bench passes its options to every script
    device = torch.device(args.device)
    torch.set_num_threads(2)
    size, window, stride, lecture_stride = (96, 32, 16, 8) if args.quick else (224, 32, 8, 2)
    repeats = 1 if args.quick else args.repeats
    sample = 8 if args.quick else args.sample
    target = 0

    zoo, course = models(args.quick)
    image = convlens.images.prepare(convlens.images.load("chelsea"), course.preprocess)
    x_course = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear",
                                               antialias=True).to(device)
    torch.manual_seed(1)
    x_random = torch.randn(1, 3, size, size, device=device)
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{torch.get_num_threads()} threads")
    print(f"device: {device} ({hardware}), torch {torch.__version__}, image 1x3x{size}x{size}, "
          f"window {window}, median of {repeats} alternating repeat(s)\n")

    header = (f"{'model':>18} {'path':>11} {'recomp':>6} {'pos':>5} | {'ours s':>8} {'Captum s':>9} "
              f"{'naive s':>9} | {'ours/Captum':>11} {'naive/ours':>10} | {'max|d|/drop':>11}"
              + (f" | {'conv s':>6} {'mm s':>6} {'floor':>6}" if args.floor else ""))
    print(f"window {window}, stride {stride}\n{header}\n{'-' * len(header)}")
    chosen = args.models.split(",")
    unknown = set(chosen) - {name for name, _ in zoo}
    if unknown:
        parser.error(f"--models: unknown {', '.join(sorted(unknown))}")
    settings = {"image": [1, 3, size, size], "window": window, "stride": stride,
                "repeats": repeats, "quick": args.quick, "target": target,
                "captum_perturbations_per_eval": 16, "statistic": "median"}
    rows, lecture = [], None
    for name, model in zoo:
        if name not in chosen:
            continue
        model = model.to(device)
        x = x_course if name == "efficientnet_lite0" else x_random
        with torch.no_grad():  # warm-up: kernel selection, allocator, the trace
            model(x)
        plan = occlusion_plan(model, x, window, stride)
        ours(model, x, target, window, stride)
        times = {"ours": [], "captum": [], "naive": []}
        for _ in range(repeats):
            t, mine = timed(device, ours, model, x, target, window, stride)
            times["ours"].append(t)
            times["captum"].append(timed(device, captum, model, x, target, window, stride)[0])
            t, reference = timed(device, naive, model, x, target, window, stride)
            times["naive"].append(t)
        s = {k: statistics.median(v) for k, v in times.items()}
        error = float((mine[0].flatten().cpu() - reference).abs().max() / reference.abs().max())
        columns, floor_seconds = floor(args, device, model, x, target, window, stride, s)
        print(f"{name:>18} {plan.path:>11} {plan.recomputed_fraction:>6.2f} {reference.numel():>5} | "
              f"{s['ours']:>8.2f} {s['captum']:>9.2f} {s['naive']:>9.2f} | "
              f"{s['ours'] / s['captum']:>10.3f}x {s['naive'] / s['ours']:>9.2f}x | {error:>11.1e}"
              + columns)
        rows.append(row(name, plan, reference.numel(), s, error, floor_seconds))

    if not args.no_lecture:
        lecture = run_lecture(args, device, zoo, x_course, size, window, lecture_stride, sample,
                              target)
    _results.write(_results.result("occlusion", device, settings=settings, models=rows,
                                   lecture=lecture), args.json)


def run_lecture(args, device, zoo, x_course, size, window, lecture_stride, sample, target):
    """EfficientNet-Lite0 at the lecture's stride: ours vs Captum vs the naive loop on a
    sample of positions (extrapolated); the JSON entry."""
    model = zoo[-1][1]
    x = x_course
    side = (size - window) // lecture_stride + 1
    positions = side * side
    picks = torch.linspace(0, positions - 1, min(sample, positions)).round().long().unique()
    print(f"\nEfficientNet-Lite0 (course weights), the lecture's window {window}, stride "
          f"{lecture_stride}: {positions} positions; naive timed on {picks.numel()} of them and "
          "extrapolated (*)")
    header = (f"{'path':>11} | {'ours s':>8} {'Captum s':>9} {'naive s*':>9} | {'ours/Captum':>11} "
              f"{'naive/ours':>10} | {'max|d|/drop':>11}")
    print(f"{header}\n{'-' * len(header)}")
    plan = occlusion_plan(model, x, window, lecture_stride)
    times = {"ours": [], "captum": [], "naive": []}
    for _ in range(1 if args.quick else args.lecture_repeats):
        t, mine = timed(device, ours, model, x, target, window, lecture_stride)
        times["ours"].append(t)
        times["captum"].append(timed(device, captum, model, x, target, window, lecture_stride)[0])
        t, reference = timed(device, naive, model, x, target, window, lecture_stride,
                             picks.tolist())
        times["naive"].append(t * positions / picks.numel())
    s = {k: statistics.median(v) for k, v in times.items()}
    error = float((mine[0].flatten().cpu()[picks] - reference).abs().max() / reference.abs().max())
    print(f"{plan.path:>11} | {s['ours']:>8.2f} {s['captum']:>9.2f} {s['naive']:>9.2f} | "
          f"{s['ours'] / s['captum']:>10.3f}x {s['naive'] / s['ours']:>9.2f}x | {error:>11.1e}")
    print("\nrecomp: multiply-adds (convolutions and fully connected layers) computed per "
          "occluded copy / those of a full forward pass (incremental path; 1 for batched): at "
          "equal speed per multiply-add, the lowest ours/(whole copies) can go. The goals "
          "(issue 12): ours/Captum <= 0.25, max|d|/drop <= 1e-4, the stride-2 map within 60 s "
          "on a 2-core CPU." + (" conv s, mm s: seconds in convolutions and in matrix "
                                "products (fully connected layers) during one profiled run of "
                                "ours; floor: (conv s + mm s) / Captum s, where ours would be "
                                "if nothing else cost time." if args.floor else ""))
    return {**row("efficientnet_lite0", plan, positions, s, error), "stride": lecture_stride,
            "naive_positions_timed": picks.numel(), "naive_extrapolated": True}


if __name__ == "__main__":
    main()
