"""The explorers' JavaScript without a browser: Node's built-in test runner runs
tests/js/*.test.mjs against the modules in site_assets/javascripts/explorers/.

This test writes the reference values those tests compare with: maps packed by
convlens_course.explore and decoded by numpy, matplotlib's colours for chosen values, torch's
bilinear interpolation and average pooling. Skipped, with a message, where ``node`` (20.19 or
later, for ES modules in .js files) is not on PATH.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convlens_course import explore

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = sorted((ROOT / "tests" / "js").glob("*.test.mjs"))
NODE_NEEDED = (20, 19)  # ES module syntax detected in .js files without a package.json
COLOUR_MAPS = ("jet", "viridis", "RdBu_r", "gray")


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not on PATH: the explorers' JavaScript unit tests are skipped "
                    "(install Node.js 20.19 or later to run them)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    found = tuple(int(v) for v in re.findall(r"\d+", version)[:2])
    if found < NODE_NEEDED:
        pytest.skip(f"node {version.strip()} is too old for the explorers' JavaScript unit "
                    f"tests (they need {'.'.join(map(str, NODE_NEEDED))} or later)")
    return path


def packed(a: np.ndarray, **options) -> dict:
    pack = explore._pack_stack if "symmetric" in options else explore._pack
    entry = pack(a, **options)
    return {"entry": entry, "codes": explore.decode(entry, quantised=True).ravel().tolist(),
            "values": explore.decode(entry).ravel().tolist()}


def decoding_cases(rng) -> dict:
    mask = rng.random((7, 13)) < 0.4
    return {
        "maps": [packed(rng.normal(size=(5, 7)) * 3), packed(np.full((2, 3), 4.0)),
                 packed(rng.random((64, 48)))],
        "stacks": [packed(rng.normal(size=(3, 4, 5)), symmetric=False),
                   packed(rng.normal(size=(2, 3, 6)) * 10, symmetric=True)],
        # a measured footprint: np.packbits of the crop, zlib, base64, as explore ships it
        "bits": {"z": base64.b64encode(zlib.compress(np.packbits(mask.ravel()).tobytes(), 9)).decode(),
                 "mask": mask.ravel().astype(int).tolist()},
    }


def colour_cases(rng) -> dict:
    from matplotlib import colormaps

    edges = [0.0, 1 / 256 - 1e-9, 1 / 256, 0.5, 255 / 256 - 1e-9, 255 / 256, 1 - 1e-12, 1.0,
             -0.25, 1.5]
    v = np.array(edges + rng.random(200).tolist())
    luts = {}
    for name in COLOUR_MAPS:
        # what matplotlib paints for v (its own lookup, under/over included), as bytes
        rgb = np.rint(colormaps[name].resampled(256)(v)[:, :3] * 255).astype(int)
        luts[name] = {"table": explore._lut(name), "rgb": rgb.ravel().tolist()}
    # a heat map over a photo: (1 - alpha) photo + alpha colour, rounded as a canvas stores it;
    # NaN (no value there) shows the photo alone
    n = 30
    base = rng.integers(0, 256, size=(n, 4))
    norm = rng.random(n)
    norm[[3, 17]] = np.nan
    table = np.frombuffer(base64.b64decode(luts["jet"]["table"]), np.uint8).reshape(256, 3)
    colour = table[np.clip(np.floor(np.nan_to_num(norm) * 256), 0, 255).astype(int)]
    blends = []
    for alpha in (0.5, 0.7):
        rgb = np.clip(np.rint((1 - alpha) * base[:, :3] + alpha * colour), 0, 255)
        rgb[np.isnan(norm)] = base[np.isnan(norm), :3]
        blends.append({"alpha": alpha, "rgba": np.c_[rgb, np.full(n, 255)].astype(int).ravel().tolist()})
    return {"values": v.tolist(), "luts": luts,
            "blend": {"norm": [None if np.isnan(x) else x for x in norm],
                      "base": base.ravel().tolist(), "cases": blends,
                      "plain": np.c_[colour, np.full(n, 255)].ravel().tolist()}}


def resampling_cases(rng) -> dict:
    upsample = []
    for h, w, H, W in [(7, 7, 32, 48), (3, 5, 10, 7), (16, 24, 32, 48), (8, 12, 8, 12), (5, 4, 3, 2)]:
        src = torch.as_tensor(rng.normal(size=(h, w)))
        out = F.interpolate(src[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        upsample.append({"h": h, "w": w, "H": H, "W": W, "src": src.ravel().tolist(),
                         "expected": out.ravel().tolist()})
    blocks = []
    for H, W in [(32, 48), (30, 45)]:
        src = torch.as_tensor(rng.random((H, W)))
        means = F.avg_pool2d(src[None, None], 4)[0, 0]
        blocks.append({"H": H, "W": W, "size": 4, "src": src.ravel().tolist(),
                       "height": means.shape[0], "width": means.shape[1],
                       "expected": means.ravel().tolist()})
    return {"upsample": upsample, "blocks": blocks}


def test_explorer_modules_in_node(tmp_path):
    executable = node()
    rng = np.random.default_rng(0)
    fixture = tmp_path / "fixture.json"
    fixture.write_text(json.dumps({"version": explore.VERSION, "kinds": list(explore.KINDS),
                                   **decoding_cases(rng), **colour_cases(rng),
                                   **resampling_cases(rng)}))
    assert JS_TESTS, "no tests/js/*.test.mjs"
    result = subprocess.run([executable, "--test", *map(str, JS_TESTS)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, CONVLENS_JS_FIXTURE=str(fixture)))
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    counts = dict(re.findall(r"^# (pass|fail|skipped|todo) (\d+)$", report, re.M))
    assert int(counts["pass"]) >= 10 and counts["fail"] == "0" and counts["skipped"] == "0", report[-3000:]
