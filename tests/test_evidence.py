"""The known-answer data set and network: evidence_set on hand-checkable properties,
evidence_net's folding, content key, cache and determinism (its training to accuracy is
in the slow tier)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens import evidence_net, images, models
from convlens.images import EVIDENCE_CLASSES, evidence_set


def test_shapes_labels_and_determinism():
    x, labels, evidence = evidence_set(8, size=48, generator=torch.Generator().manual_seed(5))
    assert x.shape == (8, 3, 48, 48) and x.dtype == torch.float32
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert evidence.shape == (8, 48, 48) and evidence.dtype == torch.bool
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    again = evidence_set(8, size=48, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again[0], x) and torch.equal(again[2], evidence)
    other = evidence_set(8, size=48, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other[0], x)
    default = evidence_set(2)  # None: seed 0
    assert torch.equal(default[0], evidence_set(2, generator=torch.Generator().manual_seed(0))[0])


def test_evidence_is_one_square_patch_holding_the_target():
    x, labels, evidence = evidence_set(40, generator=torch.Generator().manual_seed(1))
    for i in range(40):
        rows, cols = np.nonzero(evidence[i].numpy())
        side = rows.max() - rows.min() + 1
        assert side == cols.max() - cols.min() + 1 and 9 <= side <= 13
        assert evidence[i].sum() == side * side  # a full square
        # the strokes: inside the patch, pixels far from the background's range [0.3, 0.7]
        # (plus grain 0.06): targets are light (>= 0.65) or dark (<= 0.35) in every channel
        patch = x[i][:, evidence[i]].reshape(3, side, side)
        stroke = ((patch >= 0.59).all(0) | (patch <= 0.41).all(0)).numpy()
        kind = EVIDENCE_CLASSES[int(labels[i])]
        shape = images._target_shape(kind, int(side), 2, 0)
        if kind == "corner":  # any of four turns
            assert any((stroke >= np.rot90(shape, k)).all() for k in range(4))
        else:
            assert (stroke >= shape).all(), kind


def test_pixels_outside_the_evidence_do_not_depend_on_the_class():
    """Swap the class of every image (same generator state): only the patch changes...
    not literally (the draws shift), so instead: over many images the mean image outside
    the patch is the same for every class, within sampling noise."""
    x, labels, evidence = evidence_set(400, size=32, generator=torch.Generator().manual_seed(2))
    outside = x * (~evidence)[:, None]
    means = torch.stack([outside[labels == k].mean(0).mean((1, 2)) for k in range(4)])
    assert float((means - means.mean(0)).abs().max()) < 0.02


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        evidence_set(0)
    with pytest.raises(ValueError, match="size must be an int >= 32"):
        evidence_set(2, size=16)
    with pytest.raises(TypeError, match="generator must be a CPU torch.Generator"):
        evidence_set(2, generator=1)


def test_batch_norm_folds_into_the_convolutions():
    torch.manual_seed(0)
    trained = evidence_net.EvidenceNet([4, 6, 8, 8], 5, batch_norm=True)
    with torch.no_grad():  # give every BatchNorm non-trivial statistics and affine terms
        for m in trained.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    trained.eval()
    plain = evidence_net._fold_batch_norm(trained)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    x = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), trained(x), rtol=1e-4, atol=1e-5)


TINY = {**evidence_net.HYPERPARAMETERS, "widths": [4, 4, 8, 8], "train_images": 32,
        "test_images": 8, "steps": 3, "batch": 4}


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    first, info = evidence_net.train(TINY)
    assert torch.equal(torch.random.get_rng_state(), state)
    second, _ = evidence_net.train(TINY)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    assert 0 <= info["accuracy"] <= 1 and info["key"] == evidence_net.content_key(TINY)


def test_training_starts_from_untrained():
    """With a learning rate of 0 nothing moves but the BatchNorm statistics, and folding
    scales each filter by a positive number: every trained filter is parallel to its start."""
    state = torch.random.get_rng_state()
    start = evidence_net.untrained(TINY)
    assert torch.equal(torch.random.get_rng_state(), state) and start.training
    frozen, _ = evidence_net.train({**TINY, "learning_rate": 0.0})
    for before, after in zip(
            [m for m in start.features if isinstance(m, torch.nn.Conv2d)],
            [m for m in frozen.features if isinstance(m, torch.nn.Conv2d)]):
        cosine = torch.nn.functional.cosine_similarity(before.weight.flatten(1),
                                                       after.weight.flatten(1))
        assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-5)
    other = evidence_net.untrained({**TINY, "seed": TINY["seed"] + 1})
    assert not torch.equal(other.features[0].weight, start.features[0].weight)


def test_content_key_follows_hyperparameters():
    assert evidence_net.content_key(TINY) != evidence_net.content_key()
    assert evidence_net.content_key() == evidence_net.content_key(
        dict(evidence_net.HYPERPARAMETERS))


def test_cache_is_read_not_retrained(tmp_path, monkeypatch):
    calls = []
    real_train = evidence_net.train

    def fake_train():
        calls.append(1)
        net, info = real_train(TINY)
        return evidence_net.EvidenceNet(), {**info, "seconds": 1.5}

    monkeypatch.setattr(evidence_net, "train", fake_train)
    net, info = evidence_net.load_trained(tmp_path)
    again, stored = evidence_net.load_trained(tmp_path)
    assert len(calls) == 1 and stored["seconds"] == 1.5
    assert evidence_net.weights_file(tmp_path).is_file()
    assert [p.name for p in tmp_path.iterdir()] == [evidence_net.weights_file(tmp_path).name]
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    loaded = models.load("evidence_net", cache_dir=tmp_path)
    assert len(calls) == 1 and loaded.labels == list(EVIDENCE_CLASSES)
    assert loaded.preprocess.crop == 64 and not loaded.model.training
    for role, name in loaded.layers.items():
        assert name in dict(loaded.model.named_modules()), role
    with pytest.raises(TypeError, match="cache_dir must be a folder path"):
        evidence_net.weights_file(3)


def test_weights_identity_is_the_content_key_before_and_after_training():
    identity = models.weights_identity("evidence_net")
    assert identity == f"trained-by-convlens:{evidence_net.content_key()}"


@pytest.mark.slow
def test_trains_to_95_percent_on_held_out_images():
    net, info = evidence_net.train()
    assert info["accuracy"] >= 0.95, info
    print(f"evidence_net: {info['seconds']:.1f} s, held-out accuracy {info['accuracy']:.1%}")
