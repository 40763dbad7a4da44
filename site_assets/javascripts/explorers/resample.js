/* Maps to pixels: bilinear upsampling, occlusion's cell grid and block means. No DOM.
 * Arrays are flat, row-major: [h, w] is h * w numbers. */

/** one axis of bilinear sampling with align_corners=False: for each of `m` output positions
    the two source indices and the weight of the second */
function axis(n, m) {
  const scale = n / m, i0 = new Int32Array(m), i1 = new Int32Array(m), t = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    const f = Math.max(scale * (k + 0.5) - 0.5, 0), a = Math.floor(f);
    i0[k] = a; i1[k] = a < n - 1 ? a + 1 : a; t[k] = f - a;
  }
  return { i0, i1, t };
}

/** a [h, w] map resized to [H, W] bilinearly, like torch's
    F.interpolate(mode="bilinear", align_corners=False) (no antialias) */
export function upsample(src, h, w, H, W) {
  const out = new Float64Array(H * W), ys = axis(h, H), xs = axis(w, W);
  for (let Y = 0; Y < H; Y++) {
    const r0 = ys.i0[Y] * w, r1 = ys.i1[Y] * w, ty = ys.t[Y];
    for (let X = 0; X < W; X++) {
      const x0 = xs.i0[X], x1 = xs.i1[X], tx = xs.t[X];
      const top = (1 - tx) * src[r0 + x0] + tx * src[r0 + x1];
      const bottom = (1 - tx) * src[r1 + x0] + tx * src[r1 + x1];
      out[Y * W + X] = (1 - ty) * top + ty * bottom;
    }
  }
  return out;
}

/**
 * Occlusion's [rows, cols] map on an [H, W] picture: cell (r, q) covers the stride x stride
 * square centred on its window, whose top-left corner is at (r, q) * stride; pixels outside
 * every cell are NaN.
 */
export function cells(src, rows, cols, window, stride, H, W) {
  const out = new Float64Array(H * W), start = window / 2 - stride / 2;
  const cell = (p, n) => { const k = Math.floor((p + 0.5 - start) / stride); return k >= 0 && k < n ? k : -1; };
  for (let y = 0; y < H; y++) {
    const r = cell(y, rows);
    for (let x = 0; x < W; x++) {
      const q = cell(x, cols);
      out[y * W + x] = r >= 0 && q >= 0 ? src[r * cols + q] : NaN;
    }
  }
  return out;
}

/** means over size x size blocks of a [H, W] map (the rest cut off): {means, width, height} */
export function blockMeans(src, H, W, size) {
  const h = Math.floor(H / size), w = Math.floor(W / size), means = new Float64Array(h * w);
  for (let y = 0; y < h * size; y++) {
    for (let x = 0; x < w * size; x++) means[Math.floor(y / size) * w + Math.floor(x / size)] += src[y * W + x];
  }
  for (let i = 0; i < means.length; i++) means[i] /= size * size;
  return { means, width: w, height: h };
}

/** a [h, w] map on [H, W] pixels by nearest block (the last row and column of blocks stretch
    over any remainder) */
export function nearest(src, h, w, size, H, W) {
  const out = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    const row = Math.min(Math.floor(y / size), h - 1) * w;
    for (let x = 0; x < W; x++) out[y * W + x] = src[row + Math.min(Math.floor(x / size), w - 1)];
  }
  return out;
}
