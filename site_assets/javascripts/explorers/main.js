/* convlens explorers: interactive figures drawn from data the build computed.
 *
 * A lesson cell outputs <div data-convlens-explorer="KIND" data-convlens-data="JSON"> holding
 * a fallback sentence (see convlens_course/explore.py for the encoding, and why an
 * attribute; explorer_schema.json for the format). This entry module finds those roots on
 * every page (Material's instant navigation included, through its document$ observable),
 * checks the data's version against the schema, builds the controls and draws on canvases.
 * No kernel, no CDN: maps are zlib-compressed uint8 in the page, inflated with
 * DecompressionStream("deflate"); colour maps are matplotlib's 256-entry tables from the data.
 *
 * For tests and curious readers, each root exposes what is drawn: root.convlensView
 * ({values, width, height, ...}) and data-* attributes with the current choice;
 * data-convlens-ready says where it stands (loading, ready, mismatch, unsupported, failed).
 */

import { el } from "./controls.js";
import { KINDS } from "./kinds.js";
import { loadSchema, problem } from "./schema.js";

let live = [];

/** a sentence in the figure, in place of the drawing */
function notice(root, text) {
  root.appendChild(el("p", { className: "convlens-explorer-error", role: "note",
    text: `This interactive figure cannot be shown. ${text}` }));
}

async function start(root) {
  if (root.dataset.convlensReady) return;
  root.dataset.convlensReady = "loading";
  const kind = root.getAttribute("data-convlens-explorer"), raw = root.getAttribute("data-convlens-data");
  if (!KINDS[kind] || !raw || typeof DecompressionStream === "undefined") {
    root.dataset.convlensReady = "unsupported";
    return;
  }
  try {
    const data = JSON.parse(raw), why = problem(data, await loadSchema());
    if (why) {
      root.dataset.convlensReady = "mismatch";
      notice(root, why);
      return;
    }
    const ui = {
      controls: el("div", { className: "convlens-explorer-controls" }),
      stage: el("div", { className: "convlens-explorer-stage" }),
      readout: el("p", { className: "convlens-explorer-readout", "aria-live": "polite" }),
      hint: el("p", { className: "convlens-explorer-hint" }),
    };
    const explorer = await KINDS[kind](root, data, ui);
    root.appendChild(el("div", { className: "convlens-explorer-body" }, [
      data.title ? el("p", { className: "convlens-explorer-title", text: `Interactive figure: ${data.title}` }) : null,
      ui.controls, ui.stage, ui.readout, ui.hint]));
    root.classList.add("convlens-explorer--ready");
    root.dataset.convlensReady = "ready";
    root.convlensExplorer = explorer;
    live.push({ root, explorer });
  } catch (error) {
    root.dataset.convlensReady = "failed";
    notice(root, "It failed to load (the browser's console has the details).");
    console.error(`convlens explorer (${kind}):`, error);
  }
}

function startAll() {
  live = live.filter((e) => e.root.isConnected);
  return Promise.all(Array.from(document.querySelectorAll("[data-convlens-explorer]"), start));
}

function redrawAll() {
  for (const e of live) if (e.root.isConnected) e.explorer.draw();
}

if (window.document$ && window.document$.subscribe) {
  window.document$.subscribe(startAll);  // Material: every page, instant navigation included
} else if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", startAll);
} else {
  startAll();
}
// dark mode: Material switches data-md-color-scheme on <body>; redraw with the new colours
new MutationObserver(redrawAll).observe(document.body || document.documentElement,
  { attributes: true, attributeFilter: ["data-md-color-scheme"] });
window.convlensExplorers = { start: startAll, kinds: Object.keys(KINDS) };
