/* SmoothGrad: noise level x number of samples (noise 0 is the plain gradient), in grey as in
 * the lesson, optionally averaged over 4 x 4 blocks (display only). */

import { blend, byMaximum } from "./colour.js";
import { canvas, put } from "./canvas.js";
import { control, el } from "./controls.js";
import { bytes, unpack, values } from "./decode.js";
import { blockMeans, nearest } from "./resample.js";

const BLOCK = 4;

export async function smoothgrad(root, data, ui) {
  const table = bytes(data.luts[data.cmap]);
  const state = { noise: Math.min(2, data.noise.length - 1), n: data.samples.length - 1, blocks: false };
  const maps = await Promise.all(data.maps.map((row) => Promise.all(row.map(unpack))));
  const H = data.image.height, W = data.image.width;
  const c = canvas(W, H, "SmoothGrad map");
  const photo = el("img", { src: data.image.src, alt: "the photo", width: String(W), height: String(H) });
  for (const spec of [
    { type: "range", name: "noise", label: "Noise", value: state.noise,
      options: data.noise.map((v) => (v === 0 ? "0 (plain gradient)" : String(v))),
      onChange: (k) => { state.noise = k; draw(); } },
    { type: "range", name: "samples", label: "Samples", value: state.n,
      options: data.samples.map(String), onChange: (k) => { state.n = k; draw(); } },
    { type: "checkbox", name: "blocks", label: `${BLOCK}\u00d7${BLOCK} blocks`, value: state.blocks,
      onChange: (on) => { state.blocks = on; draw(); } },
  ]) ui.controls.appendChild(control(spec).element);
  ui.stage.append(photo, c);

  function draw() {
    const row = maps[state.noise], plain = row.length === 1;  // noise 0: one map for every N
    const v = values(row[plain ? 0 : state.n]);
    const coarse = state.blocks ? blockMeans(v, H, W, BLOCK) : null;
    const shown = coarse ? nearest(byMaximum(coarse.means), coarse.height, coarse.width, BLOCK, H, W) : v;
    put(c, blend(shown, table), W, H);
    const level = data.noise[state.noise], n = plain ? 1 : data.samples[state.n];
    root.convlensView = { values: v, width: W, height: H, noise: level, samples: n,
      blocks: coarse ? coarse.means : null };
    Object.assign(root.dataset, { noise: String(level), samples: String(n) });
    ui.readout.textContent = (level === 0
      ? "Plain gradient (noise 0: the number of samples does not matter)"
      : `SmoothGrad with noise ${level} (\u03c3 = ${(100 * level).toFixed(0)}% of the input range) ` +
        `and N = ${n} samples (${n} forward and backward passes)`) +
      ` for \u2018${data.label}\u2019: max |g| over colours, clipped at the ${data.percentile}th ` +
      `percentile${coarse ? `, then averaged over ${BLOCK}\u00d7${BLOCK} blocks (display only).` : "."}`;
    c.setAttribute("aria-label", ui.readout.textContent);
  }
  draw();
  return { draw };
}
