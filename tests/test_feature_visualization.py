"""MACO (phase-only feature visualisation), the natural spectrum, feature accentuation,
dataset examples and the transfer / processing-path checks, on tiny networks."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

import convlens
from convlens import natural_statistics as ns
from convlens.accentuation import accentuate
from convlens.exemplars import dataset_examples
from convlens.feature_visualization import (
    ChannelObjective,
    ClassObjective,
    PhaseImage,
    maco,
    random_crops,
    visualize_class,
)
from convlens.hooks import count_hooks
from convlens.visualization_checks import layer_similarity, transfer_scores

pytestmark = pytest.mark.usefixtures("single_thread")


def _tiny_classifier(classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes),
    ).eval()


def _photos(n: int = 3, size: int = 40) -> list[Image.Image]:
    generator = torch.Generator().manual_seed(5)
    pictures = []
    for i in range(n):
        coarse = torch.rand(1, 3, 5, 5, generator=generator)
        smooth = nn.functional.interpolate(coarse, size=(size, size + 8 * i), mode="bilinear")[0]
        pixels = (smooth.permute(1, 2, 0).numpy() * 255).astype("uint8")
        pictures.append(Image.fromarray(pixels))
    return pictures


@pytest.fixture(scope="module")
def spectrum():
    return ns.natural_spectrum(16, _photos(), cache=False)


# --- the natural spectrum ----------------------------------------------------------------


def test_spectrum_shape_zero_mean_and_cache_by_content(tmp_path):
    photos = _photos()
    magnitude, basis = ns.natural_spectrum((16, 20), photos, cache_dir=tmp_path)
    assert magnitude.shape == (3, 16, 11) and magnitude.dtype == torch.float64
    assert (magnitude[:, 0, 0] == 0).all() and (magnitude >= 0).all()
    files = list(tmp_path.glob("spectrum-*.pt"))
    assert len(files) == 1
    again, basis_again = ns.natural_spectrum((16, 20), photos, cache_dir=tmp_path)
    assert torch.equal(again, magnitude) and torch.equal(basis_again.axes, basis.axes)
    ns.natural_spectrum((16, 20), photos[:2], cache_dir=tmp_path)  # other photos: other key
    ns.natural_spectrum((16, 16), photos, cache_dir=tmp_path)  # other size: other key
    assert len(list(tmp_path.glob("spectrum-*.pt"))) == 3
    direct, _ = ns.natural_spectrum((16, 20), photos, cache=False)
    assert torch.allclose(direct, magnitude)


def test_spectrum_is_the_mean_amplitude_of_the_views_periodic_components():
    photos = _photos(2)
    magnitude, basis = ns.natural_spectrum(16, photos, crops=1, cache=False)
    views = ns.photo_views(photos, (16, 16), crops=1)
    assert views.shape == (4, 3, 16, 16)  # 2 photos x (1 crop + its flip)
    assert torch.equal(views[1], views[0].flip(-1))
    expected = torch.fft.rfft2(ns.periodic_component(basis.decorrelate(views)), norm="ortho")
    expected = expected.abs().mean(dim=0)
    expected[:, 0, 0] = 0
    assert torch.allclose(magnitude, expected)


def _interior_laplacian(u):
    """Sum over the neighbours inside the image of (neighbour - pixel)."""
    out = torch.zeros_like(u)
    out[1:] += u[:-1] - u[1:]
    out[:-1] += u[1:] - u[:-1]
    out[:, 1:] += u[:, :-1] - u[:, 1:]
    out[:, :-1] += u[:, 1:] - u[:, :-1]
    return out


def _periodic_laplacian(u):
    return sum(torch.roll(u, shift, dim) for shift in (1, -1) for dim in (0, 1)) - 4 * u


def test_periodic_component_has_the_images_interior_laplacian_and_mean():
    # Moisan 2011: p is the periodic image whose periodic Laplacian is u's Laplacian
    # inside the image (no wrap-around), with u's mean
    u = torch.rand(16, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u += torch.arange(12.0, dtype=torch.float64)  # a strong left-right jump
    p = ns.periodic_component(u)
    assert torch.allclose(_periodic_laplacian(p), _interior_laplacian(u), atol=1e-10)
    assert p.mean() == pytest.approx(float(u.mean()))
    # the jump between opposite borders is gone: the bright cross of the spectrum too
    jump = lambda image: (image[:, -1] - image[:, 0]).abs().mean()  # noqa: E731
    assert jump(p) < 0.2 * jump(u)


def test_colour_basis_weighs_each_photo_equally_and_is_orthonormal():
    small = Image.fromarray((torch.rand(4, 4, 3, generator=torch.Generator().manual_seed(1))
                             .numpy() * 255).astype("uint8"))
    large = Image.fromarray((torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(2))
                             .numpy() * 255).astype("uint8"))
    basis = ns.colour_basis([small, large])
    import numpy as np

    a = np.asarray(small, dtype=np.float64).reshape(-1, 3) / 255
    b = np.asarray(large, dtype=np.float64).reshape(-1, 3) / 255
    mixture = np.concatenate([np.repeat(a, 4, axis=0), b])  # 64 pixels of each photo
    covariance = np.cov(mixture, rowvar=False, bias=True)
    rebuilt = (basis.axes * basis.std**2) @ basis.axes.T
    np.testing.assert_allclose(rebuilt.numpy(), covariance, atol=1e-12)
    np.testing.assert_allclose(basis.mean.numpy(), mixture.mean(axis=0), atol=1e-12)
    assert torch.allclose(basis.axes.T @ basis.axes, torch.eye(3, dtype=torch.float64))
    pixels = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    assert torch.allclose(basis.recorrelate(basis.decorrelate(pixels)), pixels)


def test_spectrum_arguments_are_checked():
    with pytest.raises(ValueError, match="size"):
        ns.natural_spectrum(4, _photos(), cache=False)
    with pytest.raises(TypeError, match="PIL images"):
        ns.natural_spectrum(16, [torch.zeros(3, 8, 8)], cache=False)
    with pytest.raises(ValueError, match="crops"):
        ns.natural_spectrum(16, _photos(), crops=0, cache=False)


# --- the phase-only parameterisation -----------------------------------------------------


def test_phase_only_parameterisation_keeps_the_magnitude_exactly(spectrum):
    magnitude, basis = spectrum
    image = PhaseImage(2, magnitude, basis, torch.Generator().manual_seed(0), dtype=torch.float64)
    for _ in range(3):  # also after arbitrary changes of the free parameters
        v = image.spectral()
        assert torch.allclose(torch.fft.rfft2(v, norm="ortho").abs(), magnitude.expand(2, -1, -1, -1),
                              rtol=1e-9, atol=1e-12)
        pixels = image.image()
        assert pixels.shape == (2, 3, 16, 16) and 0 < pixels.min() and pixels.max() < 1
        with torch.no_grad():
            image.params.add_(torch.randn(image.params.shape, dtype=torch.float64))


def test_one_seed_gives_one_image_and_another_seed_another(spectrum):
    model = _tiny_classifier()
    settings = dict(steps=3, image_size=16, crops=2, spectrum=spectrum)
    first = maco(model, [ClassObjective(1)], generator=torch.Generator().manual_seed(3), **settings)[0]
    second = maco(model, [ClassObjective(1)], generator=torch.Generator().manual_seed(3), **settings)[0]
    third = maco(model, [ClassObjective(1)], generator=torch.Generator().manual_seed(4), **settings)[0]
    assert torch.equal(first.image, second.image)
    assert torch.equal(first.importance, second.importance)
    assert not torch.equal(first.image, third.image)


def test_maco_raises_the_objective_and_returns_one_picture_per_objective(spectrum):
    model = _tiny_classifier()
    pictures = maco(model, [ClassObjective(2), ChannelObjective("2", 5)], steps=40, lr=0.1,
                    image_size=16, crops=2, spectrum=spectrum)
    assert len(pictures) == 2
    for picture in pictures:
        objective = picture.history["objective"]
        assert objective.shape == (40,) and objective[-8:].mean() > objective[:4].mean()
        assert picture.image.shape == (3, 16, 16) and picture.importance.shape == (16, 16)
        assert (picture.importance >= 0).all() and picture.importance.sum() > 0
        assert (picture.history["diversity"] == 0).all()


class _LeftHalf(nn.Module):
    def forward(self, x):
        return x[..., : x.shape[-1] // 2]


def test_importance_is_zero_where_the_model_never_looks(spectrum):
    torch.manual_seed(0)
    model = nn.Sequential(_LeftHalf(), nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    picture = maco(model, [ClassObjective(0)], steps=3, image_size=16, crops=1,
                   crop_scale=(1.0, 1.0), noise=0.0, spectrum=spectrum)[0]
    left, right = picture.importance[:, :8], picture.importance[:, 8:]
    assert right.max() < 1e-6 * left.max()  # zero up to the float rounding of the resampling


def test_diversity_pushes_the_images_apart(spectrum):
    model = _tiny_classifier()
    runs = {weight: maco(model, [ChannelObjective("3", 1)] * 3, steps=30, lr=0.1, image_size=16,
                         crops=1, spectrum=spectrum, diversity=weight, diversity_layer="1",
                         generator=torch.Generator().manual_seed(0))
            for weight in (0.0, 50.0)}
    with_weight = runs[50.0][0].history["diversity"]
    assert with_weight[-1] < with_weight[0]
    assert runs[0.0][0].history["diversity"].abs().max() == 0  # not computed without weight


def test_random_crops_full_scale_is_the_identity_and_crops_stay_inside():
    images = torch.rand(2, 3, 12, 12)
    same = random_crops(images, 2, (1.0, 1.0), (12, 12), torch.Generator().manual_seed(0))
    assert torch.allclose(same, images.repeat_interleave(2, dim=0), atol=1e-6)
    ramp = torch.arange(12.0).expand(1, 3, 12, 12).contiguous()
    crops = random_crops(ramp, 16, (0.5, 0.5), (6, 6), torch.Generator().manual_seed(1))
    assert crops.shape == (16, 3, 6, 6)
    assert crops.min() >= 0 and crops.max() <= 11  # sampled inside, no reflection needed


def test_maco_leaves_the_model_as_found(spectrum):
    model = _tiny_classifier().train()
    flags = [p.requires_grad for p in model.parameters()]
    maco(model, [ChannelObjective("0", 1), ClassObjective(0)], steps=2, image_size=16, crops=1,
         spectrum=spectrum)
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert count_hooks(model) == 0


def test_maco_bad_arguments_are_named(spectrum):
    model = _tiny_classifier()
    with pytest.raises(TypeError, match="objectives"):
        maco(model, ClassObjective(0), spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="channel 99 is out of range"):
        maco(model, [ChannelObjective("0", 99)], steps=1, spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="class 7 is out of range"):
        maco(model, [ClassObjective(7)], steps=1, spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="unknown layer name"):
        maco(model, [ChannelObjective("nope", 0)], steps=1, spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="crop_scale"):
        maco(model, [ClassObjective(0)], crop_scale=(0.5, 1.5), spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="diversity_layer"):
        maco(model, [ClassObjective(0)] * 2, diversity=1.0, spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="at least two objectives"):
        maco(model, [ClassObjective(0)], diversity=1.0, diversity_layer="1", spectrum=spectrum)
    with pytest.raises(ValueError, match="spectrum's magnitude has shape"):
        maco(model, [ClassObjective(0)], image_size=20, spectrum=spectrum)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        maco(model, [ClassObjective(0)], steps=0, spectrum=spectrum, image_size=16)
    with pytest.raises(ValueError, match="ClassObjective.target"):
        ClassObjective(-1)
    with pytest.raises(ValueError, match="ChannelObjective.channel"):
        ChannelObjective("0", -2)
    with pytest.raises(TypeError, match="target must be a class index"):
        visualize_class(model, "tabby")


def test_visualize_class_uses_the_recipe_and_the_lazy_export(tmp_path):
    assert convlens.visualize_class is visualize_class
    model = _tiny_classifier()
    picture = visualize_class(model, 1, steps=2, image_size=16, cache_dir=tmp_path,
                              generator=torch.Generator().manual_seed(0))
    assert picture.image.shape == (3, 16, 16) and picture.history["objective"].shape == (2,)
    assert list(tmp_path.glob("spectrum-*.pt"))  # the pool's spectrum, cached there


# --- feature accentuation ----------------------------------------------------------------


def test_accentuation_starts_at_the_photo_and_strength_holds_it_there():
    model = _tiny_classifier()
    photo = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    held = accentuate(model, photo, ClassObjective(1), strength=1e7, steps=20, lr=0.05)
    free = accentuate(model, photo, ClassObjective(1), strength=0.0, steps=20, lr=0.05)
    assert held.history["distance"][0] < 1e-6  # the first step sees the photo itself
    # Adam moves every parameter by about lr per step whatever the gradient's size, so even
    # a huge pull leaves a jitter of that size; it still keeps the image far closer
    assert held.history["distance"][-1] < 0.02
    assert free.history["distance"][-1] > 4 * held.history["distance"][-1]
    assert free.history["objective"][-1] > free.history["objective"][0]
    assert held.image.shape == photo.shape


def test_accentuation_bad_arguments_are_named():
    model = _tiny_classifier()
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        accentuate(model, torch.full((3, 8, 8), 2.0), ClassObjective(0))
    with pytest.raises(ValueError, match="one RGB image"):
        accentuate(model, torch.rand(2, 3, 8, 8), ClassObjective(0))
    with pytest.raises(TypeError, match="objective must be"):
        accentuate(model, torch.rand(3, 8, 8), 3)
    with pytest.raises(ValueError, match="strength"):
        accentuate(model, torch.rand(3, 8, 8), ClassObjective(0), strength=-1.0)


# --- dataset examples --------------------------------------------------------------------


def _box_sum_net() -> nn.Module:
    """Channel 0 of layer "0" sums a 3x3 window of the red channel (stride 2, padding 1)."""
    conv = nn.Conv2d(3, 2, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.weight[1, 1] = 1.0
    return nn.Sequential(conv, nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten()).eval()


def test_each_dataset_example_box_is_the_receptive_field_of_its_unit():
    model = _box_sum_net()
    images = torch.rand(5, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    images[3, 0, 10, 7] = 50.0  # one very bright red pixel in image 3
    field = convlens.receptive_field(model, (20, 24))["2"]
    examples = dataset_examples(model, "2", 1, images, k=12)
    with torch.no_grad():
        maps = model[:3](images)[:, 1]
    values = [v for _, _, v in examples]
    assert values == sorted(values, reverse=True) and len(examples) == 12
    for index, (x0, y0, x1, y1), value in examples:
        matches = (maps[index] == value).nonzero().tolist()
        assert any(field.box(i, j, clip=True) == (y0, x0, y1, x1) for i, j in matches)
    # by hand: the top unit of channel 0 at layer "0" sees the bright pixel (row 10, col 7)
    (index, (x0, y0, x1, y1), value), = dataset_examples(model, "0", 0, images, k=1)
    assert index == 3 and x0 <= 7 < x1 and y0 <= 10 < y1 and (x1 - x0, y1 - y0) == (3, 3)
    with torch.no_grad():
        assert value == pytest.approx(float(model[0](images[3:4])[0, 0].max()))


def test_dataset_examples_clip_boxes_and_limit_per_image():
    model = _box_sum_net()
    images = torch.zeros(3, 3, 16, 16)
    images[:, 0, 0, 0] = torch.tensor([3.0, 2.0, 1.0])  # corners: boxes clipped at 0
    images[0, 0, 8, 8] = 2.5
    top = dataset_examples(model, "0", 0, images, k=3, max_per_image=1)
    assert [index for index, _, _ in top] == [0, 1, 2]
    assert top[0][1] == (0, 0, 2, 2)  # unit (0, 0): rows/cols -1..1, clipped to 0..1
    both = dataset_examples(model, "0", 0, images, k=2)
    assert [index for index, _, _ in both] == [0, 0]


def test_dataset_examples_bad_arguments_are_named():
    model = _box_sum_net()
    images = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="no local receptive field"):
        dataset_examples(model, "3", 0, images)
    with pytest.raises(ValueError, match="channel 5 is out of range"):
        dataset_examples(model, "0", 5, images)
    with pytest.raises(ValueError, match="k=500 is more than"):
        dataset_examples(model, "0", 0, images, k=500)
    with pytest.raises(ValueError, match="k=3 is more than the 2 positions"):
        dataset_examples(model, "0", 0, images, k=3, max_per_image=1)
    with pytest.raises(ValueError, match="4 dimensions"):
        dataset_examples(model, "0", 0, images[0])


# --- transfer and processing-path checks -------------------------------------------------


class _MeanColour(nn.Module):
    """Logits = the mean of each input channel: the reddest picture is class 0."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_transfer_scores_rank_the_target_on_a_hand_checkable_model():
    pictures = torch.zeros(3, 3, 8, 8)
    pictures[0, 0] = 0.9  # red
    pictures[1, 1] = 0.8  # green
    pictures[2, 2], pictures[2, 0] = 0.7, 0.3  # mostly blue, a little red
    result = transfer_scores(_MeanColour(), pictures, [0, 0, 2], k=2, input_size=4)
    assert result.top1.tolist() == [True, False, True]
    assert result.rank.tolist() == [0, 2, 0]  # green: red ties with blue behind green
    assert result.topk.tolist() == [True, False, True]
    assert transfer_scores(_MeanColour(), pictures, [0, 1, 0], k=2).rank.tolist() == [0, 0, 1]
    assert result.probability[0] == pytest.approx(torch.tensor([0.9, 0, 0]).softmax(0)[0].item())
    shifted = transfer_scores(_MeanColour(), pictures, [0, 0, 2], k=1, normalize=((1, 0, 0), (1, 1, 1)))
    assert shifted.top1.tolist() == [False, False, True]  # red minus 1: no longer on top
    assert shifted.rank.tolist() == [2, 2, 0]
    tie = transfer_scores(_MeanColour(), torch.full((1, 3, 4, 4), 0.5), 1)
    assert tie.rank.tolist() == [2] and not tie.top1.any()  # a tie counts against the target
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        transfer_scores(_MeanColour(), pictures * 3, 0)
    with pytest.raises(ValueError, match="target has 2 entries"):
        transfer_scores(_MeanColour(), pictures, [0, 1])
    with pytest.raises(ValueError, match="out of range"):
        transfer_scores(_MeanColour(), pictures, 5)


def test_layer_similarity_is_one_for_a_photo_against_itself():
    model = _tiny_classifier()
    photos = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    similarity = layer_similarity(model, ["1", "3"], photos[:2], photos)
    assert set(similarity) == {"1", "3"}
    for values in similarity.values():
        assert values.shape == (2, 4)
        assert values[0, 0] == pytest.approx(1.0) and values[1, 1] == pytest.approx(1.0)
        assert (values.abs() <= 1 + 1e-9).all()
    with pytest.raises(ValueError, match="same size"):
        layer_similarity(model, ["1"], photos[:, :, :8], photos)
    with pytest.raises(TypeError, match="sequence of layers"):
        layer_similarity(model, "1", photos, photos)
    with pytest.raises(ValueError, match="not a feature map"):
        layer_similarity(model, ["6"], photos, photos)
