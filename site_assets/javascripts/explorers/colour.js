/* Colour maps and the one blend of a heat map over a picture. No DOM. */

/** matplotlib's rule: a value v in [0, 1] takes table entry floor(256 v), clipped to 0..255 */
export function lutIndex(v) {
  const i = Math.floor(v * 256);
  return i < 0 ? 0 : i > 255 ? 255 : i;
}

/** [r, g, b] of v through a 256 x RGB table (768 bytes) */
export function lookup(table, v) {
  const k = 3 * lutIndex(v);
  return [table[k], table[k + 1], table[k + 2]];
}

/**
 * RGBA pixels (Uint8ClampedArray, 4 n) of n values in [0, 1] coloured with `table`.
 * Over `base` (RGBA pixels of the same size) the colour is mixed in with opacity `alpha`:
 * (1 - alpha) base + alpha colour. A NaN value shows the base pixel alone (or transparent
 * black without a base): occlusion leaves the photo's border bare where no window was
 * centred. Without a base, alpha is ignored (the colour is opaque).
 */
export function blend(norm, table, base = null, alpha = 1) {
  const n = norm.length, px = new Uint8ClampedArray(4 * n);
  const a = base ? alpha : 1;
  for (let i = 0; i < n; i++) {
    const v = norm[i], p = 4 * i;
    if (Number.isNaN(v)) {
      if (base) {
        px[p] = base[p]; px[p + 1] = base[p + 1]; px[p + 2] = base[p + 2]; px[p + 3] = 255;
      }
      continue;
    }
    const k = 3 * lutIndex(v);
    for (let c = 0; c < 3; c++) px[p + c] = base ? (1 - a) * base[p + c] + a * table[k + c] : table[k + c];
    px[p + 3] = 255;
  }
  return px;
}

/** RGBA pixels in grey: the mean of r, g and b, opaque */
export function grey(rgba) {
  const out = new Uint8ClampedArray(rgba.length);
  for (let p = 0; p < rgba.length; p += 4) {
    out[p] = out[p + 1] = out[p + 2] = (rgba[p] + rgba[p + 1] + rgba[p + 2]) / 3;
    out[p + 3] = 255;
  }
  return out;
}

/** values divided by their maximum (all 0 when the maximum is not positive), a new array */
export function byMaximum(v) {
  let top = 0;
  for (let i = 0; i < v.length; i++) if (v[i] > top) top = v[i];
  return v.map((x) => (top > 0 ? x / top : 0));
}
