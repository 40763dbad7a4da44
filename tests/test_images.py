"""The course's photos, user image files, and the way back to a picture."""

import numpy as np
import pytest
import torch
from PIL import Image

from convlens import images, models


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "rocket"])
def test_bundled_photos_are_rgb(name):
    image = images.load(name)
    assert image.mode == "RGB"
    assert min(image.size) >= 300


def test_cat_and_coffee_puts_the_cat_left_and_the_cup_right():
    composite = np.asarray(images.load("cat_and_coffee"), dtype=np.float32)
    assert composite.shape == (320, 640, 3)
    cat = np.asarray(images._square(images.load("chelsea"), 320), dtype=np.float32)
    cup = np.asarray(images._square(images.load("coffee"), 320), dtype=np.float32)
    assert np.array_equal(composite[:, :320], cat)
    assert np.array_equal(composite[:, 320:], cup)


def test_image_file_path(tmp_path):
    pixels = np.zeros((20, 30), dtype=np.uint8)
    pixels[5, 7] = 200
    path = tmp_path / "grey.png"
    Image.fromarray(pixels).save(path)
    image = images.load(path)
    assert image.mode == "RGB" and image.size == (30, 20)
    assert np.asarray(image)[5, 7].tolist() == [200, 200, 200]


def test_missing_file_names_it_and_lists_photos(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg.*chelsea"):
        images.load(tmp_path / "missing.jpg")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not an image file"):
        images.load(path)
    with pytest.raises(IsADirectoryError):
        images.load(tmp_path)


def test_prepare_then_to_display_round_trips():
    preprocess = models.Preprocess(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    image = images.load("coffee")
    x = images.prepare(image, preprocess, size=(64, 96))
    assert x.shape == (1, 3, 64, 96)
    expected = np.asarray(image.resize((96, 64), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    assert np.allclose(images.to_display(x, preprocess), expected, atol=1e-5)
    # the normalized values really are normalized: mean-coloured pixels map to 0
    grey = torch.tensor(preprocess.mean)[:, None, None].expand(3, 2, 2)
    assert torch.allclose(preprocess.normalize(grey), torch.zeros(3, 2, 2), atol=1e-6)


def test_default_preprocess_crops_to_model_size():
    x = images.prepare(images.load("rocket"), models.load("efficientnet_lite0").preprocess)
    assert x.shape == (1, 3, 224, 224)


def test_to_display_rejects_batches_and_wrong_shapes():
    preprocess = models.Preprocess(8, 8, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match="one image"):
        images.to_display(torch.zeros(2, 3, 8, 8), preprocess)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        images.to_display(torch.zeros(1, 8, 8), preprocess)


def test_photo_pool_names_every_photo_with_its_licence():
    pool = images.photo_pool()
    assert [p.name for p in pool] == list(images.POOL)
    assert len(pool) >= 12
    for photo in pool:
        assert photo.image.mode == "RGB" and min(photo.image.size) >= 128, photo.name
        assert photo.licence and photo.source, photo.name
        pixels = np.asarray(photo.image, dtype=np.int16)
        grey = bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
        assert grey == (not photo.colour), photo.name  # the colour flag tells the truth
    colour = images.photo_pool(colour_only=True)
    assert all(p.colour for p in colour) and 0 < len(colour) < len(pool)
    with pytest.raises(TypeError, match="colour_only"):
        images.photo_pool(colour_only="yes")


def test_references_page_states_every_pool_licence():
    """The References page lists each photo of the pool with the licence POOL gives it."""
    from pathlib import Path

    page = (Path(__file__).parents[1] / "site_assets" / "references.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in page.splitlines()
            if line.startswith("| `")}
    for name, (_, licence, _) in images.POOL.items():
        row = next((line for key, line in rows.items() if key.startswith(f"`{name}`")), None)
        assert row is not None, f"{name} is not on the References page"
        assert licence in row, f"{name}: the page does not state {licence!r}"
