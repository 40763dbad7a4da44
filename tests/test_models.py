"""Loading models offline: the embedded default, torchvision's cache, user checkpoints."""

import os
import re
import urllib.error
from urllib.parse import urlparse

import pytest
import torch
import torchvision

from convlens import images, models
from convlens_course import lesson


@pytest.fixture(scope="module")
def lite0():
    return models.load("efficientnet_lite0")


CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


def top_labels(loaded, image_name, k):
    x = images.prepare(images.load(image_name), loaded.preprocess)
    with torch.no_grad():
        logits = loaded.model(x)
    return [loaded.labels[i] for i in logits[0].topk(k).indices.tolist()]


def test_efficientnet_lite0_is_pretrained_cat(lite0):
    assert CAT_CLASSES & set(top_labels(lite0, "chelsea", 3))


def test_efficientnet_lite0_is_pretrained_coffee(lite0):
    assert top_labels(lite0, "coffee", 1)[0] in {"espresso", "cup", "coffee mug"}


def test_loaded_model_is_in_eval_mode_with_module_activations(lite0):
    assert not any(m.training for m in lite0.model.modules())
    activations = [m for m in lite0.model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    assert len(activations) > 10  # hooks need modules, not functional calls
    assert len(lite0.labels) == 1000 and lite0.labels[281] == "tabby"


@pytest.mark.slow
def test_layer_roles_exist_in_every_architecture():
    for name in models.KNOWN_MODELS:
        names = dict(models.architecture(name).named_modules())
        for role, layer in models._SPECS[name].layers.items():
            assert layer in names, f"{name}: role {role} names missing layer {layer}"


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="known models: efficientnet_lite0, alexnet"):
        models.load("lenet")


def _planted_resnet18(torch_home):
    """A random resnet18 state dict saved where torchvision's cache expects its weights."""
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, folder / os.path.basename(urlparse(url).path))
    return state


def test_torchvision_weights_come_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    planted = _planted_resnet18(tmp_path)

    loaded = models.load("resnet18", download=False)

    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, planted[key]), key
    assert not loaded.model.training
    # torchvision's own loader finds the very same file: our name is the one it expects
    theirs = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    assert torch.equal(theirs["fc.weight"], planted["fc.weight"])


def test_missing_torchvision_weights_name_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(models.WeightsUnavailableError) as error:
        models.load("vgg16")
    message = str(error.value)
    assert "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "download failed" in message


def test_missing_weights_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(models.WeightsUnavailableError, match="alexnet-owt-7be5be79.pth"):
        models.load("alexnet", download=False)


def test_user_checkpoint(tmp_path):
    torch.manual_seed(5)
    mine = torchvision.models.resnet18(weights=None)
    path = tmp_path / "mine.pt"
    torch.save({"state_dict": mine.state_dict(), "epoch": 3}, path)

    loaded = models.load("resnet18", weights=path)

    assert torch.equal(loaded.model.conv1.weight, mine.conv1.weight)
    assert models.weights_identity("resnet18", weights=path) != "missing"


def test_user_checkpoint_for_wrong_architecture(tmp_path):
    path = tmp_path / "alex.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit the 'efficientnet_lite0' architecture"):
        models.load("efficientnet_lite0", weights=path)


def test_user_checkpoint_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        models.load("resnet18", weights=tmp_path / "nope.pt")


def test_weights_identity_follows_content(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert models.weights_identity("resnet18", a) != models.weights_identity("resnet18", b)
    assert models.weights_identity("resnet18", tmp_path / "none.pt") == "missing"
    assert len(models.weights_identity("efficientnet_lite0")) == 64


# ---- any model: specs, labels, layers, preprocessing, roles from a traced pass ----------

TINY_MODEL = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def not_a_model():
    return 3
'''


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny_net.py"
    path.write_text(TINY_MODEL)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"digit {i}\n" for i in range(10)))
    return path, labels


def test_file_spec_with_labels_infers_roles_and_stages(tiny_file):
    path, labels = tiny_file
    loaded = models.load(f"{path}:build", labels=labels)
    assert loaded.labels == [f"digit {i}" for i in range(10)]
    # 224 -> 112 (modules 0, 1) -> 112 (2, 3) -> 56 (4, 5) -> pooled
    assert loaded.layers == {"first_conv": "0", "middle": "5", "last_spatial": "5"}
    assert loaded.stages == ("3", "5")
    assert loaded.preprocess == models.DEFAULT_PREPROCESS
    assert not loaded.model.training


def test_file_spec_without_labels_gets_generic_names(tiny_file):
    loaded = models.load(f"{tiny_file[0]}:build")
    assert loaded.labels == [f"class {i}" for i in range(10)]


def test_labels_count_must_match_outputs(tiny_file, tmp_path):
    wrong = tmp_path / "three.txt"
    wrong.write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match="has 3 class names but the model has 10 outputs"):
        models.load(f"{tiny_file[0]}:build", labels=wrong)
    with pytest.raises(ValueError, match="has 3 class names but the model has 1000 outputs"):
        models.load("resnet18", weights=_saved(tmp_path, torchvision.models.resnet18()),
                    labels=wrong)
    gap = tmp_path / "gap.txt"
    gap.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        models.load(f"{tiny_file[0]}:build", labels=gap)
    with pytest.raises(FileNotFoundError, match="nolabels.txt"):
        models.load(f"{tiny_file[0]}:build", labels=tmp_path / "nolabels.txt")


def _saved(folder, module, name="w.pt"):
    path = folder / name
    torch.save(module.state_dict(), path)
    return path


def test_file_spec_with_weights_is_strict_and_names_keys(tiny_file, tmp_path):
    path, _ = tiny_file
    torch.manual_seed(9)
    reference = models.architecture(f"{path}:build")
    with torch.no_grad():
        reference[0].weight.add_(1.0)
    loaded = models.load(f"{path}:build", weights=_saved(tmp_path, reference))
    assert torch.equal(loaded.model[0].weight, reference[0].weight)

    state = reference.state_dict()
    state["extra.weight"] = state.pop("8.weight")
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError) as error:
        models.load(f"{path}:build", weights=bad)
    assert "missing keys (1): 8.weight" in str(error.value)
    assert "unexpected keys (1): extra.weight" in str(error.value)


def test_module_spec(tiny_file, monkeypatch):
    monkeypatch.syspath_prepend(str(tiny_file[0].parent))
    loaded = models.load("tiny_net:build")
    assert loaded.layers["first_conv"] == "0" and len(loaded.labels) == 10
    assert models.weights_path("tiny_net:build") == tiny_file[0]


@pytest.mark.parametrize("spec, error, words", [
    ("lenet", ValueError, "Accepted forms: a registry name"),
    ("nope/missing.py:build", FileNotFoundError, "missing.py"),
    ("no_such_module_xyz:build", ValueError, "cannot import module 'no_such_module_xyz'"),
    ("torchvision:resnet81", ValueError, "closest: resnet18"),
    ("torchvision:", ValueError, "names no torchvision model"),
    ("timm:resnet18", ValueError, "timm models need weights=FILE"),
    ("resnet18:3x", ValueError, "not a function name"),
    (42, TypeError, "model spec must be a string"),
])
def test_bad_specs_are_named(spec, error, words):
    with pytest.raises(error, match=re.escape(words)):
        models.load(spec)


def test_function_must_return_a_module(tiny_file):
    with pytest.raises(TypeError, match="not_a_model\\(\\) returned int, not an nn.Module"):
        models.load(f"{tiny_file[0]}:not_a_model")
    with pytest.raises(ValueError, match="has no function 'absent'"):
        models.load(f"{tiny_file[0]}:absent")


def test_layer_overrides_and_closest_names(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _planted_resnet18(tmp_path)
    loaded = models.load("resnet18", download=False, layers={"middle": "layer3"})
    assert loaded.layers == {"first_conv": "conv1", "middle": "layer3", "last_spatial": "layer4"}
    with pytest.raises(ValueError, match="no module named 'layer5'; closest: layer4"):
        models.load("resnet18", download=False, layers={"last_spatial": "layer5"})
    with pytest.raises(ValueError, match="'last_conv' is now called 'last_spatial'"):
        models.load("resnet18", download=False, layers={"last_conv": "layer4"})
    moved = models.load("resnet18", download=False, layers="last_spatial=layer3")
    assert moved.stages[-1] == "layer3" and moved.stages.count("layer3") == 1


def _plant(torch_home, builder, **kwargs):
    weights = torchvision.models.get_model_weights(builder).DEFAULT
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(11)
    state = getattr(torchvision.models, builder)(weights=None, **kwargs).state_dict()
    torch.save(state, folder / os.path.basename(urlparse(weights.url).path))
    return state


def test_torchvision_spec_reads_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    planted = _plant(tmp_path, "mobilenet_v3_small")
    loaded = models.load("torchvision:mobilenet_v3_small", download=False)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, planted[key]), key
    enum = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    assert loaded.labels == list(enum.meta["categories"])
    assert (loaded.preprocess.resize, loaded.preprocess.crop) == (256, 224)
    assert loaded.layers["first_conv"] == "features.0.0"
    assert loaded.layers["last_spatial"] == "features" == loaded.stages[-1]
    assert models.weights_identity("torchvision:mobilenet_v3_small") != "missing"


@pytest.mark.slow
def test_torchvision_spec_preprocessing_from_the_weights_enum(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _plant(tmp_path, "efficientnet_b1")  # its transforms: resize 255, crop 240, bicubic
    loaded = models.load("torchvision:efficientnet_b1", download=False)
    transform = torchvision.models.EfficientNet_B1_Weights.DEFAULT.transforms()
    assert loaded.preprocess.crop == transform.crop_size[0]
    assert loaded.preprocess.resize == transform.resize_size[0]
    assert loaded.preprocess.interpolation == transform.interpolation


def test_torchvision_spec_missing_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(models.WeightsUnavailableError, match="densenet121-a639ec97.pth"):
        models.load("torchvision:densenet121", download=False)


def test_timm_spec_with_weights_and_its_config(tmp_path):
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilenetv3_small_050", pretrained=False)
    path = _saved(tmp_path, model)
    loaded = models.load("timm:mobilenetv3_small_050", weights=path)
    cfg = model.pretrained_cfg
    assert loaded.preprocess.crop == cfg["input_size"][-1]
    assert loaded.preprocess.resize == int(cfg["input_size"][-1] / cfg["crop_pct"])
    assert loaded.preprocess.mean == tuple(cfg["mean"])
    assert len(loaded.labels) == 1000 and loaded.layers["first_conv"] == "conv_stem"


def test_preprocess_overrides():
    base = models.DEFAULT_PREPROCESS
    parsed = models.parse_preprocess("resize=300, crop=256, mean=0.5/0.5/0.5, "
                                     "interpolation=bicubic", base)
    assert (parsed.resize, parsed.crop, parsed.mean, parsed.std) == (
        300, 256, (0.5, 0.5, 0.5), base.std)
    assert parsed.interpolation.value == "bicubic"
    for bad, words in [("crop=abc", "expected resize=INT"), ("mean=1/2", "expected resize=INT"),
                       ("std=1/0/1", "positive"), ("size=3", "known keys")]:
        with pytest.raises(ValueError, match=words):
            models.parse_preprocess(bad)


def test_load_from_environment(tiny_file, monkeypatch):
    path, labels = tiny_file
    monkeypatch.setenv("CONVLENS_MODEL", f"{path}:build")
    monkeypatch.setenv("CONVLENS_LABELS", str(labels))
    monkeypatch.setenv("CONVLENS_LAYERS", "middle=2, last_spatial=4")
    monkeypatch.setenv("CONVLENS_PREPROCESS", "resize=72,crop=64")
    monkeypatch.delenv("CONVLENS_WEIGHTS", raising=False)
    loaded = lesson.load_from_environment()
    assert loaded.labels[3] == "digit 3"
    assert loaded.layers == {"first_conv": "0", "middle": "2", "last_spatial": "4"}
    assert (loaded.preprocess.resize, loaded.preprocess.crop) == (72, 64)
    monkeypatch.setenv("CONVLENS_LAYERS", "middle")
    with pytest.raises(ValueError, match="not 'role=module.name'"):
        lesson.load_from_environment()
    monkeypatch.setenv("CONVLENS_MODEL", "resnet-18")
    with pytest.raises(ValueError, match="unknown model 'resnet-18'.*Accepted forms"):
        lesson.load_from_environment()


def test_load_from_environment_defaults_to_the_course_model(monkeypatch):
    for name in ("CONVLENS_MODEL", "CONVLENS_WEIGHTS", "CONVLENS_LABELS", "CONVLENS_LAYERS",
                 "CONVLENS_PREPROCESS"):
        monkeypatch.delenv(name, raising=False)
    loaded = lesson.load_from_environment()
    assert loaded.name == "efficientnet_lite0" and loaded.layers["last_spatial"] == "bn2"
    assert loaded.stages == ("blocks.2", "blocks.4", "blocks.5", "bn2")


INFERRED = {  # builder: (first_conv, middle, last_spatial, stages)
    "alexnet": ("features.0", "features.4", "features.11",
                ("features.1", "features.4", "features.11")),
    "vgg16": ("features.0", "features.15", "features.29",
              ("features.3", "features.8", "features.15", "features.22", "features.29")),
    "resnet18": ("conv1", "layer2", "layer4", ("relu", "layer1", "layer2", "layer3", "layer4")),
    "resnet50": ("conv1", "layer2", "layer4", ("relu", "layer1", "layer2", "layer3", "layer4")),
    "mobilenet_v3_small": ("features.0.0", "features.3", "features",
                           ("features.0", "features.1", "features.3", "features.8", "features")),
    "densenet121": ("features.conv0", "features.denseblock2", "features",
                    ("features.relu0", "features.denseblock1", "features.denseblock2",
                     "features.denseblock3", "features")),
    "efficientnet_b0": ("features.0.0", "features.3", "features",
                        ("features.1", "features.2", "features.3", "features.5", "features")),
    "googlenet": ("conv1.conv", "inception3b", "inception5b",
                  ("conv1", "conv3", "inception3b", "inception4e", "inception5b")),
    "convnext_tiny": ("features.0.0", "features.5", "features",
                      ("features.1", "features.3", "features.5", "features")),
    # a strided branch runs before the branch that still works at the old resolution
    "regnet_y_400mf": ("stem.0", "trunk_output.block2", "trunk_output",
                       ("stem", "trunk_output.block1", "trunk_output.block2",
                        "trunk_output.block3", "trunk_output")),
    "shufflenet_v2_x1_0": ("conv1.0", "stage2", "conv5",
                           ("conv1", "stage2.0.branch2.2", "stage2", "stage3", "conv5")),
}


@pytest.mark.slow
@pytest.mark.parametrize("builder", list(INFERRED))
def test_inferred_roles_on_torchvision_architectures(builder):
    extra = {"aux_logits": False, "init_weights": True} if builder == "googlenet" else {}
    model = getattr(torchvision.models, builder)(weights=None, **extra)
    model.train()
    first, middle, last, stages = INFERRED[builder]
    assert models.infer_layers(model) == {"first_conv": first, "middle": middle,
                                          "last_spatial": last}
    assert models.infer_stages(model) == stages
    assert all(m.training for m in model.modules())  # flags restored
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.slow
def test_inferred_roles_agree_with_the_registry():
    """first_conv and last_spatial agree everywhere. middle differs on two models, by the
    documented rule stages[len // 2]: AlexNet's stages are 55, 27, 13 px (middle
    features.4, the registry picks features.7 inside the 13 px stage) and
    EfficientNet-Lite0's 112, 56, 28, 14, 7 (blocks.2 at 28 px; the registry picks
    blocks.3, the first block at 14 px)."""
    for name in ("efficientnet_lite0", "alexnet", "vgg16", "resnet18", "resnet50"):
        explicit = models._SPECS[name].layers
        inferred = models.infer_layers(models.architecture(name))
        assert inferred["first_conv"] == explicit["first_conv"], name
        assert inferred["last_spatial"] == explicit["last_spatial"], name
        if name not in ("alexnet", "efficientnet_lite0"):
            assert inferred["middle"] == explicit["middle"], name
        assert models._SPECS[name].stages[-1] == explicit["last_spatial"]


def test_infer_layers_needs_a_convolution():
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        models.infer_layers(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16, 2)),
                            (4, 4))
    with pytest.raises(ValueError, match="input_size"):
        models.infer_layers(torchvision.models.alexnet(), 224)


@pytest.fixture(scope="module")
def fine_tuned_resnet18(tmp_path_factory):
    """A ResNet-18 checkpoint with a 10-class head, as fine-tuning leaves it, and its labels."""
    folder = tmp_path_factory.mktemp("fine_tuned")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Linear(512, 10)
    torch.save(net.state_dict(), folder / "finetuned.pt")
    (folder / "labels.txt").write_text("".join(f"part {i}\n" for i in range(10)))
    return folder / "finetuned.pt", folder / "labels.txt", net.eval()


@pytest.mark.parametrize("spec", ["resnet18", "torchvision:resnet18"])
def test_a_fine_tuned_head_is_resized_to_the_checkpoint(fine_tuned_resnet18, spec):
    weights, labels, reference = fine_tuned_resnet18
    loaded = models.load(spec, weights=weights, labels=labels)
    assert loaded.model.fc.out_features == 10 and len(loaded.labels) == 10
    assert loaded.labels[3] == "part 3"
    assert any("'fc'" in note and "1000 to 10" in note for note in loaded.notes), loaded.notes
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x))
    unlabelled = models.load(spec, weights=weights)
    assert unlabelled.labels == [f"class {i}" for i in range(10)]


def test_a_fine_tuned_head_needs_labels_of_its_size(fine_tuned_resnet18, tmp_path):
    weights, _, _ = fine_tuned_resnet18
    five = tmp_path / "five.txt"
    five.write_text("a\nb\nc\nd\ne\n")
    with pytest.raises(ValueError, match="has 5 class names but the model has 10 outputs"):
        models.load("resnet18", weights=weights, labels=five)


def test_other_mismatches_still_fail_and_point_to_a_model_function(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.layer4[0].conv1 = torch.nn.Conv2d(256, 256, 3, stride=2, padding=1, bias=False)
    torch.save(net.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"shape mismatches.*layer4\.0\.conv1.*file\.py:build"):
        models.load("resnet18", weights=tmp_path / "other.pt")
