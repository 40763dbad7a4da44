/* The explorers' controls: one labelled control builder (a menu, a stepped slider or a
 * checkbox), and the small DOM and text helpers the explorers share.
 *
 * Every control is a native form element with a <label for>: Tab reaches it, arrow keys
 * (and Home/End) step a slider or a menu, Space toggles a checkbox, and extra.css gives it a
 * visible :focus-visible ring. A slider over discrete choices shows the chosen text beside
 * it and reads it out through aria-valuetext.
 */

let counter = 0;

/** an element: attrs are attributes, except text (its text) and className */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.appendChild(c);
  return node;
}

/** a fresh id for an element of this page */
export function uid(prefix = "convlens-control") {
  return `${prefix}-${++counter}`;
}

/**
 * One labelled control: {element (append it), input, set(value)}.
 *
 * spec.type "select" (a menu) or "range" (a slider) chooses among spec.options (texts) by
 * index; "checkbox" is on or off. spec.name becomes the input's data-control attribute,
 * spec.label its label, spec.value the starting index (or boolean); spec.onChange gets the
 * new index (or boolean) after each change made by the reader. set(value) changes the
 * control without calling onChange.
 */
export function control({ type, name, label, options = [], value, onChange }) {
  const id = uid();
  let input, shown = null;
  if (type === "select") {
    input = el("select", { id, "data-control": name });
    options.forEach((text, k) => input.appendChild(el("option", { value: String(k), text })));
  } else if (type === "range") {
    input = el("input", { id, type: "range", min: "0", max: String(Math.max(options.length - 1, 0)),
      step: "1", "data-control": name });
    shown = el("output", { className: "convlens-explorer-value", for: id });
  } else if (type === "checkbox") {
    input = el("input", { id, type: "checkbox", "data-control": name });
  } else {
    throw new Error(`unknown control type ${type}`);
  }
  const read = () => (type === "checkbox" ? input.checked : Number(input.value));
  const set = (v) => {
    if (type === "checkbox") input.checked = Boolean(v);
    else input.value = String(v);
    if (shown) {
      shown.textContent = options[v];
      input.setAttribute("aria-valuetext", options[v]);
    }
  };
  set(value);
  input.addEventListener(type === "range" ? "input" : "change", () => {
    set(read());
    onChange(read());
  });
  const field = shown ? el("span", { className: "convlens-explorer-range" }, [input, shown]) : input;
  const element = el("div", { className: "convlens-explorer-control" },
    [el("label", { for: id, text: label }), field]);
  return { element, input, set };
}

/** a probability as a percentage with one decimal */
export function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

/** a number with about three significant digits */
export function fmt(v) {
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
}
