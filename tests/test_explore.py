"""convlens_course.explore: the data each interactive figure carries is the library's result for
each choice (up to the uint8 quantisation), the HTML output is what the explorer modules
expect, the data matches explorer_schema.json, and bad input is named."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import convlens
from convlens_course import explore, protocol

LABELS = [f"class {i}" for i in range(10)]


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_cnn()


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(1))


def display(x):
    return ((x[0].permute(1, 2, 0).clamp(-2, 2) + 2) / 4).numpy()


def half_step(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return (v.max() - v.min()) / 255 / 2 + 1e-6


# --- encoding -------------------------------------------------------------------------------

def test_pack_and_decode_round_trip_within_half_a_step():
    a = np.random.default_rng(0).normal(size=(5, 7)) * 3
    entry = explore._pack(a)
    assert entry["shape"] == [5, 7] and entry["lo"] == a.min() and entry["hi"] == a.max()
    assert np.abs(explore.decode(entry) - a).max() <= half_step(a)
    codes = explore.decode(entry, quantised=True)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    # a constant map does not divide by zero
    assert (explore.decode(explore._pack(np.full((2, 2), 4.0))) == 4.0).all()


def test_stacks_have_one_range_per_map_and_symmetric_ranges():
    a = np.stack([np.linspace(0, 1, 12), np.linspace(-50, 10, 12)]).reshape(2, 3, 4)
    entry = explore._pack_stack(a)
    assert entry["lo"] == [0.0, -50.0] and entry["hi"] == [1.0, 10.0]
    decoded = explore.decode(entry)
    for k in range(2):
        assert np.abs(decoded[k] - a[k]).max() <= half_step(a[k])
    sym = explore._pack_stack(a, symmetric=True)
    assert sym["lo"] == [-1.0, -50.0] and sym["hi"] == [1.0, 50.0]
    codes = explore.decode(sym, quantised=True)
    assert codes[1].reshape(-1)[-1] == round((10 + 50) / 100 * 255)  # 10 on the scale ±50


def test_colour_tables_are_matplotlibs():
    from matplotlib import colormaps

    for name in ("jet", "viridis", "RdBu_r", "gray"):
        table = np.frombuffer(explore.base64.b64decode(explore._lut(name)), np.uint8).reshape(256, 3)
        expected = colormaps[name](np.arange(256))[:, :3] * 255
        assert np.abs(table - expected).max() <= 0.5


def test_decode_names_a_bad_entry():
    with pytest.raises(TypeError, match="packed map"):
        explore.decode({"shape": [1]})


# --- the HTML output ------------------------------------------------------------------------

class _Roots(HTMLParser):
    def __init__(self):
        super().__init__()
        self.roots, self.tags, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "data-convlens-explorer" in attrs:
            self.roots.append(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_receptive_field_probe_skips_a_saturated_channel():
    """A channel held at ReLU6's ceiling has no gradient: the probe takes the next one."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1, bias=False), torch.nn.ReLU6())
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0] = 10.0  # channel 0: far above 6 on a positive image, saturated
        net[0].weight[1] = 0.01  # channel 1: small and positive, on the slope
    xp = torch.rand(1, 3, 8, 8) + 0.5
    e = explore.receptive_field_explorer(net, xp, display(xp), ["1"], probes=1)
    (probe,) = e.data["layers"][0]["measured"]
    assert (probe["channel"], probe["skipped"]) == (1, 1)
    assert probe["pixels"] == 4  # unit (0, 0): its 3 x 3 window holds 2 x 2 image pixels
    with pytest.raises(ValueError, match="tries"):
        explore.receptive_field_explorer(net, xp, display(xp), ["1"], tries=0)


def test_html_output_holds_the_kind_the_data_and_a_fallback(model, x):
    e = explore.receptive_field_explorer(model, x, display(x), ["0", "5"], probes=2)
    parser = _Roots()
    parser.feed(e._repr_html_())
    (attrs,) = parser.roots
    assert attrs["data-convlens-explorer"] == "receptive-field"
    data = json.loads(attrs["data-convlens-data"])
    assert data["version"] == explore.VERSION and data["kind"] == "receptive-field"
    assert "script" not in parser.tags  # Material's instant navigation would run it
    assert "noscript" in parser.tags
    assert "JavaScript" in "".join(parser.text) and "Interactive figure" in "".join(parser.text)
    assert e.nbytes == len(e.to_html().encode()) and "KiB" in repr(e)


def test_explorer_kinds_are_checked():
    with pytest.raises(ValueError, match="kind"):
        explore.Explorer("bogus", {}, "text")


# --- the data format: one schema ------------------------------------------------------------

def payload(e: explore.Explorer) -> dict:
    """The data as the page reads it, from the HTML output."""
    parser = _Roots()
    parser.feed(e.to_html())
    (attrs,) = parser.roots
    return json.loads(attrs["data-convlens-data"])


@pytest.fixture(scope="module")
def schema():
    from jsonschema import Draft202012Validator

    document = json.loads(protocol.EXPLORER_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


@pytest.fixture(scope="module")
def every_kind(model, x):
    image, x2 = display(x), x.flip(-1)
    return {
        "receptive-field": explore.receptive_field_explorer(model, x, image, ["0", "5"], probes=2),
        "gradcam": explore.gradcam_explorer(model, {"a": (x, image), "b": (x2, display(x2))},
                                            ["2", "5"], LABELS, top=2),
        "occlusion": explore.occlusion_explorer(model, x, image, LABELS, windows=(8, 16),
                                                strides=(8,), top=2),
        "smoothgrad": explore.smoothgrad_explorer(model, x, image, 3, noise=(0.2,), samples=(1, 2)),
        "channels": explore.channels_explorer(model, x, image, ["2"], "0", filters=2),
        "channels without a convolution": explore.channels_explorer(model, x, image, ["2", "5"]),
    }


def test_version_and_kinds_come_from_the_schema(schema):
    assert explore.VERSION == schema.schema["properties"]["version"]["const"]
    assert explore.KINDS == tuple(schema.schema["properties"]["kind"]["enum"])
    assert "explorer_schema.json" in explore.__doc__


def test_every_explorers_data_matches_the_schema(schema, every_kind):
    assert {e.kind for e in every_kind.values()} == set(explore.KINDS)
    for name, e in every_kind.items():
        errors = [f"{'/'.join(map(str, err.absolute_path))}: {err.message}"
                  for err in schema.iter_errors(payload(e))]
        assert not errors, (name, errors[:5])


def test_the_schema_refuses_what_it_does_not_describe(schema, every_kind):
    data = payload(every_kind["gradcam"])
    photo = data["photos"][0]
    bad = [
        {**data, "version": explore.VERSION + 1},
        {**data, "kind": "bogus"},
        {k: v for k, v in data.items() if k != "alpha"},
        {**data, "extra": 1},
        {**data, "luts": {"jet": data["luts"]["jet"][:-4]}},  # 765 bytes, not 768
        {**data, "photos": [{**photo, "maps": [{**photo["maps"][0], "lo": 0.0}]}]},  # a map, not a stack
        {**data, "photos": [{**photo, "image": {**photo["image"], "src": "https://example.org/a.jpg"}}]},
        {**payload(every_kind["occlusion"]), "windows": [0]},
    ]
    for k, candidate in enumerate(bad):
        assert not schema.is_valid(candidate), k


# --- each explorer's data is the library's --------------------------------------------------

def test_receptive_field_data(model, x):
    layers = ["0", "2", "4", "5"]
    e = explore.receptive_field_explorer(model, x, display(x), layers, probes=3)
    fields = convlens.receptive_field(model, (32, 48))
    assert [layer["name"] for layer in e.data["layers"]] == layers
    maps = {"0": [16, 24], "2": [16, 24], "4": [8, 12], "5": [8, 12]}
    for layer in e.data["layers"]:
        f = fields[layer["name"]]
        assert (tuple(layer["size"]), tuple(layer["stride"]), tuple(layer["padding"])) == \
            (f.size, f.stride, f.padding)
        assert layer["map"] == maps[layer["name"]]
        rows, cols = {16: (0, 8, 15), 8: (0, 4, 7)}[layer["map"][0]], \
            {24: (0, 12, 23), 12: (0, 6, 11)}[layer["map"][1]]  # first, middle, last
        assert [tuple(m["unit"]) for m in layer["measured"]] == [(i, j) for i in rows for j in cols]
        assert (layer["map"][0] // 2, layer["map"][1] // 2) in [tuple(m["unit"]) for m in layer["measured"]]
        activation = convlens.feature_maps(model, x, layer["name"])[0]
        for probe in layer["measured"]:
            i, j = probe["unit"]
            # the most active channel whose gradient reaches the input; the ones skipped
            # before it (more active) have an empty footprint
            order = activation[:, i, j].argsort(descending=True, stable=True).tolist()
            assert probe["channel"] == order[probe["skipped"]]
            for more_active in order[:probe["skipped"]]:
                assert not convlens.empirical_receptive_field(
                    model, layer["name"], (more_active, i, j), x=x).any()
            mask = convlens.empirical_receptive_field(model, layer["name"],
                                                      (probe["channel"], i, j), x=x).numpy()
            assert probe["pixels"] == mask.sum()
            if probe["pixels"]:
                t, left, b, r = probe["box"]
                bits = np.frombuffer(explore.zlib.decompress(
                    explore.base64.b64decode(probe["z"])), np.uint8)
                crop = np.unpackbits(bits)[: (b - t) * (r - left)].reshape(b - t, r - left)
                rebuilt = np.zeros_like(mask)
                rebuilt[t:b, left:r] = crop
                assert (rebuilt == mask).all()
                # the measured footprint lies inside the theoretical box
                top, lft, bottom, right = f.box(i, j, clip=True)
                assert top <= t and lft <= left and b <= bottom and r <= right


def test_gradcam_data(model, x):
    x2 = x.flip(-1)
    e = explore.gradcam_explorer(model, {"a": (x, display(x)), "b": (x2, display(x2))},
                                 ["2", "5"], LABELS, top=4)
    for photo, xi in zip(e.data["photos"], (x, x2)):
        with torch.no_grad():
            top = model(xi).softmax(1)[0].topk(4).indices.tolist()
        assert [c["index"] for c in photo["classes"]] == top
        assert [c["label"] for c in photo["classes"]] == [LABELS[i] for i in top]
        for layer, stack in zip(photo["layers"], photo["maps"]):
            decoded = explore.decode(stack)
            for k, c in enumerate(top):
                cam = convlens.gradcam(model, xi, c, layer["name"], upsample=False)[0, 0].numpy()
                assert list(cam.shape) == layer["map"]
                assert np.abs(decoded[k] - cam).max() <= half_step(cam)
    assert e.data["luts"].keys() == {"jet"}


@pytest.mark.slow
def test_occlusion_data_for_every_class_from_the_same_passes(model, x):
    e = explore.occlusion_explorer(model, x, display(x), LABELS, windows=(8, 16),
                                   strides=(4, 8), top=3, batch_size=7)
    assert e.data["windows"] == [8, 16] and e.data["strides"] == [4, 8]
    limit = 0.0
    for w, row in zip((8, 16), e.data["maps"]):
        for s, stack in zip((4, 8), row):
            decoded = explore.decode(stack)
            for k, c in enumerate(e.data["classes"]):
                expected = convlens.occlusion(model, x, c["index"], w, s)[0].numpy()
                assert decoded[k].shape == expected.shape
                assert np.abs(decoded[k] - expected).max() <= half_step(expected)
                limit = max(limit, np.abs(expected).max())
    assert e.data["limit"] == pytest.approx(limit, rel=1e-5)


def test_smoothgrad_data_equals_fresh_library_calls(model, x):
    e = explore.smoothgrad_explorer(model, x, display(x), 3, noise=(0.1, 0.3),
                                    samples=(4, 1, 3), seed=5)
    assert e.data["noise"] == [0.0, 0.1, 0.3] and e.data["samples"] == [1, 3, 4]
    plain = explore.saliency_display(convlens.gradient(model, x, 3))
    assert np.abs(explore.decode(e.data["maps"][0][0]) - plain).max() <= 0.5 / 255 + 1e-6
    for level, row in zip((0.1, 0.3), e.data["maps"][1:]):
        for n, entry in zip((1, 3, 4), row):
            sg = convlens.smoothgrad(model, x, 3, samples=n, noise=level,
                                     generator=torch.Generator().manual_seed(5))
            assert np.abs(explore.decode(entry) - explore.saliency_display(sg)).max() <= 1 / 255


def test_saliency_display_clips_at_the_percentile():
    g = torch.zeros(1, 3, 10, 10)
    g[0, 1] = torch.arange(100.0).view(10, 10)
    g[0, 2, 0, 0] = -200.0  # max |g| over colours: 200 at (0, 0)
    shown = explore.saliency_display(g, percentile=50)
    m = np.abs(g[0].numpy()).max(0) / 200
    assert shown.max() == 1.0
    assert shown[0, 1] == pytest.approx(m[0, 1] / np.percentile(m, 50))
    with pytest.raises(ValueError, match="attribution"):
        explore.saliency_display(torch.zeros(5))


def test_channels_data(model, x):
    e = explore.channels_explorer(model, x, display(x), ["2", "5"], "0", filters=3)
    for layer in e.data["layers"]:
        maps = convlens.feature_maps(model, x, layer["name"])[0].numpy()
        decoded = explore.decode(layer["maps"])
        for c in range(maps.shape[0]):
            assert np.abs(decoded[c] - maps[c]).max() <= half_step(maps[c])
    conv = e.data["conv"]
    strength = model[0].weight.detach().flatten(1).norm(dim=1)
    assert conv["filters"] == sorted(strength.argsort(descending=True)[:3].tolist())
    panels = explore.decode(conv["maps"])
    assert panels.shape == (3, 4, 16, 24)
    for k, f in enumerate(conv["filters"]):
        km = convlens.kernel_maps(model[0], x, out_channels=[f])[0, 0].detach()
        total = (km.sum(0) + model[0].bias.detach()[f])[None]
        expected = torch.cat([km, total]).numpy()
        limit = np.abs(expected).max()
        assert conv["maps"]["hi"][k] == pytest.approx(limit) and conv["maps"]["lo"][k] == -conv["maps"]["hi"][k]
        assert np.abs(panels[k] - expected).max() <= limit / 255 + 1e-6
        # the sum panel is the convolution's own output
        assert np.allclose(total[0], model[0](x)[0, f].detach().numpy(), atol=1e-5)
    chosen = explore.channels_explorer(model, x, display(x), "5", "0", filters=[7, 0])
    assert chosen.data["conv"]["filters"] == [7, 0]
    assert "conv" not in explore.channels_explorer(model, x, display(x), ["5"]).data


# --- layer helpers --------------------------------------------------------------------------

def test_strided_layers_and_stage_layers(model, x):
    assert explore.strided_layers(model, x) == ["0", "4"]
    assert explore.strided_layers(model, x, include=["5", "0"]) == ["0", "4", "5"]
    assert explore.stage_layers(model, x, "2", "5", count=2) == ["2", "5"]
    assert explore.stage_layers(model, x, "0", "5", count=10) == ["0", "1", "2", "3", "4", "5"]
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    small = torch.randn(1, 3, 64, 64)
    assert explore.stage_layers(resnet, small, "layer2", "layer4") == ["layer2", "layer3", "layer4"]
    with pytest.raises(ValueError, match="comes after"):
        explore.stage_layers(resnet, small, "layer4", "layer2")
    with pytest.raises(ValueError, match="called once"):
        explore.stage_layers(resnet, small, "layer1.0.relu", "layer4")  # called twice per pass


# --- bad input, and the model left as found -------------------------------------------------

def test_bad_input_is_named(model, x):
    image = display(x)
    with pytest.raises(ValueError, match="one image"):
        explore.smoothgrad_explorer(model, x.repeat(2, 1, 1, 1), image, 0)
    with pytest.raises(ValueError, match="display version"):
        explore.occlusion_explorer(model, x, image[:10], LABELS)
    with pytest.raises(TypeError, match="layers"):
        explore.channels_explorer(model, x, image, [])
    with pytest.raises(ValueError, match="unknown layer"):
        explore.gradcam_explorer(model, {"a": (x, image)}, ["nope"])
    with pytest.raises(TypeError, match="photos"):
        explore.gradcam_explorer(model, [(x, image)], ["2"])
    with pytest.raises(TypeError, match=r"photos\['a'\]"):
        explore.gradcam_explorer(model, {"a": x}, ["2"])
    with pytest.raises(ValueError, match="noise levels"):
        explore.smoothgrad_explorer(model, x, image, 0, noise=(0.0, 0.1))
    with pytest.raises(TypeError, match="samples"):
        explore.smoothgrad_explorer(model, x, image, 0, samples=(1.5,))
    with pytest.raises(TypeError, match="Conv2d"):
        explore.channels_explorer(model, x, image, ["2"], first_conv="1")
    with pytest.raises(ValueError, match="reads 8 channels"):
        explore.channels_explorer(model, x, image, ["2"], first_conv="2")
    with pytest.raises(ValueError, match="filters"):
        explore.channels_explorer(model, x, image, ["2"], first_conv="0", filters=[8])
    with pytest.raises(ValueError, match="no receptive field"):
        explore.receptive_field_explorer(model, x, image, ["9"])
    with pytest.raises(ValueError, match=r"image must be a display array"):
        explore._photo(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="windows"):
        explore.occlusion_explorer(model, x, image, LABELS, windows=(0,))
    with pytest.raises(ValueError, match="gaps between the windows"):  # x is 32 x 48
        explore.occlusion_explorer(model, x, image, LABELS, windows=(8,), strides=(16,))
    with pytest.raises(ValueError, match="uncovered border"):
        explore.occlusion_explorer(model, x, image, LABELS, windows=(12,), strides=(8,))


def test_the_model_is_left_as_found(x):
    model = tiny_cnn()
    model[1].inplace = True
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[0].weight.requires_grad_(False)
    image = display(x)
    explore.receptive_field_explorer(model, x, image, ["0", "5"], probes=2)
    explore.gradcam_explorer(model, {"a": (x, image)}, ["2"], top=2)
    explore.occlusion_explorer(model, x, image, windows=(16,), strides=(16,), top=2)
    explore.smoothgrad_explorer(model, x, image, 1, noise=(0.2,), samples=(2,))
    explore.channels_explorer(model, x, image, ["2"], "0", filters=2)
    explore.stage_layers(model, x, "0", "5")
    explore.strided_layers(model, x)
    assert not model.training and model[1].inplace
    assert model[0].weight.requires_grad is False and model[2].weight.requires_grad is True
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert all(p.grad is None for p in model.parameters())
