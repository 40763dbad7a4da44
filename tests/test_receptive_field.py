"""Receptive fields: published values, hand-computed toys, and the gradient cross-check.

Published values: the table of google-research/receptive_field (the library that
accompanies Araujo, Norris & Sim 2019, "Computing receptive fields of convolutional
neural networks", Distill) lists, for the last feature map,
``alexnet_v2: 195 / 32 / 64`` and ``vgg_16: 212 / 32 / 90`` (size / effective
stride / effective padding). The per-layer values below follow from the same
recurrences and match the layer-by-layer VGG16 tables found in course notes
(3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212).
"""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from convlens.receptive_fields import (
    RF,
    ReceptiveFieldError,
    empirical_receptive_field,
    receptive_field,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _box_mask(rf: RF, i: int, j: int) -> torch.Tensor:
    top, left, bottom, right = rf.box(i, j, clip=True)
    mask = torch.zeros(rf.input_size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def _positive_averaging_copy(model: nn.Module) -> nn.Module:
    """A copy in which every path carries a positive gradient: convolutions average
    (weight 1/fan_in, bias 0) and max pools become average pools of the same geometry,
    so the nonzero-gradient set is exactly the analytic field."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(
                    module,
                    name,
                    nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode),
                )
        if isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).eval()


@pytest.fixture(scope="module")
def vgg16():
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


# --- published values --------------------------------------------------------------------


def test_alexnet_matches_published_fields(alexnet):
    rf = receptive_field(alexnet)
    expected = {  # conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5: (size, jump)
        "features.0": (11, 4),
        "features.2": (19, 8),
        "features.3": (51, 8),
        "features.5": (67, 16),
        "features.6": (99, 16),
        "features.8": (131, 16),
        "features.10": (163, 16),
        "features.12": (195, 32),
    }
    for name, (size, jump) in expected.items():
        assert rf[name].size == (size, size), name
        assert rf[name].stride == (jump, jump), name
    # ReLUs keep the field of the conv before them; the container ends at pool5.
    assert rf["features.1"] == rf["features.0"]
    assert rf["features"] == rf["features.12"]
    # TF-slim's alexnet_v2 has 64: its conv1 is unpadded, torchvision's pads by 2 (j = 1).
    assert rf["features.12"].padding == (64 + 2, 64 + 2)
    # avgpool is AdaptiveAvgPool2d(6) on a 6x6 map at 224 px: an identity.
    assert rf["avgpool"] == rf["features.12"]
    # flatten of a 6x6 map: its elements are still local units, left out (not a map)
    assert "classifier.0" not in rf
    # a fully connected unit sees the whole image: global, no local window
    assert rf["classifier.1"] == RF.whole_input((224, 224)) and rf["classifier"].is_global
    assert not rf["classifier.1"].has_window and "global" in repr(rf["classifier.1"])


@pytest.mark.slow
def test_vgg16_matches_published_fields(vgg16):
    rf = receptive_field(vgg16)
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    conv_sizes = [3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    conv_jumps = [1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16]
    for index, size, jump in zip(convs, conv_sizes, conv_jumps):
        assert rf[f"features.{index}"].size == (size, size), index
        assert rf[f"features.{index}"].stride == (jump, jump), index
    pools = {4: (6, 2), 9: (16, 4), 16: (44, 8), 23: (100, 16), 30: (212, 32)}
    for index, (size, jump) in pools.items():
        assert rf[f"features.{index}"].size == (size, size), index
        assert rf[f"features.{index}"].stride == (jump, jump), index
    assert rf["features.30"].padding == (90, 90)  # published effective padding


def test_resnet_fields_and_branch_merges(resnet18):
    rf = receptive_field(resnet18)
    assert rf["conv1"] == RF((7, 7), (2, 2), (3, 3), (224, 224))
    assert rf["maxpool"].size == (11, 11) and rf["maxpool"].stride == (4, 4)
    # layer1: four 3x3 convs at jump 4 -> 11 + 4 * 2 * 4 = 43
    assert rf["layer1"].size == (43, 43)
    # the 1x1 shortcut keeps the block input's field; the block takes the larger path
    assert rf["layer2.0.downsample"].size == rf["layer1"].size
    assert rf["layer2.0"].size == (43 + 2 * 4 + 2 * 8,) * 2
    assert rf["layer4"].size == (435, 435) and rf["layer4"].stride == (32, 32)
    # the shared in-place relu runs at two places with different fields: left out
    assert "layer4.1.relu" not in rf
    # The published resnet_v1_50 value (483) is for TF-slim, which strides the *last*
    # unit of each block; torchvision strides the first, so fewer 3x3 convs run at the
    # large jumps. By hand: stem 7 -> 11 (maxpool), layer1 +3*8 = 35, layer2 +8 +3*16 = 91,
    # layer3 +16 +5*32 = 267, layer4 +32 +2*64 = 427.
    torch.manual_seed(0)
    assert receptive_field(torchvision.models.resnet50(weights=None))["layer4"].size == (427, 427)


def test_timm_conv2d_same_padding_depends_on_input_size():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    # TF "SAME", k=3, s=2: 224 px needs 1 pad pixel, all after; 225 px needs 2, one before
    assert receptive_field(model, (224, 224))["conv_stem"] == RF((3, 3), (2, 2), (0, 0), (224, 224))
    assert receptive_field(model, (225, 225))["conv_stem"].padding == (1, 1)
    assert receptive_field(model, (224, 224))["blocks"].stride == (32, 32)


# --- gradient cross-check ----------------------------------------------------------------


@pytest.mark.parametrize(
    "builder, size, probes",
    [
        (torchvision.models.alexnet, 127, [("features.5", (0, 1, 2)), ("features.12", (0, 0, 1))]),
        (torchvision.models.vgg16, 112, [("features.16", (0, 5, 7)), ("features.28", (3, 0, 6))]),
    ],
)
@pytest.mark.slow
def test_empirical_field_equals_analytic_box_with_positive_weights(builder, size, probes):
    model = _positive_averaging_copy(builder(weights=None))
    rf = receptive_field(model, (size, size))
    for layer, (channel, i, j) in probes:
        mask = empirical_receptive_field(model, layer, (channel, i, j), (size, size))
        assert torch.equal(mask, _box_mask(rf[layer], i, j)), layer


def test_resnet_empirical_matches(resnet18):
    model = _positive_averaging_copy(resnet18)
    rf = receptive_field(model, (224, 224))
    for layer, (i, j) in [("layer2.1", (10, 12)), ("layer4", (0, 0))]:
        mask = empirical_receptive_field(model, layer, (1, i, j), (224, 224))
        assert torch.equal(mask, _box_mask(rf[layer], i, j)), layer


@pytest.mark.parametrize("size", [96, 97])
def test_efficientnet_lite_empirical_matches(size):
    """The course's default architecture: TF "same" padding, depthwise convs, residuals."""
    model = _positive_averaging_copy(timm.create_model("tf_efficientnet_lite0", pretrained=False))
    rf = receptive_field(model, (size, size))
    # a small positive input: with a large one the residual sums pass 6 and ReLU6
    # saturates, which zeroes gradients and shrinks the empirical set
    x = (torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) + 0.5) / 100
    for layer, (i, j) in [("blocks.2", (3, 5)), ("blocks.3", (2, 3)), ("bn2", (1, 2))]:
        mask = empirical_receptive_field(model, layer, (0, i, j), x=x)
        assert torch.equal(mask, _box_mask(rf[layer], i, j)), layer


def test_empirical_field_inside_analytic_box_for_random_weights(alexnet):
    rf = receptive_field(alexnet, (127, 127))
    mask = empirical_receptive_field(alexnet, "features.10", (3, 2, 3), (127, 127))
    box = _box_mask(rf["features.10"], 2, 3)
    assert mask.any()
    assert not (mask & ~box).any()


def _dilated_rectangular_chain():
    return nn.Sequential(
        nn.Conv2d(2, 3, (3, 5), dilation=(2, 1), padding=(2, 2)),
        nn.Conv2d(3, 3, (1, 3), stride=(1, 2)),
        nn.AvgPool2d((2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    )


def test_dilation_and_rectangular_kernels_hand_computed():
    torch.manual_seed(0)
    rf = receptive_field(_dilated_rectangular_chain(), (20, 21))
    # conv1: r = 1 + (3-1)*2 = 5 (h), 1 + 4 = 5 (w); p = 2, 2
    assert rf["0"] == RF((5, 5), (1, 1), (2, 2), (20, 21))
    # conv2: h unchanged (k=1); w: r = 5 + 2 = 7, j = 2
    assert rf["1"] == RF((5, 7), (1, 2), (2, 2), (20, 21))
    # pool: h: r = 5 + 1, j = 2, p = 2 + 1; w: r = 7 + 2*2, j = 2, p = 2 + 1*2
    assert rf["2"] == RF((6, 11), (2, 2), (3, 4), (20, 21))
    assert rf[""] == rf["2"]


def _bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def test_linear_chain_empirical_equals_analytic():
    torch.manual_seed(0)
    chain = nn.Sequential(  # no nonlinearity, no dilation: every pixel of the box counts
        nn.Conv2d(2, 3, (3, 5), padding=(1, 2)),
        nn.Conv2d(3, 3, (1, 3), stride=(1, 2)),
        nn.AvgPool2d((2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    )
    rf = receptive_field(chain, (20, 21))
    out_h, out_w = chain(torch.zeros(1, 2, 20, 21)).shape[-2:]
    for name, unit in [("2", (0, 0, 0)), ("2", (1, out_h - 1, out_w - 1)), ("1", (2, 7, 4))]:
        mask = empirical_receptive_field(chain, name, unit, (20, 21))
        assert torch.equal(mask, _box_mask(rf[name], *unit[1:])), (name, unit)


def test_dilated_field_has_holes_inside_its_box():
    torch.manual_seed(0)
    chain = _dilated_rectangular_chain()
    rf = receptive_field(chain, (20, 21))
    for unit in [(0, 0, 0), (1, 4, 6)]:
        mask = empirical_receptive_field(chain, "2", unit, (20, 21))
        assert _bounding_box(mask) == rf["2"].box(*unit[1:], clip=True)
    # unit (0, 0): the 2-row pool window meets conv rows -1 (padding) and 0, and the
    # height-dilated conv reads input rows -2, 0, 2 of it: row 1 is never read.
    mask = empirical_receptive_field(chain, "2", (0, 0, 0), (20, 21))
    assert mask[0].any() and mask[2].any() and not mask[1].any()


class _TwoBranches(nn.Module):
    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_aligned_branches_take_the_larger_field():
    model = _TwoBranches(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, padding=2))
    assert receptive_field(model, (9, 9))[""] == RF((5, 5), (1, 1), (2, 2), (9, 9))


def test_misaligned_branches_raise():
    # same output size and jump, but the 2x2 field is centred half a pixel off the 1x1 one
    model = _TwoBranches(nn.Conv2d(3, 4, 2, stride=2), nn.Conv2d(3, 4, 1, stride=2))
    with pytest.raises(ValueError, match="not aligned"):
        receptive_field(model, (8, 8))


class _SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(y.mean((2, 3), keepdim=True))


def test_global_gate_keeps_the_local_window_and_marks_global():
    torch.manual_seed(0)
    model = _SqueezeExcite().eval()
    rf = receptive_field(model, (10, 12))
    # the gate's pooled 1x1 map: no local window; the gated map: the conv's window + global
    assert rf[""] == RF((3, 3), (1, 1), (1, 1), (10, 12), is_global=True)
    assert rf[""].has_window and "global context" in repr(rf[""])
    assert rf["conv"] == RF((3, 3), (1, 1), (1, 1), (10, 12))
    # the gradient probe agrees: through the gate, one unit depends on every pixel
    mask = empirical_receptive_field(model, "", (0, 4, 5), (10, 12))
    assert mask.all()
    assert not empirical_receptive_field(model, "conv", (0, 4, 5), (10, 12)).all()


def test_adaptive_pooling_identity_regular_and_irregular():
    for out, expected in [(8, RF((3, 3), (1, 1), (1, 1), (8, 8))), (4, RF((4, 4), (2, 2), (1, 1), (8, 8)))]:
        model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d(out))
        assert receptive_field(model, (8, 8))["1"] == expected
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d(3))
    irregular = receptive_field(model, (8, 8))["1"]  # a superset: the whole input
    assert irregular.is_global and irregular.box(0, 0, clip=True) == (0, 0, 8, 8)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d(1))
    assert receptive_field(model, (8, 8))["1"] == RF.whole_input((8, 8))


def test_box_is_half_open_and_clips():
    rf = RF((5, 3), (2, 4), (2, 1), (10, 10))
    assert rf.box(0, 0) == (-2, -1, 3, 2)
    assert rf.box(0, 0, clip=True) == (0, 0, 3, 2)
    assert rf.box(4, 3) == (6, 11, 11, 14)
    assert rf.box(4, 3, clip=True) == (6, 10, 10, 10)
    assert rf.center(1, 1) == (2.0, 4.0)


class _Flip(nn.Module):
    def forward(self, x):
        return torch.flip(x, dims=(-1,))


def test_unanalysable_modules_raise_clearly():
    upsampling = nn.Sequential(nn.Conv2d(3, 3, 3), nn.Upsample(scale_factor=2))
    with pytest.raises(ReceptiveFieldError, match=r"'1' \(Upsample\).*interpolate") as error:
        receptive_field(upsampling, (16, 16))
    assert error.value.layer == "1" and error.value.module_type == "Upsample"
    assert "interpolate" in error.value.reason
    assert error.value.fields == {"0": RF((3, 3), (1, 1), (0, 0), (16, 16))}  # before it
    assert isinstance(error.value, ValueError)
    with pytest.raises(ValueError, match="flip"):
        receptive_field(nn.Sequential(nn.Conv2d(3, 3, 3), _Flip()), (16, 16))


def test_fc_layers_are_left_out_and_functional_code_is_followed():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    rf = receptive_field(Functional(), (12, 12))
    assert set(rf) == {"conv", "fc", ""}
    assert rf["conv"] == RF((3, 3), (1, 1), (0, 0), (12, 12))
    assert rf["fc"] == rf[""] == RF.whole_input((12, 12))  # after global pooling


def test_model_left_as_found(resnet18):
    model = copy.deepcopy(resnet18).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    receptive_field(model, (64, 64))
    empirical_receptive_field(model, "layer1", (0, 1, 1), (64, 64))
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_empirical_errors(resnet18):
    with pytest.raises(ValueError, match="outside"):
        empirical_receptive_field(resnet18, "layer1", (0, 99, 0), (64, 64))
    with pytest.raises(ValueError, match="called 2 times"):
        empirical_receptive_field(resnet18, "layer1.0.relu", (0, 1, 1), (64, 64))
    with pytest.raises(ValueError, match="unknown layer"):
        empirical_receptive_field(resnet18, "nope", (0, 1, 1), (64, 64))
    with pytest.raises(TypeError, match="generator"):
        empirical_receptive_field(resnet18, "layer1", (0, 1, 1), (64, 64), generator=3)


# --- global layers, norms, channels-last ----------------------------------------------


class _ChannelsLast(nn.Module):
    """conv -> NHWC -> LayerNorm over channels -> Linear -> NCHW -> conv (a ConvNeXt block)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.pointwise = nn.Linear(4, 4)
        self.conv2 = nn.Conv2d(4, 2, 3, stride=2)

    def forward(self, x):
        x = self.conv1(x).permute(0, 2, 3, 1)
        x = self.pointwise(self.norm(x))
        return self.conv2(x.permute(0, 3, 1, 2))


def test_channels_last_layernorm_and_linear_are_pointwise():
    torch.manual_seed(0)
    model = _ChannelsLast().eval()
    rf = receptive_field(model, (13, 13))
    assert rf["norm"] == rf["pointwise"] == rf["conv1"] == RF((3, 3), (1, 1), (0, 0), (13, 13))
    assert rf[""] == RF((5, 5), (2, 2), (0, 0), (13, 13))  # 3 + 2*1, jump 2
    for unit in [(0, 0, 0), (1, 2, 3)]:  # no rectifier: the whole box has a nonzero gradient
        mask = empirical_receptive_field(model, "", unit, (13, 13))
        assert torch.equal(mask, _box_mask(rf[""], *unit[1:])), unit


class _ConvOnChannelsLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3)

    def forward(self, x):
        return self.conv(x.permute(0, 2, 3, 1))  # convolves over (width, channels)


def test_convolution_on_a_channels_last_map_is_refused_naming_the_module():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), _ConvOnChannelsLast())
    with pytest.raises(ReceptiveFieldError, match=r"'1.conv' \(Conv2d\).*channels-last") as error:
        receptive_field(model, (8, 8))
    assert set(error.value.fields) == {"0"}


def test_groupnorm_is_global_context_and_the_gradient_agrees():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Conv2d(4, 4, 3, padding=1)).eval()
    rf = receptive_field(model, (12, 12))
    assert rf["0"] == RF((3, 3), (1, 1), (1, 1), (12, 12))
    assert rf["1"] == RF((3, 3), (1, 1), (1, 1), (12, 12), is_global=True)
    assert rf["2"] == RF((5, 5), (1, 1), (2, 2), (12, 12), is_global=True)
    # its mean and variance run over every position: one unit's gradient reaches every pixel
    assert empirical_receptive_field(model, "1", (0, 5, 5), (12, 12)).all()
    assert not empirical_receptive_field(model, "0", (0, 5, 5), (12, 12)).all()


def test_global_pools_are_global():
    class MeanPool(nn.Module):
        def forward(self, x):
            return x.mean((2, 3), keepdim=True)

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool, self.fc = nn.Conv2d(3, 4, 3), MeanPool(), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.conv(x)), 1))

    rf = receptive_field(Functional(), (9, 9))
    assert rf["pool"] == rf["fc"] == rf[""] == RF.whole_input((9, 9))
    assert repr(rf["pool"]) == "RF(global: every unit sees the whole 9x9 input)"
    # an average pool whose window is the whole map is a global pool too
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(7))
    assert receptive_field(model, (9, 9))["1"] == RF.whole_input((9, 9))


def test_convnext_is_analysed_through_its_permutes():
    torch.manual_seed(0)
    model = torchvision.models.convnext_tiny(weights=None).eval()
    rf = receptive_field(model)
    # stem 4x4/4; per stage: blocks x (7-1) x jump, downsampling 2x2/2 adds one jump:
    # 4 + 3*6*4 = 76, +4 = 80, + 3*6*8 = 224, +8 = 232, + 9*6*16 = 1096, +16 = 1112, + 3*6*32
    assert rf["features.0"].size == (4, 4) and rf["features.0"].stride == (4, 4)
    assert rf["features.1"].size == (76, 76)
    assert rf["features"] == RF((1688, 1688), (32, 32), (828, 828), (224, 224))
    assert rf["features.1.0.block.3"].size == rf["features.1.0.block.0"].size  # Linear: pointwise
    assert rf["avgpool"] == rf["classifier"] == RF.whole_input((224, 224))


def test_course_model_global_pool_is_global():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    rf = receptive_field(model, (224, 224))
    assert rf["bn2"].size == (851, 851) and not rf["bn2"].is_global
    assert rf["global_pool"] == rf["classifier"] == RF.whole_input((224, 224))


@pytest.mark.parametrize(
    "builder",
    ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v3_small", "densenet121",
     "convnext_tiny", "efficientnet_b0"],
)
@pytest.mark.slow
def test_torchvision_zoo_is_analysed_and_its_heads_are_global(builder):
    torch.manual_seed(0)
    model = getattr(torchvision.models, builder)(weights=None).eval()
    rf = receptive_field(model)
    modules = dict(model.named_modules())
    local = [f for f in rf.values() if f.has_window]  # call order: the last map is 7x7
    assert local and local[-1].stride == (32, 32)
    assert rf[""] == RF.whole_input((224, 224))  # the logits see the whole image
    pools = [n for n, m in modules.items() if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))]
    assert all(rf[n] == RF.whole_input((224, 224)) for n in pools if n in rf)
    if builder in ("mobilenet_v3_small", "efficientnet_b0"):  # squeeze-excitation gates
        gated = [rf[n] for n, m in modules.items() if type(m).__name__ == "SqueezeExcitation"]
        assert gated and all(f.is_global and f.has_window for f in gated)
