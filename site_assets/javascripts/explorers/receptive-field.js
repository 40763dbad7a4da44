/* Receptive fields: pick a layer, point at a unit (pointer, or arrow keys on the picture).
 * The theoretical box of the unit is drawn on the photo, with the measured footprint (pixels
 * with a nonzero gradient) at the units that carry one. */

import { canvas, cssRGB, loadImage, palette } from "./canvas.js";
import { control, uid } from "./controls.js";
import { bit, inflate } from "./decode.js";

const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
const FOOTPRINT_ALPHA = 140;  // of 255: the photo stays visible under the tint

/** [top, left, bottom, right) of unit (i, j) of layer l, in photo pixels */
function box(l, i, j) {
  const top = i * l.stride[0] - l.padding[0], left = j * l.stride[1] - l.padding[1];
  return [top, left, top + l.size[0], left + l.size[1]];
}

function clamp(v, n) {
  return Math.max(0, Math.min(n - 1, v));
}

export async function receptiveField(root, data, ui) {
  const { layers, margin: m } = data, H = data.image.height, W = data.image.width;
  const state = { layer: Math.floor(layers.length / 2), i: 0, j: 0 };
  const masks = new Map();  // "layer:unit" -> packed bits
  const [photo] = await Promise.all([loadImage(data.image.src), ...layers.flatMap((layer, li) =>
    layer.measured.map(async (probe) => masks.set(`${li}:${probe.unit}`, await inflate(probe.z))))]);

  const c = canvas(W + 2 * m, H + 2 * m, "the photo with the receptive field of the chosen unit");
  c.tabIndex = 0;
  c.classList.add("convlens-explorer-pointer");
  ui.hint.id = uid("convlens-hint");
  c.setAttribute("aria-describedby", ui.hint.id);
  const layerControl = control({ type: "select", name: "layer", label: "Layer", value: state.layer,
    options: layers.map((l) => `${l.name} (${l.map[0]}\u00d7${l.map[1]})`),
    onChange: (k) => { state.layer = k; centre(); draw(); } });
  ui.controls.appendChild(layerControl.element);
  ui.stage.appendChild(c);
  ui.hint.textContent = "Point at (or tap) the photo to choose a unit; with the picture focused, " +
    "arrow keys move the unit. Dots mark the units whose measured footprint is shown.";

  function centre() {
    const l = layers[state.layer];
    state.i = Math.floor(l.map[0] / 2); state.j = Math.floor(l.map[1] / 2);
  }

  /** the measured footprint of a probe as a [H, W] 0/1 mask, tinted onto ctx */
  function footprint(ctx, probe, colour) {
    const bits = masks.get(`${state.layer}:${probe.unit}`), b = probe.box;
    const bw = b[3] - b[1], bh = b[2] - b[0], full = new Uint8Array(H * W);
    const tint = new ImageData(bw, bh), rgb = cssRGB(colour);
    for (let n = 0; n < bw * bh; n++) {
      if (!bit(bits, n)) continue;
      full[(b[0] + Math.floor(n / bw)) * W + b[1] + (n % bw)] = 1;
      tint.data.set([...rgb, FOOTPRINT_ALPHA], 4 * n);
    }
    const off = Object.assign(document.createElement("canvas"), { width: bw, height: bh });
    off.getContext("2d").putImageData(tint, 0, 0);
    ctx.drawImage(off, m + b[1], m + b[0]);
    return full;
  }

  function draw() {
    const p = palette(root), ctx = c.getContext("2d"), l = layers[state.layer];
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.fillStyle = p.panel; ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(photo, m, m);
    const probe = l.measured.find((u) => u.unit[0] === state.i && u.unit[1] === state.j) || null;
    const mask = probe && probe.pixels > 0 ? footprint(ctx, probe, p.accent) : null;
    ctx.fillStyle = p.bg; ctx.strokeStyle = p.fg; ctx.lineWidth = 1;
    for (const u of l.measured) {  // dots on the measured units
      const [top, left, bottom, right] = box(l, u.unit[0], u.unit[1]);
      ctx.beginPath(); ctx.arc(m + (left + right) / 2, m + (top + bottom) / 2, 3, 0, 2 * Math.PI);
      ctx.fill(); ctx.stroke();
    }
    const bx = box(l, state.i, state.j);
    ctx.strokeStyle = p.accent; ctx.lineWidth = 2;
    ctx.strokeRect(m + bx[1], m + bx[0], bx[3] - bx[1], bx[2] - bx[0]);
    const cy = m + (bx[0] + bx[2]) / 2, cx = m + (bx[1] + bx[3]) / 2;
    ctx.beginPath(); ctx.moveTo(cx - 5, cy); ctx.lineTo(cx + 5, cy);
    ctx.moveTo(cx, cy - 5); ctx.lineTo(cx, cy + 5); ctx.stroke();
    ctx.strokeStyle = p.light; ctx.lineWidth = 1; ctx.strokeRect(m - 0.5, m - 0.5, W + 1, H + 1);

    root.convlensView = { box: bx, unit: [state.i, state.j], layer: l.name, mask, width: W, height: H };
    Object.assign(root.dataset, { layer: l.name, unit: `${state.i},${state.j}`, box: bx.join(","),
      measured: probe ? String(probe.pixels) : "" });
    const beyond = bx[0] < -m || bx[1] < -m || bx[2] > H + m || bx[3] > W + m;
    ui.readout.textContent = `${l.name}: field size ${l.size[0]}\u00d7${l.size[1]} px, jump ` +
      `${l.stride[0]}, offset ${l.padding[0]}. Unit (${state.i}, ${state.j}) of ` +
      `${l.map[0]}\u00d7${l.map[1]} sees rows ${bx[0]}\u2026${bx[2] - 1}, columns ` +
      `${bx[1]}\u2026${bx[3] - 1}${beyond ? " (the box reaches beyond this view)" : ""}. ` +
      (probe ? `Measured: ${probe.pixels} pixels have a nonzero gradient (channel ${probe.channel}).`
        : "Measured footprints: at the dotted units.");
    c.setAttribute("aria-label", ui.readout.textContent);
  }

  function move(i, j) {
    const l = layers[state.layer];
    i = clamp(i, l.map[0]); j = clamp(j, l.map[1]);
    if (i !== state.i || j !== state.j) { state.i = i; state.j = j; draw(); }
  }

  /** the unit whose box is centred nearest the pointer */
  function pick(event) {
    const r = c.getBoundingClientRect(), l = layers[state.layer];
    const at = [(event.clientY - r.top) * c.height / r.height - m, (event.clientX - r.left) * c.width / r.width - m];
    const unit = (axis) => (l.stride[axis] === 0 ? 0
      : Math.round((at[axis] + l.padding[axis] - (l.size[axis] - 1) / 2) / l.stride[axis]));
    move(unit(0), unit(1));
  }
  c.addEventListener("pointermove", pick);
  c.addEventListener("pointerdown", (e) => { pick(e); c.focus({ preventScroll: true }); });
  c.addEventListener("keydown", (e) => {
    const d = MOVES[e.key];
    if (!d) return;
    e.preventDefault();
    move(state.i + d[0], state.j + d[1]);
  });
  centre();
  draw();
  return {
    draw,
    set(layer, i, j) {
      state.layer = layer; state.i = i; state.j = j; layerControl.set(layer); draw();
    },
  };
}
