/* Drawing on the page: canvases, photos and the theme's colours. */

import { el } from "./controls.js";

/** a canvas of width x height pixels described by `label` (its accessible name) */
export function canvas(width, height, label) {
  return el("canvas", { width: String(width), height: String(height), role: "img", "aria-label": label });
}

/** put RGBA pixels (Uint8ClampedArray, 4 w h) on a canvas, resizing it to w x h */
export function put(c, rgba, w, h) {
  if (c.width !== w) c.width = w;
  if (c.height !== h) c.height = h;
  c.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
}

/** the photo of a data URI, decoded */
export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("an explorer's photo failed to decode"));
    img.src = src;
  });
}

/** a decoded image's RGBA pixels */
export function pixelsOf(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height).data;
}

/** the Material theme's colours where the explorer is (light or dark), with defaults */
export function palette(root) {
  const cs = getComputedStyle(root);
  const v = (name, fallback) => (cs.getPropertyValue(name) || "").trim() || fallback;
  return {
    fg: v("--md-default-fg-color", "rgba(0,0,0,0.87)"),
    light: v("--md-default-fg-color--lighter", "rgba(0,0,0,0.32)"),
    bg: v("--md-default-bg-color", "#fff"),
    accent: v("--md-accent-fg-color", "#ff6e42"),
    panel: v("--md-code-bg-color", "#f5f5f5"),
  };
}

const parsed = new Map();
let scratch = null;

/** any CSS colour ("#rrggbb", "rgb(...)", "hsla(...)") -> [r, g, b], through the canvas */
export function cssRGB(colour) {
  if (!parsed.has(colour)) {
    scratch = scratch || Object.assign(document.createElement("canvas"), { width: 1, height: 1 });
    const ctx = scratch.getContext("2d", { willReadFrequently: true });
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "#ff6e42";
    ctx.fillStyle = colour;  // an unparsable colour leaves the default
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    parsed.set(colour, [d[0], d[1], d[2]]);
  }
  return parsed.get(colour);
}
