"""What lessons rely on: settings from the build's environment, deterministic figures, and
record / expect (the build's side of them: tests/test_coursebuild.py)."""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from convlens_course import lesson, protocol  # noqa: E402


@pytest.fixture(autouse=True)
def restore_setup_side_effects():
    """``lesson.setup()`` changes process-wide state on purpose (see its docstring): put
    torch's flags, the environment, matplotlib's rcParams and the RNGs back afterwards."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    environ = dict(os.environ)
    rc = matplotlib.rcParams.copy()
    rng = torch.get_rng_state()
    current = lesson._current
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark
    os.environ.clear()
    os.environ.update(environ)
    matplotlib.rcParams.update(rc)
    torch.set_rng_state(rng)
    lesson._current = current
    lesson._recorded.clear()


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


def test_large_photographic_figures_are_shown_as_jpeg_and_line_art_as_png():
    import matplotlib.pyplot as plt
    import numpy as np

    from convlens import images

    lesson._fix_matplotlib()
    line_art = lesson.render_png(_figure())
    assert lesson.encode_figure(line_art) == (line_art, "png")  # small: kept as it is

    photo_pixels = np.asarray(images.load("chelsea"))  # a photograph: PNG compresses it badly
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(photo_pixels)
    photo = lesson.render_png(fig)
    plt.close(fig)
    assert len(photo) > lesson.PHOTO_PNG_BYTES
    data, kind = lesson.encode_figure(photo)
    assert kind == "jpeg" and data.startswith(b"\xff\xd8") and 2 * len(data) < len(photo)
    assert lesson.encode_figure(photo) == (data, kind)  # deterministic


def test_context_helpers(monkeypatch):
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    ctx = lesson.setup()
    x = ctx.image("cat_and_coffee", size=(224, 448))
    assert x.shape == (1, 3, 224, 448) and x.device == ctx.device
    assert ctx.class_index("espresso") == 967
    with pytest.raises(ValueError, match="'unicorn' is not a class name of model"):
        ctx.class_index("unicorn")
    labels = [label for label, _ in ctx.top_classes(x, k=5)]
    assert "espresso" in labels
    assert ctx.stages == tuple(getattr(ctx, "stages", ()))


def test_class_index_falls_back_to_the_top_class_of_the_photo(monkeypatch, capsys):
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    ctx = lesson.setup()
    x = ctx.image("cat_and_coffee")
    top = int(ctx.model(x).argmax(dim=1))
    ctx.labels = list(ctx.labels)
    ctx.labels[967] = "espresso-renamed"  # a model whose labels lack 'espresso'
    assert ctx.class_index("espresso", x) == top
    assert capsys.readouterr().out == (f"'espresso' is not a class of this model; using its "
                                       f"top class {ctx.labels[top]!r} for this photo\n")
    with pytest.raises(TypeError, match="label must be a class name"):
        ctx.class_index(967)


def test_setup_side_effects_are_as_documented(monkeypatch):
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    lesson.record("leftover", 1)
    lesson.setup()
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert lesson._recorded == {}


@pytest.mark.parametrize("value, fmt, text", [
    (0.3312, ".1%", "33.1%"), (0.3312, "{:.1%}", "33.1%"), (9.2449, "{:.2f} ms", "9.24 ms"),
    (12, None, "12"), ("tiger cat", None, "tiger cat"), (torch.tensor([0.5]), ".2f", "0.50"),
    (np.float32(2.0), ".1f", "2.0"),
])
def test_record_formats_and_returns_the_value(value, fmt, text):
    assert lesson.record("v", value, fmt) is value
    assert lesson._recorded["v"] == text


def test_record_rejects_bad_names_and_formats():
    with pytest.raises(ValueError, match="name must be an identifier"):
        lesson.record("two words", 1)
    with pytest.raises(ValueError, match="fmt '.1%' cannot format 'text'"):
        lesson.record("v", "text", ".1%")
    with pytest.raises(TypeError, match="fmt must be a format string"):
        lesson.record("v", 1, 2)


def test_strict_is_the_default_model_with_its_own_settings_on_any_device(monkeypatch):
    for name in ("CONVLENS_MODEL", "CONVLENS_WEIGHTS", "CONVLENS_LABELS", "CONVLENS_LAYERS",
                 "CONVLENS_PREPROCESS", "CONVLENS_STRICT"):
        monkeypatch.delenv(name, raising=False)
    lesson._current = None
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    assert lesson.strict()
    # the device does not make a build lenient: the text must hold on a GPU too
    lesson._current = lesson.LessonContext("efficientnet_lite0", None, None, [], {},
                                           torch.device("cuda"), 0)
    assert lesson.strict()
    lesson._current = None
    for name, value in [("CONVLENS_MODEL", "alexnet"), ("CONVLENS_WEIGHTS", "my.pt"),
                        ("CONVLENS_LABELS", "l.txt"), ("CONVLENS_LAYERS", "last_conv=x"),
                        ("CONVLENS_PREPROCESS", "crop=200")]:
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert not lesson.strict(), name
            m.setenv("CONVLENS_STRICT", "1")
            assert lesson.strict(), name
    monkeypatch.setenv("CONVLENS_STRICT", "0")
    assert not lesson.strict()
    monkeypatch.setenv("CONVLENS_STRICT", "yes")
    with pytest.raises(ValueError, match="CONVLENS_STRICT must be 0 or 1"):
        lesson.strict()


def test_expect_raises_in_strict_mode_and_returns_false_otherwise(monkeypatch):
    lesson._current = None
    monkeypatch.setenv("CONVLENS_DEVICE", "cpu")
    monkeypatch.setenv("CONVLENS_STRICT", "1")
    assert lesson.expect(True, "it holds") is True
    assert lesson.expect(torch.tensor(True), "it holds") is True
    with pytest.raises(lesson.ClaimFailed, match=r"the text says 'ratio close to 1', which does "
                       r"not hold on model .*, device cpu: measured 0.3312"):
        lesson.expect(0.3312 > 0.9, "ratio close to 1", 0.33124)
    monkeypatch.setenv("CONVLENS_STRICT", "0")
    assert lesson.expect(False, "ratio close to 1", 0.33) is False
    with pytest.raises(TypeError, match="condition must be a bool"):
        lesson.expect(0.33, "ratio close to 1")
    with pytest.raises(ValueError, match="claim must be the non-empty sentence"):
        lesson.expect(True, " ")


def test_most_probable_picks_among_present_candidates_and_falls_back(capsys):
    class Fixed(torch.nn.Module):  # logits that do not depend on the input
        def forward(self, x):
            return torch.tensor([[0.1, 3.0, 2.0, 5.0]]).expand(len(x), -1)

    ctx = lesson.LessonContext("fixed", Fixed(), None, ["tabby", "tiger cat", "cup", "dog"],
                               {}, torch.device("cpu"), 0)
    x = torch.zeros(1, 3, 8, 8)
    assert ctx.most_probable(lesson.CAT_CLASSES, x) == 1  # tiger cat beats tabby; dog is no cat
    assert ctx.most_probable(lesson.CAT_CLASSES, x, exclude=(1,)) == 0
    assert ctx.most_probable(("goldfish",), x) == 3  # absent: the photo's top class
    assert "'goldfish' is not a class of this model" in capsys.readouterr().out
    assert ctx.most_probable(("goldfish",), x, exclude=(3,)) == 1  # top taken: the next one
    assert "already used; taking 'tiger cat' instead" in capsys.readouterr().out


def test_setup_sets_the_reproducibility_switches_and_lists_nondeterministic_ops(monkeypatch):
    import warnings

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cuda.matmul.allow_tf32 = True
    lesson._deterministic()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.are_deterministic_algorithms_enabled()
    # what PyTorch warns for an op without a deterministic CUDA kernel is remembered once
    text = ("adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, "
            "but you set 'torch.use_deterministic_algorithms(True, warn_only=True)'.")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning(UserWarning(text), UserWarning, __file__, 1)
        warnings.showwarning(UserWarning(text), UserWarning, __file__, 2)
    assert lesson.nondeterministic_operations() == ["adaptive_avg_pool2d_backward_cuda"]
    lesson._deterministic()  # a new lesson starts with an empty list
    assert lesson.nondeterministic_operations() == []


def test_show_needs_a_caption_since_it_is_the_alt_text():
    import matplotlib.pyplot as plt

    fig = _figure()
    with pytest.raises(ValueError, match="caption must say what the figure shows"):
        lesson.show(fig, "  ")
    assert not plt.fignum_exists(fig.number)  # closed all the same


def test_top_classes_of_a_model_with_fewer_classes_than_asked():
    class Four(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 2.0, 1.0, -1.0]]).expand(len(x), -1)

    ctx = lesson.LessonContext("four", Four(), None, ["a", "b", "c", "d"], {},
                               torch.device("cpu"), 0)
    assert [label for label, _ in ctx.top_classes(torch.zeros(1, 3, 8, 8), k=5)] == \
        ["b", "c", "a", "d"]


def test_load_model_needs_setup_and_uses_the_cache_folder(monkeypatch, tmp_path):
    from convlens import evidence_net, models

    lesson._current = None
    with pytest.raises(RuntimeError, match="call lesson.setup"):
        lesson.load_model("evidence_net")
    seen = {}

    def fake_load(spec, cache_dir=None, **kwargs):
        seen["spec"], seen["cache_dir"] = spec, cache_dir
        return models.LoadedModel(evidence_net.EvidenceNet(), None, ["x"] * 4, spec, {})

    monkeypatch.setattr(models, "load", fake_load)
    monkeypatch.setenv("CONVLENS_CACHE_DIR", str(tmp_path))
    lesson._current = lesson.LessonContext("m", torch.nn.Identity(), None, [], {},
                                           torch.device("cpu"), 0)
    loaded = lesson.load_model("evidence_net")
    assert seen == {"spec": "evidence_net", "cache_dir": str(tmp_path)}
    assert next(loaded.model.parameters()).device.type == "cpu"


def test_record_marks_timings_and_refuses_a_timing_flag_that_is_not_a_bool(monkeypatch):
    emitted = []
    monkeypatch.setattr(lesson, "_emit", lambda bundle, metadata=None: emitted.append(bundle))
    lesson.record("took", 1.234, "{:.1f} s", timing=True)
    lesson.record("stride", 4)
    assert [b[protocol.RECORD_MIME] for b in emitted] == [
        {"name": "took", "text": "1.2 s", "timing": True}, {"name": "stride", "text": "4"}]
    with pytest.raises(TypeError, match="timing must be True or False"):
        lesson.record("took", 1.0, timing="yes")


def test_show_names_a_second_model_when_told(monkeypatch):
    emitted = []
    monkeypatch.setattr(lesson, "_emit", lambda bundle, metadata=None: emitted.append(bundle))
    monkeypatch.setattr(lesson, "_current", None)
    lesson.show(_figure(), "a map of the known-answer network", model="evidence_net")
    assert "(model: evidence_net; device: cpu)" in emitted[-1]["text/html"]
    with pytest.raises(ValueError, match="model must name the network"):
        lesson.show(_figure(), "a map", model=" ")


@pytest.mark.parametrize("items, text", [
    ([], ""), (["a"], "a"), (["a", "b"], "a and b"), (["a", "b", "c"], "a, b and c"),
    ((2, 4), "2 and 4"),
])
def test_and_list_joins_items_for_a_sentence(items, text):
    assert lesson.and_list(items) == text
