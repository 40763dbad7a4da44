"""Loading models offline: the embedded default, torchvision's cache, user checkpoints."""

import os
import urllib.error
from urllib.parse import urlparse

import pytest
import torch
import torchvision

from convlens import images, models


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
