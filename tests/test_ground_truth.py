"""The ground-truth set of the pointing game: seeded, and every box exactly where the object is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from convlens import images


def test_same_seed_same_set_other_seed_other_set():
    first = images.ground_truth_set(4, size=96, generator=torch.Generator().manual_seed(5))
    again = images.ground_truth_set(4, size=96, generator=torch.Generator().manual_seed(5))
    other = images.ground_truth_set(4, size=96, generator=torch.Generator().manual_seed(6))
    assert [item.boxes for item in first] == [item.boxes for item in again]
    for a, b in zip(first, again):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert [item.boxes for item in first[1:]] != [item.boxes for item in other[1:]]
    default = images.ground_truth_set(2, size=96)
    seeded = images.ground_truth_set(2, size=96, generator=torch.Generator().manual_seed(0))
    assert [item.boxes for item in default] == [item.boxes for item in seeded]


def test_composite_boxes_by_hand():
    # chelsea 451x300: square crop columns 75..375, the cat box (40, 0, 370, 300) becomes
    # columns 0..295 of 300, times 224/300: (0, 0, 220, 224). coffee 600x400: crop columns
    # 100..500; (75, 15, 480, 390) -> (0, 15, 380, 390) * 224/400 = (0, 8, 213, 218), shifted
    # by the 224 px of the cat's half.
    (item,) = images.ground_truth_set(0, size=224)
    assert item.background == "photo" and item.image.size == (448, 224)
    assert item.boxes == {"cat": (0, 0, 220, 224), "cup": (224, 8, 437, 218)}
    expected = images.load("cat_and_coffee").resize((448, 224), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(item.image), np.asarray(expected))


def test_each_box_holds_its_pasted_object_and_nothing_else_is_changed():
    items = images.ground_truth_set(6, size=128, composite=False)
    assert [item.background for item in items] == ["neutral", "textured"] * 3
    crops = {name: images.load(photo).crop(box) for name, (photo, box) in
             images._OBJECT_BOXES.items()}
    for item in items:
        pixels = np.asarray(item.image)
        assert item.image.size == (128, 128) and item.image.mode == "RGB"
        assert set(item.boxes) == set(images.OBJECT_CLASSES) == {"cat", "cup"}
        outside = np.ones((128, 128), dtype=bool)
        for name, (x0, y0, x1, y1) in item.boxes.items():
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
            longer = max(x1 - x0, y1 - y0)
            low, high = images.OBJECT_SIZE
            assert low * 128 - 1 <= longer <= high * 128 + 1
            pasted = crops[name].resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC)
            assert np.array_equal(pixels[y0:y1, x0:x1], np.asarray(pasted)), name
            outside[y0:y1, x0:x1] = False
        (a, b) = item.boxes.values()
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), "overlap"
        if item.background == "neutral":  # one grey level everywhere outside the boxes
            rest = pixels[outside]
            assert (rest == rest[0]).all() and rest[0, 0] == rest[0, 1] == rest[0, 2]
        else:
            assert pixels[outside].std() > 10


def test_default_object_size_is_18_to_32_percent_and_it_can_be_chosen():
    assert images.OBJECT_SIZE == (0.18, 0.32)
    for item in images.ground_truth_set(8, size=200, composite=False):
        for x0, y0, x1, y1 in item.boxes.values():
            assert 36 - 1 <= max(x1 - x0, y1 - y0) <= 64 + 1  # 18% and 32% of 200 px
    for item in images.ground_truth_set(4, size=200, composite=False, object_size=(0.4, 0.4)):
        for x0, y0, x1, y1 in item.boxes.values():
            assert max(x1 - x0, y1 - y0) == 80


def _near(box, column, row, tolerance=15):
    """The pointing game's hit test, written out: is pixel (column, row) within tolerance?"""
    x0, y0, x1, y1 = box
    dx = max(x0 - column, 0, column - (x1 - 1))
    dy = max(y0 - row, 0, row - (y1 - 1))
    return dx * dx + dy * dy <= tolerance * tolerance


def test_objects_are_spread_over_the_frame_so_the_centre_is_no_sure_hit():
    # Positions are uniform over all places that fit: over 40 images of 160 px the objects'
    # centres fall in every quadrant, and the image centre (where a centre map points) is
    # within 15 px of only a minority of them. With objects of 30-50% of the frame it was
    # near every one of them.
    items = images.ground_truth_set(40, size=160, composite=False)
    boxes = [box for item in items for box in item.boxes.values()]
    quadrants = {((x0 + x1) / 2 >= 80, (y0 + y1) / 2 >= 80) for x0, y0, x1, y1 in boxes}
    assert len(quadrants) == 4
    near_centre = np.mean([_near(box, 79, 79) for box in boxes])
    assert 0.1 < near_centre < 0.6, near_centre
    # the corner bands (outside the middle half in both directions) are used too
    assert sum(min(x0, y0) < 10 or max(x1, y1) > 150 for x0, y0, x1, y1 in boxes) > 10


def test_classes_name_imagenet_labels():
    from convlens import models

    labels = models.imagenet_labels()
    for classes in images.OBJECT_CLASSES.values():
        assert all(label in labels for label in classes)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"n": -1}, ValueError, "n must be"),
    ({"size": 16}, ValueError, "size must be"),
    ({"generator": 0}, TypeError, "generator must be"),
    ({"object_size": 0.3}, TypeError, "object_size must be a pair"),
    ({"object_size": (0.1, "a")}, TypeError, "object_size must be a pair"),
    ({"object_size": (0.3, 0.2)}, ValueError, "0 < low <= high <= 0.5"),
    ({"object_size": (0.0, 0.2)}, ValueError, "0 < low <= high <= 0.5"),
    ({"object_size": (0.2, 0.6)}, ValueError, "0 < low <= high <= 0.5"),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        images.ground_truth_set(**kwargs)
