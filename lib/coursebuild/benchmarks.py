"""The Benchmarks page: ``benchmarks.md`` and its figure, made from ``benchmarks/results/``.

Every ``*.json`` there is one benchmark run (written by ``nox -s bench`` through
``benchmarks/_results.py``, or transcribed from an older text, which its ``source`` field
says). The page has one section per benchmark and, inside it, one table per run (host and
commit), newest first; runs without a date come last. The hand-written part of the page is
``site_assets/benchmarks.md``: the line ``<!-- benchmark results -->`` there becomes the
tables (without the line, they go at its end; without the file, the page is tables only).

One figure, ``benchmarks/occlusion.svg`` beside the page: the seconds of convlens, Captum
and the naive loop per model in the newest occlusion run, as bars on a log scale, drawn
with matplotlib's SVG writer (Agg backend, no pyplot, no display) with its date and ids fixed,
so an unchanged result gives the same bytes and ``mkdocs serve`` does not churn.

A file that is not JSON, or lacks a field the page shows, raises :class:`ResultError`
naming the file and the field.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

from coursebuild.figures import figure_html

PAGE = "benchmarks.md"
FIGURE = "benchmarks/occlusion.svg"  # beside the page: its URL is benchmarks/
PLACEHOLDER = "<!-- benchmark results -->"
COMMON = ("benchmark", "version", "date", "command", "commit", "host")
# what each kind of result must hold besides COMMON (the fields the page shows)
REQUIRED = {"occlusion": ("models",), "site-build": ("steps",),
            "class-recipe": ("model", "judges", "classes", "recipe", "rows")}
TITLES = {"occlusion": "Occlusion: convlens, Captum and the naive loop",
          "site-build": "The site build and the tests", "smoothgrad": "SmoothGrad",
          "kernel-maps": "Kernel maps", "class-recipe": "Class visualisation: steps against transfer"}
ABOUT = {
    "occlusion": (
        "Seconds to compute one occlusion map of one image (window and stride as given "
        "under each table; 625 positions at stride 8). **ours** is `convlens.occlusion` with "
        "its defaults, **Captum** is Captum's `Occlusion` with 16 occluded copies per pass, "
        "**naive** is one forward pass per window position. Each is the median of the "
        "repeats, alternating the three. **ours / Captum** below 1 means convlens is faster. "
        "**recomputed** is the share of a full pass's multiply-adds that convlens still "
        "computes per occluded copy. **floor** is the seconds of our multiply-add kernels "
        "alone over Captum's: the ratio we would reach if nothing else cost time. "
        "**max \\|d\\| / drop** is the largest difference from the naive map over its "
        "largest drop (the exactness criterion: at most 1e-4)."),
    "site-build": (
        "Wall-clock seconds of a build from a clean clone: the environment, the nine "
        "lessons from a cold cache, the site, the tests. Per lesson: the seconds its "
        "execution took on the CPU."),
    "class-recipe": (
        "What `convlens.visualize_class` gives for its time, per step budget (every other "
        "setting `CLASS_RECIPE`'s): **s/picture** is the median wall-clock seconds of one "
        "picture; **itself** the share of the pictures the visualised model classifies as their "
        "class; then, per judge (other networks with their own trained weights), the share "
        "that judge ranks first (top-1) and in its top 5; **median rank** is the judges' "
        "median rank of the class, 1 best, of 1000. The row with 0 steps is the "
        "no-objective baseline: MACO's starting point, the photos' spectrum with a random "
        "phase. With one picture per class, one picture moves a rate by 1/classes."),
    "comparison": (
        "One measure of convlens against a plain baseline in the same run; "
        "**convlens / baseline** below 1 means convlens needs less."),
}
WRITES = ("it writes a new file to `benchmarks/results/`; commit it to publish it here")
REPRODUCE = {
    "occlusion": f"To reproduce: `nox -s bench -- occlusion` ({WRITES}).",
    "smoothgrad": f"To reproduce: `nox -s bench -- attribution` ({WRITES}).",
    "kernel-maps": f"To reproduce: `nox -s bench -- kernel_maps` ({WRITES}).",
    "class-recipe": f"To reproduce: `nox -s bench -- class_recipe` ({WRITES}).",
    "site-build": "To measure again: `CI=true bash .ci/run` in a clean clone with nothing else "
                  "running; no script writes these files, so add one by hand in the same format.",
}


class ResultError(ValueError):
    """A result file the page cannot show; the message names the file and the problem."""


def load(folder: Path) -> list[dict]:
    """Every ``folder/*.json``, checked; each gets ``_file``, its name. None: ``[]``."""
    results = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ResultError(f"{path}: not a JSON benchmark result ({exc})") from None
        if not isinstance(data, dict):
            raise ResultError(f"{path}: not a JSON benchmark result (a JSON object expected)")
        kind = data.get("benchmark")
        needed = COMMON + REQUIRED.get(kind, ("comparisons",))
        missing = [name for name in needed if name not in data]
        if missing:
            raise ResultError(f"{path}: no {', '.join(repr(m) for m in missing)} field "
                              "(see benchmarks/_results.py for the format)")
        for i, row in enumerate(data.get("models") or []):
            seconds = row.get("seconds") if isinstance(row, dict) else None
            if not (isinstance(seconds, dict) and all(
                    isinstance(seconds.get(k), (int, float)) for k in ("ours", "captum", "naive"))):
                raise ResultError(f"{path}: models[{i}] needs 'seconds' with numbers for "
                                  "'ours', 'captum' and 'naive'")
        results.append({**data, "_file": path.name})
    return results


def newest_first(results: list[dict]) -> list[dict]:
    """Dated runs newest first (ISO dates sort as text), then undated ones by file name."""
    dated = sorted((r for r in results if r.get("date")), key=lambda r: r["date"], reverse=True)
    return dated + sorted((r for r in results if not r.get("date")), key=lambda r: r["_file"])


def _number(value, digits=2, suffix="") -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value}{suffix}"
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return f"{value:.1e}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def _host(host: dict) -> str:
    parts = [host.get("description") or host.get("cpu")]
    parts += [f"{host['logical_cpus']} logical CPUs" if host.get("logical_cpus") else None,
              f"{host['threads']} threads" if host.get("threads") else None,
              host.get("accelerator") or (f"device {host['device']}" if host.get("device")
                                          else None)]
    parts += [f"{name} {host[key]}" for key, name in (("python", "Python"), ("torch", "torch"))
              if host.get(key)]
    return ", ".join(p for p in parts if p) or "unknown host"


def run_heading(r: dict) -> list[str]:
    """A run's heading and the line that says where, how and from what it was measured."""
    date = r["date"][:10] if r.get("date") else "date unknown"
    commit = f"commit `{r['commit'][:7]}`" if r.get("commit") else "commit unknown"
    dirty = " with local changes" if r.get("dirty") else ""
    lines = [f"### {date}, {commit}{dirty}", "",
             f"Host: {_host(r['host'] or {})}. Command: `{r['command']}`. "
             f"File: `benchmarks/results/{r['_file']}`."]
    if r.get("source"):
        lines[-1] += f" *Not a fresh run: {r['source']}.*"
    notes = [f"- {note}" for note in r.get("notes") or []]
    return lines + ([""] + notes if notes else []) + [""]


def occlusion_table(r: dict) -> list[str]:
    """Two tables per run, so that each fits the page's column: the seconds, then the
    ratios and the exactness."""
    s = r.get("settings") or {}
    rows = [*r["models"]] + ([r["lecture"]] if r.get("lecture") else [])
    seconds = ["| model | positions | ours | Captum | naive |", "|---|---:|---:|---:|---:|"]
    ratios = ["| model | ours / Captum | naive / ours | recomputed | floor | "
              "max \\|d\\| / drop |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        name = f"`{row['model']}`"
        if "stride" in row:
            name += f", stride {row['stride']}"
        sec, floor = row["seconds"], row.get("floor") or {}
        naive = _number(sec["naive"], suffix=" s")
        if row.get("naive_extrapolated"):
            naive += f" (from {row.get('naive_positions_timed', '?')} positions)"
        seconds.append(f"| {name} | {row.get('positions') or ''} | "
                       f"{_number(sec['ours'], suffix=' s')} | "
                       f"{_number(sec['captum'], suffix=' s')} | {naive} |")
        ratios.append(
            f"| {name} | **{_number(sec['ours'] / sec['captum'], 3)}×** | "
            f"{_number(sec['naive'] / sec['ours'], suffix='×')} | "
            f"{_number(row.get('recomputed_fraction'))} | "
            f"{_number(floor.get('over_captum'), 3, '×')}"
            f"{' (conv only)' if floor.get('counts') == 'convolutions' else ''} | "
            f"{_number(row.get('max_error_over_largest_drop'), 1)} |")
    return [f"Window {s.get('window', '?')}, stride {s.get('stride', '?')}, image "
            f"{'x'.join(map(str, s.get('image') or [])) or '?'}, {s.get('statistic', '?')} of "
            f"{s.get('repeats', '?')} repeat(s).", "", *seconds, "", *ratios, ""]


def site_build_table(r: dict) -> list[str]:
    lines = ["| step | command | seconds |", "|---|---|---:|"]
    for step in r["steps"]:
        command = f"`{step['command']}`" if step.get("command") else ""
        lines.append(f"| {step['step']} | {command} | {step['seconds']} |")
    if r.get("lessons"):
        lines += ["", "| lesson | seconds |", "|---|---:|"]
        lines += [f"| {row['lesson']} | {row['seconds']} |" for row in r["lessons"]]
    return lines + [""]


def comparison_table(r: dict) -> list[str]:
    lines = ["| case | measure | baseline | convlens | convlens / baseline |",
             "|---|---|---|---|---:|"]
    for c in r["comparisons"]:
        unit = f" {c['unit']}" if c.get("unit") else ""
        lines.append(
            f"| {c['case']} | {c['measure']} | {c['baseline']['what']}: "
            f"{_number(c['baseline']['value'], suffix=unit)} | {c['convlens']['what']}: "
            f"{_number(c['convlens']['value'], suffix=unit)} | "
            f"**{_number(c['convlens']['value'] / c['baseline']['value'], 3)}×** |")
    return lines + [""]


def class_recipe_table(r: dict) -> list[str]:
    judges = r["judges"]
    short = [j.replace("efficientnet_lite", "Lite") for j in judges]
    lines = [f"`{r['model']}`, {len(r['classes'])} classes: {', '.join(r['classes'])}.", "",
             "| steps | s/picture | itself | "
             + " | ".join(f"{s} top-1 / top-5" for s in short) + " | median rank |",
             "|---|---:|---:|" + "---:|" * len(judges) + "---:|"]
    for row in r["rows"]:
        own = "–" if row.get("self_top1") is None else _number(100 * row["self_top1"], 0, "%")
        cells = " | ".join(f"{_number(100 * row[j]['top1'], 0, '%')} / "
                           f"{_number(100 * row[j]['top5'], 0, '%')}" for j in judges)
        steps = row["steps"] if row["steps"] else "0 (no objective: random phase)"
        lines.append(f"| {steps} | "
                     f"{'–' if row.get('seconds') is None else _number(row['seconds'], 1)} | "
                     f"{own} | {cells} | {_number(row['median_rank'], 0)} |")
    return lines + [""]


TABLES = {"occlusion": occlusion_table, "site-build": site_build_table,
          "class-recipe": class_recipe_table}


def results_markdown(results: list[dict], figure: str | None) -> str:
    """The generated part of the page: per benchmark, what the columns mean, how to
    reproduce, then the runs newest first (the occlusion section opens with ``figure``)."""
    if not results:
        return ("No benchmark results yet: `nox -s bench` writes them to "
                "`benchmarks/results/`.\n")
    kinds = sorted({r["benchmark"] for r in results},
                   key=lambda k: (list(TITLES).index(k) if k in TITLES else len(TITLES), k))
    lines = []
    for kind in kinds:
        lines += [f"## {TITLES.get(kind, kind)}", "",
                  ABOUT.get(kind, ABOUT["comparison"]) + " "
                  + REPRODUCE.get(kind, f"To reproduce: `nox -s bench` ({WRITES})."), ""]
        if kind == "occlusion" and figure:
            lines += [figure, ""]
        for r in newest_first([r for r in results if r["benchmark"] == kind]):
            lines += run_heading(r) + TABLES.get(kind, comparison_table)(r)
    return "\n".join(lines)


def figure_svg(result: dict) -> tuple[bytes, tuple[int, int]]:
    """Grouped bars, log-scale seconds: ours, Captum, naive per model of ``result``; the SVG
    and its size in CSS pixels."""
    import matplotlib

    matplotlib.use("Agg")  # never a display; the Figure below needs no pyplot
    from matplotlib.figure import Figure

    rows = result["models"]
    width_in, height_in = 7.0, 3.4
    with matplotlib.rc_context({"svg.hashsalt": "convlens-benchmarks", "svg.fonttype": "none",
                                "font.size": 9}):
        fig = Figure(figsize=(width_in, height_in), facecolor="white")
        ax = fig.add_subplot()
        bar = 0.26
        for i, (key, label, colour) in enumerate((("ours", "convlens", "#3949ab"),
                                                  ("captum", "Captum", "#ff7043"),
                                                  ("naive", "naive loop", "#9e9e9e"))):
            values = [row["seconds"][key] for row in rows]
            ax.bar([j + (i - 1) * bar for j in range(len(rows))], values, bar, label=label,
                   color=colour)
        ax.set_yscale("log")
        smallest = min(row["seconds"][k] for row in rows for k in ("ours", "captum", "naive"))
        ax.set_ylim(bottom=10 ** math.floor(math.log10(smallest)))  # bars start at a decade
        ax.set_ylabel("seconds (log scale)")
        ax.set_xticks(range(len(rows)), [row["model"] for row in rows])
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue(), (round(width_in * 96), round(height_in * 96))


def figure_block(result: dict, size: tuple[int, int]) -> str:
    """The figure's HTML: alt text that states the bars, and a caption naming the run."""
    bars = "; ".join(f"{row['model']}: convlens {row['seconds']['ours']:.2f} s, Captum "
                     f"{row['seconds']['captum']:.2f} s, naive {row['seconds']['naive']:.2f} s"
                     for row in result["models"])
    alt = f"Bar chart, seconds on a log scale, per model. {bars}."
    when = result["date"][:10] if result.get("date") else "date unknown"
    commit = (result.get("commit") or "unknown")[:7]
    caption = ("Seconds for one occlusion map (log scale), convlens against Captum and the "
               f"naive loop, in the newest occlusion run ({html.escape(when)}, commit "
               f"{html.escape(commit)}; <code>{html.escape(result['_file'])}</code>).")
    src = FIGURE.split("/", 1)[1]  # the page's URL is the folder benchmarks/
    return figure_html(src, None, alt, size, caption)


def files(folder: Path, intro: str | None) -> dict[str, bytes]:
    """``benchmarks.md`` (``intro`` with its placeholder filled, or a title and the tables)
    and, when there is an occlusion run, its figure."""
    results = load(folder)
    out: dict[str, bytes] = {}
    occlusion = newest_first([r for r in results if r["benchmark"] == "occlusion"
                              and r["models"]])
    block = None
    if occlusion:
        out[FIGURE], size = figure_svg(occlusion[0])
        block = figure_block(occlusion[0], size)
    tables = results_markdown(results, block)
    intro = intro if intro is not None else "# Benchmarks\n\n" + PLACEHOLDER + "\n"
    if PLACEHOLDER not in intro:
        intro = intro.rstrip("\n") + "\n\n" + PLACEHOLDER + "\n"
    out[PAGE] = intro.replace(PLACEHOLDER, tables.rstrip("\n")).encode()
    return out
