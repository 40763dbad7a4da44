/* Channels: a feature map of a layer (viridis, its own range), or the kernel maps of a filter
 * of the first convolution with their sum (RdBu_r, one symmetric scale per filter). */

import { blend } from "./colour.js";
import { canvas, put } from "./canvas.js";
import { control, el, fmt } from "./controls.js";
import { bytes, slice, unit, unpack, values } from "./decode.js";

/** a small canvas of a [h, w] map in [0, 1], with its caption */
function panel(norm, w, h, table, label) {
  const c = canvas(w, h, label);
  c.classList.add("convlens-explorer-pixelated");
  put(c, blend(norm, table), w, h);
  return el("figure", {}, [c, el("figcaption", { text: label })]);
}

/** a colour filter's weights as one RGB patch (its own range, from the uint8 codes) */
function weightsPatch(codes, kernel) {
  const [kh, kw] = kernel, k2 = kh * kw, rgba = new Uint8ClampedArray(4 * k2);
  for (let p = 0; p < k2; p++) {
    for (let ch = 0; ch < 3; ch++) rgba[4 * p + ch] = codes[ch * k2 + p];
    rgba[4 * p + 3] = 255;
  }
  const c = canvas(kw, kh, "the filter's weights");
  c.classList.add("convlens-explorer-pixelated");
  put(c, rgba, kw, kh);
  return el("figure", {}, [c, el("figcaption", { text: "weights (RGB)" })]);
}

export async function channels(root, data, ui) {
  const viridis = bytes(data.luts.viridis), rdbu = bytes(data.luts.RdBu_r), conv = data.conv;
  const count = data.layers.length;
  // start on the first convolution's filters when there are any (the lesson's figure)
  const state = { mode: conv ? count : 0, ch: 0, filter: 0 };
  const stacks = await Promise.all([...data.layers.map((l) => l.maps),
    ...(conv ? [conv.maps, conv.weights] : [])].map(unpack));
  const pickBox = el("div"), stage = el("div", { className: "convlens-explorer-panels" });
  const photo = el("figure", {}, [el("img", { src: data.image.src, alt: "the photo",
    width: String(data.image.width), height: String(data.image.height),
    className: "convlens-explorer-photo" }), el("figcaption", { text: "input" })]);
  const modes = data.layers.map((l) => `feature maps of ${l.name}`);
  if (conv) modes.push(`kernel maps of a ${conv.name} filter`);
  ui.controls.append(control({ type: "select", name: "mode", label: "Show", options: modes,
    value: state.mode, onChange: (k) => { state.mode = k; rebuild(); draw(); } }).element, pickBox);
  ui.stage.appendChild(stage);
  const isConv = () => conv && state.mode === count;

  /** the slider of the current mode: a filter, or a channel of the layer */
  function rebuild() {
    let spec;
    if (isConv()) {
      spec = { name: "filter", label: "Filter", value: state.filter,
        options: conv.filters.map((f) => `filter ${f}`), onChange: (k) => { state.filter = k; draw(); } };
    } else {
      const n = stacks[state.mode].shape[0];
      state.ch = Math.min(state.ch, n - 1);
      spec = { name: "channel", label: "Channel", value: state.ch,
        options: Array.from({ length: n }, (_, k) => `${k} of ${n}`), onChange: (k) => { state.ch = k; draw(); } };
    }
    pickBox.replaceChildren(control({ type: "range", ...spec }).element);
  }

  function drawFilter() {
    const maps = slice(stacks[count], state.filter), [parts, h, w] = maps.shape, per = h * w;
    const figures = conv.in_channels === 3 ? [weightsPatch(slice(stacks[count + 1], state.filter).q, conv.kernel)] : [];
    const names = Array.from({ length: conv.in_channels },
      (_, k) => `${conv.in_channels === 3 ? "RGB"[k] : `channel ${k}`} kernel map`).concat("sum = feature map");
    const all = values(maps), norm = unit(maps), shown = [];
    for (let k = 0; k < parts; k++) {
      shown.push(all.subarray(k * per, (k + 1) * per));
      figures.push(panel(norm.subarray(k * per, (k + 1) * per), w, h, rdbu, names[k]));
    }
    stage.replaceChildren(photo, ...figures);
    const f = conv.filters[state.filter];
    root.convlensView = { values: shown, width: w, height: h, filter: f };
    Object.assign(root.dataset, { layer: conv.name, filter: String(f) });
    delete root.dataset.channel;
    ui.readout.textContent = `${conv.name} filter ${f}: the response of each input-channel kernel ` +
      `and their sum (the feature map, bias included), one signed scale \u00b1${fmt(maps.hi)} ` +
      "(red > 0, blue < 0).";
  }

  function drawChannel() {
    const stack = stacks[state.mode], map = slice(stack, state.ch), [h, w] = map.shape;
    const name = data.layers[state.mode].name;
    stage.replaceChildren(photo, panel(unit(map), w, h, viridis, `${name}, channel ${state.ch}`));
    root.convlensView = { values: values(map), width: w, height: h, channel: state.ch, layer: name };
    Object.assign(root.dataset, { layer: name, channel: String(state.ch) });
    delete root.dataset.filter;
    ui.readout.textContent = `${name} channel ${state.ch} of ${stack.shape[0]}: a ${h}\u00d7${w} ` +
      `map, values ${fmt(map.lo)} \u2026 ${fmt(map.hi)} (viridis, its own colour scale).`;
  }

  const draw = () => (isConv() ? drawFilter() : drawChannel());
  rebuild();
  draw();
  return { draw };
}
