/* Occlusion: window x stride x class. Each cell of the map is drawn over the stride x stride
 * square centred on its window, on a grey copy of the photo, with one symmetric colour scale
 * for every setting (red = hiding the window lowers the logit). */

import { blend, grey } from "./colour.js";
import { canvas, loadImage, pixelsOf, put } from "./canvas.js";
import { control, fmt, percent } from "./controls.js";
import { bytes, slice, unpack, values } from "./decode.js";
import { cells } from "./resample.js";

const OPACITY = 0.7;  // of the colour over the grey photo

export async function occlusion(root, data, ui) {
  const table = bytes(data.luts[data.cmap]), limit = data.limit || 1;
  const state = { w: Math.floor(data.windows.length / 2), s: 0, cls: 0 };  // a middle window
  const [img, ...flat] = await Promise.all([loadImage(data.image.src), ...data.maps.flat().map(unpack)]);
  const H = data.image.height, W = data.image.width, base = grey(pixelsOf(img));
  const c = canvas(W, H, "occlusion map");
  const px = (v) => `${v} px`;
  for (const spec of [
    { type: "range", name: "window", label: "Window", options: data.windows.map(px), value: state.w,
      onChange: (k) => { state.w = k; draw(); } },
    { type: "range", name: "stride", label: "Stride", options: data.strides.map(px), value: state.s,
      onChange: (k) => { state.s = k; draw(); } },
    { type: "select", name: "class", label: "Class", value: state.cls,
      options: data.classes.map((cl) => `${cl.label} (${percent(cl.p)})`),
      onChange: (k) => { state.cls = k; draw(); } },
  ]) ui.controls.appendChild(control(spec).element);
  ui.stage.appendChild(c);

  function draw() {
    const window = data.windows[state.w], stride = data.strides[state.s];
    const map = slice(flat[state.w * data.strides.length + state.s], state.cls), v = values(map);
    const [rows, cols] = map.shape;
    const norm = cells(v.map((x) => (x + limit) / (2 * limit)), rows, cols, window, stride, H, W);
    put(c, blend(norm, table, base, OPACITY), W, H);
    const cl = data.classes[state.cls];
    const most = v.reduce((a, b) => Math.max(a, b), 0), least = v.reduce((a, b) => Math.min(a, b), 0);
    root.convlensView = { values: v, width: cols, height: rows, window, stride, cls: cl.index };
    Object.assign(root.dataset, { window: String(window), stride: String(stride), cls: String(cl.index) });
    ui.readout.textContent = `Window ${window} px at stride ${stride}: a ${rows}\u00d7${cols} map, ` +
      `${rows * cols} occluded forward passes. \u2018${cl.label}\u2019: largest drop ${fmt(most)}, ` +
      `largest rise ${fmt(-least)} (logit); red = hiding the window lowers the logit; one colour ` +
      `scale \u00b1${fmt(limit)} for every setting.`;
    c.setAttribute("aria-label", ui.readout.textContent);
  }
  draw();
  return { draw };
}
