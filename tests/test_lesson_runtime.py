"""What lessons rely on: settings from the build's environment and deterministic figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from convlens import lesson  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.arange(12.0).reshape(3, 4))
    ax.set_title("twelve")
    return fig


def _png_chunks(png: bytes) -> list[bytes]:
    chunks, position = [], 8
    while position < len(png):
        length = int.from_bytes(png[position:position + 4], "big")
        chunks.append(png[position + 4:position + 8])
        position += 12 + length
    return chunks


def test_setup_reads_the_build_environment(monkeypatch):
    monkeypatch.setenv("CONVLENS_MODEL", "efficientnet_lite0")
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    monkeypatch.setenv("CONVLENS_SEED", "7")
    ctx = lesson.setup()
    assert ctx.name == "efficientnet_lite0" and ctx.device == torch.device("cpu") and ctx.seed == 7
    first = torch.rand(3)
    lesson.setup()
    assert torch.equal(torch.rand(3), first)  # seeded


def test_setup_rejects_cuda_when_absent(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("CONVLENS_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        lesson.setup()


def test_figures_are_byte_identical_and_carry_no_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLENS_FIGURE_DIR", str(tmp_path))
    lesson._fix_matplotlib()
    assert lesson.show(_figure(), "a") is None
    lesson.show(_figure(), "a")
    first, second = (p.read_bytes() for p in sorted(tmp_path.iterdir())[-2:])
    assert first == second == lesson.render_png(_figure())
    assert first.startswith(b"\x89PNG")
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(_png_chunks(first))
    assert sorted(p.name for p in tmp_path.iterdir())[-2:] == [
        f"figure-{lesson._figure_count - 1:02d}.png", f"figure-{lesson._figure_count:02d}.png"]


def test_context_helpers(monkeypatch):
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    ctx = lesson.setup()
    x = ctx.image("cat_and_coffee", size=(224, 448))
    assert x.shape == (1, 3, 224, 448) and x.device == ctx.device
    assert ctx.class_index("espresso") == 967
    with pytest.raises(ValueError, match="not an ImageNet class"):
        ctx.class_index("unicorn")
    labels = [label for label, _ in ctx.top_classes(x, k=5)]
    assert "espresso" in labels
