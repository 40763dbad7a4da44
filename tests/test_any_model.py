"""The whole course builds on other models: registry models on stand-in weights (a random
initialisation saved under torchvision's own file name in a temporary ``TORCH_HOME``, read
by the real loading path) and a reader's own 10-class network from a ``.py`` file.

Each test runs ``python -m coursebuild`` in a subprocess, as a reader would; they are
``slow`` (minutes each on a 2-core machine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convlens import models

ROOT = Path(__file__).resolve().parents[1]

OWN_MODEL = '''
import torch
from torch import nn


def build():
    """A small 10-class CNN: three convolutions, global average pooling, a linear layer."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
'''

OWN_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
              "truck"]


def build_course(tmp_path: Path, *args: str, torch_home: Path | None = None):
    """Run the course build; return (exit status, {lesson: status}, output)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "lib"),
                                                      env.get("PYTHONPATH")]))
    if torch_home is not None:
        env["TORCH_HOME"] = str(torch_home)
    for name in ("CONVLENS_MODEL", "CONVLENS_WEIGHTS", "CONVLENS_LABELS", "CONVLENS_LAYERS",
                 "CONVLENS_PREPROCESS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "coursebuild", *args, "--device", "cpu",
               "--out", str(tmp_path / "docs"), "--cache", str(tmp_path / "cache")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)
    output = done.stdout + done.stderr
    statuses = dict(re.findall(r"^(\d\d-[\w-]+)\s+(hit|miss|failed|kept|absent)\b", output,
                               flags=re.MULTILINE))
    return done.returncode, statuses, output


def first_errors(output: str) -> str:
    """The lesson/cell line and the first error line of each failed lesson."""
    lines = output.splitlines()
    found = [line.strip() for line in lines if re.search(r"\.py: cell \d+", line)
             or re.match(r"\s*\w+(Error|Exception): ", line)]
    return "\n".join(found)


def assert_course_built(returncode: int, statuses: dict, output: str) -> None:
    assert statuses, f"no lesson table in the build output:\n{output[-3000:]}"
    failed = sorted(slug for slug, status in statuses.items() if status == "failed")
    assert returncode == 0 and not failed, (
        f"lessons failed: {failed}\n{first_errors(output)}\n{output[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "resnet18"])
def test_registry_model_builds_every_lesson_on_stand_in_weights(tmp_path, monkeypatch, name):
    torch_home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    planted = models.save_stand_in_weights(name)
    assert planted.parent == torch_home / "hub" / "checkpoints"
    assert planted == models.weights_path(name)  # torchvision's own file name
    assert_course_built(*build_course(tmp_path, "--model", name, torch_home=torch_home))


@pytest.mark.slow
def test_own_ten_class_model_from_a_file_builds_every_lesson(tmp_path):
    source = tmp_path / "own_net.py"
    source.write_text(OWN_MODEL)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(OWN_LABELS) + "\n")
    loaded = models.load(f"{source}:build", labels=labels)  # what the lessons will get
    assert loaded.labels == OWN_LABELS and loaded.layers["first_conv"] == "0"
    assert_course_built(*build_course(tmp_path, "--model", f"{source}:build",
                                      "--labels", str(labels)))


@pytest.mark.slow
def test_a_model_the_rectifier_rules_refuse_still_builds_their_lessons(tmp_path):
    """Hardswish (as in MobileNetV3): lesson 07 skips what deconvnet and guided backprop
    refuse, lesson 09 leaves those rows out; both pages say so."""
    source = tmp_path / "own_net.py"
    source.write_text(OWN_MODEL.replace("nn.ReLU()", "nn.Hardswish()"))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(OWN_LABELS) + "\n")
    returncode, statuses, output = build_course(
        tmp_path, "--model", f"{source}:build", "--labels", str(labels),
        "--only", "07-deconvnet-and-guided-backprop", "09-can-you-trust-a-saliency-map")
    assert_course_built(returncode, statuses, output)
    assert statuses["07-deconvnet-and-guided-backprop"] == statuses[
        "09-can-you-trust-a-saliency-map"] == "miss"
    page = (tmp_path / "docs" / "lessons" / "09-can-you-trust-a-saliency-map.ipynb").read_text()
    assert "guided backprop and guided Grad-CAM apply to this model" in page  # the note, in place
    # the course model's table leaves the refused rows out; the known-answer network's table
    # (evidence_net, a ReLU network) keeps them, so they appear fewer times than the others
    assert 0 < page.count("| deconvnet |") < page.count("| gradient |")
