/* Grad-CAM: photo x class x layer. The map ships at the layer's resolution; it is upsampled
 * bilinearly to the photo, divided by its own maximum and blended over the photo. */

import { blend, byMaximum } from "./colour.js";
import { canvas, loadImage, pixelsOf, put } from "./canvas.js";
import { control, el, fmt, percent } from "./controls.js";
import { bytes, slice, unpack, values } from "./decode.js";
import { upsample } from "./resample.js";

export async function gradcam(root, data, ui) {
  const table = bytes(data.luts[data.cmap]);
  const state = { photo: 0, cls: 0, layer: data.photos[0].layers.length - 1 };  // the deepest
  const loaded = await Promise.all(data.photos.map(async (photo) => {
    const [img, ...stacks] = await Promise.all([loadImage(photo.image.src), ...photo.maps.map(unpack)]);
    return { base: pixelsOf(img), stacks };
  }));
  const first = data.photos[0].image;
  const c = canvas(first.width, first.height, "Grad-CAM map");
  const classBox = el("div"), layerBox = el("div");
  if (data.photos.length > 1) {
    ui.controls.appendChild(control({ type: "select", name: "photo", label: "Photo", value: 0,
      options: data.photos.map((p) => p.name),
      onChange: (k) => { state.photo = k; state.cls = 0; rebuild(); draw(); } }).element);
  }
  ui.controls.append(classBox, layerBox);
  ui.stage.appendChild(c);

  /** the class and layer controls of the current photo */
  function rebuild() {
    const p = data.photos[state.photo];
    state.layer = Math.min(state.layer, p.layers.length - 1);
    classBox.replaceChildren(control({ type: "select", name: "class", value: state.cls,
      label: `Class (top ${p.classes.length})`,
      options: p.classes.map((cl) => `${cl.label} (${percent(cl.p)})`),
      onChange: (k) => { state.cls = k; draw(); } }).element);
    layerBox.replaceChildren(control({ type: "range", name: "layer", label: "Layer", value: state.layer,
      options: p.layers.map((l) => `${l.name} (${l.map[0]}\u00d7${l.map[1]})`),
      onChange: (k) => { state.layer = k; draw(); } }).element);
  }

  function draw() {
    const p = data.photos[state.photo], layer = p.layers[state.layer], cl = p.classes[state.cls];
    const H = p.image.height, W = p.image.width, { base } = loaded[state.photo];
    const map = slice(loaded[state.photo].stacks[state.layer], state.cls);
    const shown = byMaximum(upsample(values(map), layer.map[0], layer.map[1], H, W));
    put(c, blend(shown, table, base, data.alpha), W, H);
    root.convlensView = { values: shown, width: W, height: H, photo: p.name, cls: cl.index,
      layer: layer.name, alpha: data.alpha, base, lut: table };
    Object.assign(root.dataset, { photo: p.name, cls: String(cl.index), layer: layer.name });
    ui.readout.textContent = `Grad-CAM of \u2018${cl.label}\u2019 (p = ${percent(cl.p)}) at ` +
      `${layer.name} (${layer.map[0]}\u00d7${layer.map[1]}), upsampled to ${H}\u00d7${W} and ` +
      `divided by its own maximum; raw maximum ${fmt(map.hi)} (logit units).`;
    c.setAttribute("aria-label", ui.readout.textContent);
  }
  rebuild();
  draw();
  return {
    draw,
    set(photo, cls, layer) {
      state.photo = photo; state.cls = cls; state.layer = layer; rebuild(); draw();
    },
  };
}
