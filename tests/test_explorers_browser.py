"""The interactive figures in Chromium: what each explorer draws for a choice is what the
library computes for it.

A standalone page holds the five explorers of a tiny random-init CNN, the site's
explorer modules (site_assets/javascripts/explorers/) and extra.css (fast); a tiny mkdocs site built through coursebuild checks that
the notebook HTML output survives mkdocs-jupyter, that instant navigation re-initialises
the explorers, and the page weight.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from convlens_course import explore
from convlens_course.protocol import EXPLORER_SCHEMA
from coursebuild.assemble import EXPLORER_SCHEMA_TARGET

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_explore import display, tiny_cnn  # noqa: E402  (the same tiny CNN as the data tests)
from test_site_browser import (  # noqa: E402
    ARGS,
    CHROMIUM,
    MAX_PAGE_BYTES,
    ROOT,
    needs_browser,
    read_config,
    run,
    serve,
)

pytestmark = pytest.mark.browser
STEP = 1 / 255
# as long as ImageNet's longest labels: the menus must still fit a 375-px screen
LABELS = [f"class {i}: African hunting dog, hyena dog, Cape hunting dog, Lycaon pictus"
          for i in range(10)]


@pytest.fixture(scope="module")
def tiny():
    model = tiny_cnn()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 32, 48, generator=generator)
    x2 = torch.randn(1, 3, 32, 48, generator=generator)
    explorers = {
        "receptive-field": explore.receptive_field_explorer(model, x, display(x), ["0", "2", "4", "5"]),
        "gradcam": explore.gradcam_explorer(model, {"one": (x, display(x)), "two": (x2, display(x2))},
                                            ["2", "5"], LABELS),
        "occlusion": explore.occlusion_explorer(model, x, display(x), LABELS, windows=(8, 16),
                                                strides=(4, 8)),
        "smoothgrad": explore.smoothgrad_explorer(model, x, display(x), 3, noise=(0.1, 0.3),
                                                  samples=(1, 4), label="class 3"),
        "channels": explore.channels_explorer(model, x, display(x), ["2", "5"], "0", filters=4),
    }
    return model, x, x2, explorers


@pytest.fixture(scope="module")
def standalone(tiny, tmp_path_factory):
    """The explorers on one plain page (no Material), served over HTTP, with the modules and
    the schema where the build puts them."""
    root = tmp_path_factory.mktemp("explorers")
    shutil.copytree(ROOT / "site_assets" / "javascripts" / "explorers", root / "javascripts" / "explorers")
    shutil.copy(EXPLORER_SCHEMA, root / EXPLORER_SCHEMA_TARGET)
    shutil.copy(ROOT / "site_assets" / "stylesheets" / "extra.css", root)
    body = "\n".join(f"<h2>{kind}</h2>\n{e.to_html()}" for kind, e in tiny[3].items())
    (root / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>explorers</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="extra.css"></head>'
        f'<body>{body}<script type="module" src="javascripts/explorers/main.js"></script>'
        '</body></html>')
    with serve(root) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    needs_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, standalone):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(standalone, wait_until="networkidle")
    page.wait_for_function("document.querySelectorAll('[data-convlens-ready=ready]').length == 5",
                           timeout=15000)
    yield page
    page.close()
    assert not errors, errors


def view(page, kind: str, key: str = "values"):
    return page.evaluate(
        f"""() => {{ const v = document.querySelector('[data-convlens-explorer="{kind}"]')
        .convlensView; const a = v[{key!r}]; return a === null ? null :
        (Array.isArray(a) ? a.map(x => Array.from(x)) : (a.length !== undefined ?
        Array.from(a) : a)); }}""")


def root(page, kind: str):
    return page.locator(f'[data-convlens-explorer="{kind}"]')


def test_every_explorer_is_drawn_and_its_fallback_hidden(page):
    for kind in explore.KINDS:
        r = root(page, kind)
        assert r.locator("canvas").count() >= 1, kind
        assert not r.locator(".convlens-explorer-fallback").is_visible(), kind
        assert r.locator(".convlens-explorer-readout").inner_text().strip(), kind


def test_receptive_field_box_and_footprint_match_the_library(page, tiny):
    model, x, *_ = tiny
    fields = convlens.receptive_field(model, (32, 48))
    r = root(page, "receptive-field")
    # it starts on the centre unit of a middle layer, one whose footprint was measured
    assert r.get_attribute("data-layer") == "4" and r.get_attribute("data-unit") == "4,6"
    assert view(page, "receptive-field", "mask") is not None
    for index, name in enumerate(["0", "2", "4", "5"]):
        r.locator("select").select_option(str(index))
        canvas = r.locator("canvas")
        canvas.focus()
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowLeft")
        i, j = (int(v) for v in r.get_attribute("data-unit").split(","))
        assert r.get_attribute("data-layer") == name
        assert tuple(int(v) for v in r.get_attribute("data-box").split(",")) == fields[name].box(i, j)
    # pointer: tap the top-left corner of the photo on layer "5": unit (0, 0), a measured one
    r.locator("select").select_option("3")
    box = canvas.bounding_box()
    margin = 48 // 8
    scale = box["width"] / (48 + 2 * margin)
    page.mouse.click(box["x"] + (margin + 1) * scale, box["y"] + (margin + 1) * scale)
    assert r.get_attribute("data-unit") == "0,0"
    assert tuple(int(v) for v in r.get_attribute("data-box").split(",")) == fields["5"].box(0, 0)
    with torch.no_grad():
        activation = convlens.feature_maps(model, x, "5")[0]
    channel = int(activation[:, 0, 0].argmax())
    expected = convlens.empirical_receptive_field(model, "5", (channel, 0, 0), x=x)
    mask = np.array(view(page, "receptive-field", "mask"), dtype=bool).reshape(32, 48)
    assert (mask == expected.numpy()).all()
    assert int(r.get_attribute("data-measured")) == int(expected.sum())
    # the canvas is tinted inside the footprint: the drawn pixels differ from the photo there
    page.keyboard.press("ArrowRight")  # a unit with no measurement: no mask
    assert view(page, "receptive-field", "mask") is None


def test_gradcam_matches_the_library_for_photo_class_and_layer(page, tiny):
    model, x, x2, explorers = tiny
    r = root(page, "gradcam")
    data = explorers["gradcam"].data
    classes = [c["index"] for c in data["photos"][1]["classes"]]
    cams = [convlens.gradcam(model, x2, c, "5")[0, 0] for c in classes]
    k = next(k for k in range(1, len(classes)) if cams[k].max() > 0)  # a map that is not all 0
    r.locator('select[data-control="photo"]').select_option("1")
    r.locator('select[data-control="class"]').select_option(str(k))
    assert r.get_attribute("data-layer") == "5"  # it starts at the deepest layer
    r.locator('input[data-control="layer"]').focus()
    page.keyboard.press("Home")
    assert r.get_attribute("data-layer") == "2"
    page.keyboard.press("ArrowRight")  # the second layer: "5"
    assert r.get_attribute("data-layer") == "5" and r.get_attribute("data-cls") == str(classes[k])
    expected = (cams[k] / cams[k].max()).numpy().ravel()
    shown = np.array(view(page, "gradcam"))
    assert np.abs(shown - expected).max() <= STEP
    # what is on the canvas is the photo blended with matplotlib's jet at that value
    pixels = page.evaluate("""() => {
        const r = document.querySelector('[data-convlens-explorer="gradcam"]');
        const c = r.querySelector('canvas'), v = r.convlensView;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return [Array.from(d.filter((_, k) => k % 4 < 3)), Array.from(v.base.filter((_, k) => k % 4 < 3))];
    }""")
    drawn, base = (np.array(p, dtype=float).reshape(-1, 3) for p in pixels)
    from matplotlib import colormaps

    jet = np.rint(colormaps["jet"].resampled(256)(np.arange(256))[:, :3] * 255)
    index = np.clip(np.floor(shown * 256), 0, 255).astype(int)
    assert np.abs(drawn - (0.5 * base + 0.5 * jet[index])).max() <= 1.0


def test_occlusion_matches_the_library_for_window_stride_and_class(page, tiny):
    model, x, _, explorers = tiny
    r = root(page, "occlusion")
    classes = explorers["occlusion"].data["classes"]
    for window_steps, stride_steps, cls in [(0, 0, 0), (1, 1, 2), (1, 0, 1)]:
        for control, steps in (("window", window_steps), ("stride", stride_steps)):
            r.locator(f'input[data-control="{control}"]').focus()
            page.keyboard.press("Home")
            for _ in range(steps):
                page.keyboard.press("ArrowRight")
        r.locator('select[data-control="class"]').select_option(str(cls))
        window, stride = (8, 16)[window_steps], (4, 8)[stride_steps]
        assert r.get_attribute("data-window") == str(window)
        assert r.get_attribute("data-stride") == str(stride)
        expected = convlens.occlusion(model, x, classes[cls]["index"], window, stride)[0]
        shown = np.array(view(page, "occlusion")).reshape(expected.shape)
        span = float(expected.max() - expected.min())
        assert np.abs(shown - expected.numpy()).max() <= span * STEP / 2 + 1e-5


def test_smoothgrad_matches_the_library_for_noise_and_samples(page, tiny):
    model, x, *_ = tiny
    r = root(page, "smoothgrad")
    noise = r.locator('input[data-control="noise"]')
    samples = r.locator('input[data-control="samples"]')
    for noise_steps, sample_steps in [(1, 0), (2, 1), (0, 1)]:
        noise.focus()
        page.keyboard.press("Home")
        for _ in range(noise_steps):
            page.keyboard.press("ArrowRight")
        samples.focus()
        page.keyboard.press("Home")
        for _ in range(sample_steps):
            page.keyboard.press("ArrowRight")
        level, n = (0.0, 0.1, 0.3)[noise_steps], (1, 4)[sample_steps]
        assert float(r.get_attribute("data-noise")) == level
        if level == 0:
            attribution = convlens.gradient(model, x, 3)
        else:
            attribution = convlens.smoothgrad(model, x, 3, samples=n, noise=level,
                                              generator=torch.Generator().manual_seed(0))
        expected = explore.saliency_display(attribution).ravel()
        shown = np.array(view(page, "smoothgrad"))
        assert np.abs(shown - expected).max() <= STEP
    # the lesson's 4x4-block view of the last map: block means of the same picture
    assert view(page, "smoothgrad", "blocks") is None
    r.locator('input[data-control="blocks"]').check()
    blocks = torch.nn.functional.avg_pool2d(torch.as_tensor(expected).view(1, 1, 32, 48), 4)
    shown = np.array(view(page, "smoothgrad", "blocks"))
    assert np.abs(shown - blocks.numpy().ravel()).max() <= STEP
    assert "4×4 blocks" in r.locator(".convlens-explorer-readout").inner_text()


def test_channels_match_feature_maps_and_kernel_maps(page, tiny):
    model, x, _, explorers = tiny
    r = root(page, "channels")
    r.locator('select[data-control="mode"]').select_option("1")  # layer "5"
    r.locator('input[data-control="channel"]').focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    assert r.get_attribute("data-layer") == "5" and r.get_attribute("data-channel") == "5"
    expected = convlens.feature_maps(model, x, "5")[0, 5]
    span = float(expected.max() - expected.min())
    shown = np.array(view(page, "channels")).reshape(expected.shape)
    assert np.abs(shown - expected.numpy()).max() <= span * STEP / 2 + 1e-6

    r.locator('select[data-control="mode"]').select_option("2")  # kernel maps of "0"
    r.locator('input[data-control="filter"]').focus()
    page.keyboard.press("ArrowRight")
    chosen = explorers["channels"].data["conv"]["filters"]
    assert r.get_attribute("data-filter") == str(chosen[1])
    conv = model[0]
    maps = convlens.kernel_maps(conv, x, out_channels=[chosen[1]])[0, 0]
    total = maps.sum(0) + conv.bias.detach()[chosen[1]]
    expected = torch.cat([maps, total[None]]).detach()
    limit = float(expected.abs().max())
    shown = np.array(view(page, "channels")).reshape(expected.shape)
    assert np.abs(shown - expected.numpy()).max() <= limit * STEP + 1e-6
    assert r.locator("canvas").count() == 1 + 4  # the weights patch, R, G, B and the sum


def test_keyboard_focus_is_visible_and_dark_mode_redraws(page):
    r = root(page, "receptive-field")
    canvas = r.locator("canvas")
    r.locator("select").focus()
    page.keyboard.press("Tab")  # from the layer menu to the picture
    assert canvas.evaluate("c => document.activeElement === c")
    unit = r.get_attribute("data-unit")
    page.keyboard.press("ArrowDown")
    assert r.get_attribute("data-unit") != unit
    outline = canvas.evaluate("c => getComputedStyle(c).outlineStyle")
    assert outline != "none"
    before = canvas.evaluate("c => c.toDataURL()")
    page.evaluate("""() => { document.body.style.setProperty('--md-accent-fg-color', '#00ff00');
                   document.body.setAttribute('data-md-color-scheme', 'slate'); }""")
    # the box is drawn again, in the new accent colour
    page.wait_for_function("([c, before]) => c.toDataURL() !== before",
                           arg=[canvas.element_handle(), before], timeout=5000)


FOCUS = """() => {
    const e = document.activeElement, s = getComputedStyle(e), r = e.closest('[data-convlens-explorer]');
    return {kind: r ? r.dataset.convlensExplorer : null, id: e.id || null, tag: e.tagName.toLowerCase(),
            control: e.dataset.control || null,
            ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none',
            label: e.labels && e.labels.length ? e.labels[0].textContent : e.getAttribute('aria-label')};
}"""


def test_tab_reaches_every_control_with_a_visible_ring_and_keys_change_them(page):
    """From the top of the page, Tab visits every control of every explorer in order, each
    with a focus ring and a label; arrow keys step a slider and a menu, Space a checkbox."""
    expected = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-convlens-explorer] :is(select, input, canvas[tabindex])'), e => e.id || e.tagName.toLowerCase())""")
    assert len(expected) >= 12
    page.evaluate("document.activeElement.blur()")
    visited, changed = [], set()
    for _ in range(len(expected) + 5):
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS)
        if focus["kind"] is None:
            break
        visited.append(focus["id"] or focus["tag"])
        assert focus["ring"], f"no visible focus ring on {focus}"
        assert focus["label"] and focus["label"].strip(), f"no label on {focus}"
        r = root(page, focus["kind"])
        where = (focus["kind"], focus["control"] or focus["tag"])
        keys, attribute = {("occlusion", "window"): ("ArrowLeft", "data-window"),
                           ("occlusion", "class"): ("ArrowDown", "data-cls"),
                           ("gradcam", "layer"): ("ArrowLeft", "data-layer"),
                           ("smoothgrad", "noise"): ("Home", "data-noise"),
                           ("receptive-field", "canvas"): ("ArrowRight", "data-unit")}.get(where, (None, None))
        if keys:
            before = r.get_attribute(attribute)
            page.keyboard.press(keys)
            assert r.get_attribute(attribute) != before, where
            changed.add(where)
        if where == ("smoothgrad", "blocks"):
            page.keyboard.press("Space")
            assert view(page, "smoothgrad", "blocks") is not None
            changed.add(where)
    assert visited == expected
    assert len(changed) == 6, changed


def test_at_375_px_the_page_never_scrolls_sideways(browser, standalone):
    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        page.goto(standalone, wait_until="networkidle")
        page.wait_for_function("document.querySelectorAll('[data-convlens-ready=ready]').length == 5",
                               timeout=15000)
        # every mode of the channels explorer, the widest one last
        menu = root(page, "channels").locator('select[data-control="mode"]')
        for option in ("0", "1", "2"):
            menu.select_option(option)
            assert page.evaluate("document.documentElement.scrollWidth") <= 375, option
        # each figure fits the column (what cannot shrink scrolls inside the figure's box)
        wider = page.evaluate("""() => Array.from(document.querySelectorAll('[data-convlens-explorer]'))
            .filter(r => r.getBoundingClientRect().right > document.documentElement.clientWidth)
            .map(r => r.dataset.convlensExplorer)""")
        assert wider == [], wider
    finally:
        page.close()


def test_data_of_another_version_is_refused_in_the_figure(page, tiny):
    data = {**json.loads(json.dumps(tiny[3]["smoothgrad"].data)), "kind": "smoothgrad",
            "title": "newer", "version": explore.VERSION + 1}
    page.evaluate("""async (data) => {
        const div = document.createElement('div');
        div.className = 'convlens-explorer';
        div.id = 'newer';
        div.setAttribute('data-convlens-explorer', 'smoothgrad');
        div.setAttribute('data-convlens-data', JSON.stringify(data));
        div.innerHTML = '<p class="convlens-explorer-fallback">fallback</p>';
        document.body.appendChild(div);
        await window.convlensExplorers.start();
    }""", data)
    newer = page.locator("#newer")
    assert newer.get_attribute("data-convlens-ready") == "mismatch"
    assert newer.locator("canvas").count() == 0
    message = newer.locator(".convlens-explorer-error")
    assert message.is_visible()
    assert f"version {explore.VERSION + 1}, but this site draws version {explore.VERSION}" in \
        message.inner_text()
    assert newer.locator(".convlens-explorer-fallback").is_visible()


def test_without_javascript_the_fallback_shows(browser, standalone):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(standalone)
        fallbacks = page.locator(".convlens-explorer-fallback")
        assert fallbacks.count() == 5
        assert all(fallbacks.nth(k).is_visible() for k in range(5))
        assert page.locator(".convlens-explorer canvas").count() == 0
    finally:
        context.close()


# --- the explorers on a tiny mkdocs site ---------------------------------------------------

EXPLORER_LESSON = '''\
# %% [markdown]
# # Explorers

# %%
import torch
from torch import nn
from convlens_course import explore

torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(16, 10)).eval()
x = torch.randn(1, 3, 32, 48)
image = ((x[0].permute(1, 2, 0).clamp(-2, 2) + 2) / 4).numpy()

# %%
explore.receptive_field_explorer(model, x, image, ["0", "2"])

# %%
explore.gradcam_explorer(model, {"noise": (x, image)}, ["0", "2"], top=3,
                         labels=[f"{i}: African hunting dog, hyena dog, Cape hunting dog"
                                 for i in range(10)])
'''


def test_explorers_on_a_built_site_survive_instant_navigation(tmp_path, browser):
    """Through coursebuild and mkdocs-jupyter: the data script and data-* attributes are
    kept, the explorer modules are loaded site-wide with the schema beside them, and a page
    reached by instant navigation (no reload) is initialised too; in Material's layout the
    focus ring shows and a 375-px screen does not scroll sideways."""
    import yaml

    (tmp_path / "lessons").mkdir()
    (tmp_path / "lessons" / "01-explorers.py").write_text(EXPLORER_LESSON)
    shutil.copytree(ROOT / "site_assets", tmp_path / "site_assets")
    (tmp_path / "site_assets" / "index.md").write_text(
        "# Home\n\nSee [the explorers](lessons/01-explorers.ipynb).\n")
    config = read_config()
    config["hooks"] = [str(ROOT / hook) for hook in config.get("hooks", [])]
    config["watch"] = [str(ROOT / path) for path in config.get("watch", [])]  # serve only
    # the real nav: its Lessons entry is generated from the build, every other page is real
    config.pop("site_url", None)
    (tmp_path / "mkdocs.yml").write_text('site_url: !ENV [SITE_URL, "http://127.0.0.1:8000/"]\n'
                                         + yaml.safe_dump(config, sort_keys=False))
    run("-m", "coursebuild", "--device", "cpu", cwd=tmp_path)
    site = tmp_path / "site"
    with serve(site) as base:
        run("-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml"), "-d",
            str(site), cwd=tmp_path, SITE_URL=base)
        html = (site / "lessons" / "01-explorers" / "index.html").read_text(encoding="utf-8")
        # the data is a file beside the page (coursebuild.figures), fetched by explorer-data.js
        assert html.count('data-convlens-pending="') == 2 and "data-convlens-data" not in html
        sources = re.findall(r'data-convlens-src="([^"]+)"', html)
        folder = site / "lessons" / "01-explorers"
        assert [json.loads((folder / src).read_text())["kind"] for src in sources] \
            == ["receptive-field", "gradcam"]
        assert re.search(r'<script src="[./]*javascripts/explorers/main\.js" type="module">', html)
        assert (site / EXPLORER_SCHEMA_TARGET).read_bytes() == EXPLORER_SCHEMA.read_bytes()
        assert len(html.encode()) < MAX_PAGE_BYTES
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(base, wait_until="networkidle")
            page.evaluate("window.__same_document = true")
            page.locator('article a[href$="lessons/01-explorers/"]').first.click()
            page.wait_for_url("**/lessons/01-explorers/", timeout=10000)
            page.wait_for_function(
                "document.querySelectorAll('[data-convlens-ready=ready]').length == 2",
                timeout=15000)
            assert page.evaluate("window.__same_document === true"), "the page was reloaded"
            r = page.locator('[data-convlens-explorer="receptive-field"]')
            fields = convlens.receptive_field(
                nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                              nn.Conv2d(8, 16, 3, padding=1)), (32, 48))
            r.locator("canvas").focus()
            page.keyboard.press("ArrowDown")
            i, j = (int(v) for v in r.get_attribute("data-unit").split(","))
            assert tuple(int(v) for v in r.get_attribute("data-box").split(",")) == \
                fields[r.get_attribute("data-layer")].box(i, j)
            # back home and forward again: the explorers are initialised once more
            page.go_back()
            page.wait_for_url(base, timeout=10000)
            page.go_forward()
            page.wait_for_function(
                "document.querySelectorAll('[data-convlens-ready=ready]').length == 2",
                timeout=15000)
            # in Material's layout: keyboard focus shows the explorers' ring, and at 375 px
            # the page does not scroll sideways
            r.locator("select").focus()
            page.keyboard.press("Tab")
            focus = page.evaluate(FOCUS)
            assert focus["kind"] == "receptive-field" and focus["tag"] == "canvas" and focus["ring"]
            page.set_viewport_size({"width": 375, "height": 800})
            page.wait_for_function("document.documentElement.clientWidth == 375")
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
        finally:
            page.close()
        assert not errors, errors
