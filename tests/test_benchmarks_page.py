"""The Benchmarks page (coursebuild.benchmarks): made from result files, newest run first,
with the numbers of the files, one figure with alt text, and a clear error for a bad file."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from coursebuild import assemble, benchmarks

ROOT = Path(__file__).resolve().parents[1]


def occlusion_result(date, commit, seconds) -> dict:
    """A small occlusion result in the format bench_occlusion.py writes."""
    models = [{"model": name, "path": "incremental", "recomputed_fraction": 0.5,
               "positions": 625, "seconds": dict(zip(("ours", "captum", "naive"), s)),
               "ratios": {"ours_over_captum": s[0] / s[1], "naive_over_ours": s[2] / s[0]},
               "max_error_over_largest_drop": 3.3e-05} for name, s in seconds.items()]
    return {"benchmark": "occlusion", "version": 1, "date": date,
            "command": "bench_occlusion.py --quick", "commit": commit, "dirty": False,
            "host": {"cpu": "Test CPU", "logical_cpus": 2, "threads": 2, "device": "cpu"},
            "settings": {"image": [1, 3, 96, 96], "window": 32, "stride": 16, "repeats": 1,
                         "statistic": "median"},
            "models": models, "lecture": None}


def write(folder: Path, name: str, data) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data) if not isinstance(data, str) else data)


@pytest.fixture
def two_runs(tmp_path) -> Path:
    results = tmp_path / "results"
    write(results, "occlusion-2026-01-05-aaaaaaa.json", occlusion_result(
        "2026-01-05T10:00:00+00:00", "a" * 40, {"alexnet": (1.25, 5.5, 15.75)}))
    write(results, "occlusion-2026-03-07-bbbbbbb.json", occlusion_result(
        "2026-03-07T10:00:00+00:00", "b" * 40, {"alexnet": (2.5, 4.0, 16.5),
                                                  "resnet18": (4.75, 12.5, 18.25)}))
    return results


def test_page_has_both_runs_newest_first_with_their_numbers(two_runs):
    files = benchmarks.files(two_runs, None)
    page = files[benchmarks.PAGE].decode()
    newer, older = page.index("### 2026-03-07, commit `bbbbbbb`"), page.index(
        "### 2026-01-05, commit `aaaaaaa`")
    assert newer < older
    newer_part, older_part = page[newer:older], page[older:]
    for number in ("2.50 s", "4.00 s", "16.50 s", "4.75 s", "12.50 s", "18.25 s",
                   f"**{2.5 / 4.0:.3f}×**", f"**{4.75 / 12.5:.3f}×**", "3.3e-05"):
        assert number in newer_part, number
    for number in ("1.25 s", "5.50 s", "15.75 s", f"**{1.25 / 5.5:.3f}×**"):
        assert number in older_part, number
    assert "resnet18" not in older_part  # each table holds its own run's models only
    assert "`nox -s bench -- occlusion`" in page  # how to reproduce


def test_the_figure_is_written_and_referenced_with_alt_text(two_runs):
    files = benchmarks.files(two_runs, None)
    page = files[benchmarks.PAGE].decode()
    svg = files[benchmarks.FIGURE]
    assert svg.startswith(b"<?xml") and b"<svg" in svg
    assert b"resnet18" in svg and b"Captum" in svg  # the newest run's models, the legend
    img = re.search(r'<img src="([^"]+)" alt="([^"]+)"', page)
    assert img, "the page shows the figure as an <img> with alt text"
    assert img.group(1) == benchmarks.FIGURE.split("/", 1)[1]  # beside the page's URL
    alt = img.group(2)
    assert "log scale" in alt and "resnet18: convlens 4.75 s, Captum 12.50 s" in alt
    assert "<figcaption" in page and "2026-03-07" in page[page.index("<figcaption"):]
    assert benchmarks.files(two_runs, None) == files  # same input, same bytes (no churn)


def test_the_hand_written_part_surrounds_the_tables(two_runs):
    intro = f"# Benchmarks\n\nBefore.\n\n{benchmarks.PLACEHOLDER}\n\nAfter.\n"
    page = benchmarks.files(two_runs, intro)[benchmarks.PAGE].decode()
    assert page.index("Before.") < page.index("### 2026-03-07") < page.index("After.")
    assert benchmarks.PLACEHOLDER not in page


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not a JSON benchmark result"),
    (json.dumps({"benchmark": "occlusion", "version": 1}), "no 'date'"),
    (json.dumps({**occlusion_result("2026-01-01", None, {"vgg16": (1.0, 2.0, 3.0)}),
                 "models": [{"model": "vgg16", "seconds": {"ours": 1.0}}]}),
     "models[0] needs 'seconds'"),
])
def test_a_malformed_result_names_the_file_and_the_problem(two_runs, text, problem):
    write(two_runs, "occlusion-broken.json", text)
    with pytest.raises(benchmarks.ResultError) as caught:
        benchmarks.files(two_runs, None)
    assert "occlusion-broken.json" in str(caught.value) and problem in str(caught.value)


def test_no_results_still_make_a_page(tmp_path):
    files = benchmarks.files(tmp_path / "none", None)
    assert set(files) == {benchmarks.PAGE}
    assert "No benchmark results yet" in files[benchmarks.PAGE].decode()


def test_what_the_bench_scripts_write_is_what_the_page_reads(tmp_path):
    """benchmarks/_results.py (used by every bench script): the file name carries the
    benchmark, date and commit, a taken name is not overwritten, and a comparison result
    loads and shows its values."""
    spec = importlib.util.spec_from_file_location("_results", ROOT / "benchmarks" / "_results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    data = {"benchmark": "smoothgrad", "version": 1, "date": "2026-02-03T04:05:06+00:00",
            "command": "bench_attribution.py", "commit": "c" * 40, "dirty": True,
            "host": {"cpu": "Test CPU"},
            "comparisons": [results.comparison("SmoothGrad, 16 samples", "seconds", "s",
                                               ("one pass per sample", 2.0), ("chunks", 1.5))]}
    first = results.write(data, results.default_path(data, tmp_path))
    second = results.write(data, results.default_path(data, tmp_path))
    assert first.name == "smoothgrad-2026-02-03-ccccccc-dirty.json"
    assert second.name == "smoothgrad-2026-02-03-ccccccc-dirty-2.json"
    page = benchmarks.files(tmp_path, None)[benchmarks.PAGE].decode()
    assert "one pass per sample: 2.00 s" in page and "**0.750×**" in page
    assert "with local changes" in page


def test_the_committed_results_load_and_the_docs_get_the_page(tmp_path):
    """The files in benchmarks/results/ are valid, and assemble writes the page and its
    figure into the docs (from site_assets/benchmarks.md, placeholder filled)."""
    assert benchmarks.load(ROOT / "benchmarks" / "results")
    out = tmp_path / "docs"
    info = {"lessons": [], "versions": {}, "model": "m", "weights": "w", "device": "cpu",
            "seed": 0, "settings": "s"}
    assert assemble.assemble(out, ROOT / "site_assets", {}, info,
                             results=ROOT / "benchmarks" / "results") == []
    page = (out / benchmarks.PAGE).read_text()
    assert page.startswith("# Benchmarks") and benchmarks.PLACEHOLDER not in page
    assert (out / benchmarks.FIGURE).is_file()
    assert "occlusion-2026-12-02-9b64520.json" in page


def class_recipe_result() -> dict:
    """A small class-recipe result in the format bench_class_recipe.py writes."""
    judges = ["efficientnet_lite1", "efficientnet_lite2"]
    rows = [{"steps": 0, "what": "no objective: random phase", "seconds": None,
             "self_top1": None, judges[0]: {"top1": 0.0, "top5": 0.0},
             judges[1]: {"top1": 0.0, "top5": 0.25}, "median_rank": 412.5},
            {"steps": 96, "what": "visualize_class, 96 steps", "seconds": 6.54,
             "self_top1": 0.75, judges[0]: {"top1": 0.25, "top5": 0.5},
             judges[1]: {"top1": 0.125, "top5": 0.375}, "median_rank": 17.0}]
    return {"benchmark": "class-recipe", "version": 1, "date": "2026-12-05T12:00:00+00:00",
            "command": "bench_class_recipe.py", "commit": "d" * 40, "dirty": False,
            "host": {"cpu": "Test CPU"}, "model": "efficientnet_lite0", "judges": judges,
            "classes": ["espresso", "lemon"], "recipe": {"steps": 96}, "rows": rows}


def test_a_class_recipe_run_shows_each_budget_with_its_rates(tmp_path):
    write(tmp_path, "class-recipe-2026-12-05-ddddddd.json", class_recipe_result())
    page = benchmarks.files(tmp_path, None)[benchmarks.PAGE].decode()
    assert "## Class visualisation: steps against transfer" in page
    assert "| 0 (no objective: random phase) | – | – | 0% / 0% | 0% / 25% | 412 |" in page
    assert "| 96 | 6.5 | 75% | 25% / 50% | 12% / 38% | 17 |" in page
    assert "`efficientnet_lite0`, 2 classes: espresso, lemon." in page


def test_a_class_recipe_run_without_rows_names_the_field(tmp_path):
    data = class_recipe_result()
    del data["rows"]
    write(tmp_path, "class-recipe-broken.json", data)
    with pytest.raises(benchmarks.ResultError, match="class-recipe-broken.json: no 'rows' field"):
        benchmarks.files(tmp_path, None)
