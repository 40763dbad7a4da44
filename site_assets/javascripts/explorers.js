/* convlens explorers: interactive figures drawn from data the build computed.
 *
 * A lesson cell outputs <div data-convlens-explorer="KIND" data-convlens-data="JSON"> holding
 * a fallback sentence (see convlens/explore.py for the encoding, and why an attribute). This script finds those roots on every page (Material's instant
 * navigation included, through its document$ observable), builds the controls and draws on
 * canvases. No kernel, no network: maps are zlib-compressed uint8 in the page, inflated with
 * DecompressionStream("deflate"); colour maps are matplotlib's 256-entry tables from the data.
 *
 * For tests and curious readers, each root exposes what is drawn: root.convlensView
 * ({values, width, height, ...}) and data-* attributes with the current choice.
 */
(function () {
  "use strict";

  var live = [];

  /* ---------- decoding ---------- */

  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function inflate(b64) {
    if (!b64) return Promise.resolve(new Uint8Array(0));
    var stream = new Blob([bytes(b64)]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  /* A packed map or stack -> {shape, q (uint8 codes), lo, hi} */
  function unpack(entry) {
    return inflate(entry.z).then(function (q) {
      return { shape: entry.shape, q: q, lo: entry.lo, hi: entry.hi };
    });
  }

  function product(list) { return list.reduce(function (a, b) { return a * b; }, 1); }

  /* Entry k of a stack, as a map {shape, q, lo, hi} */
  function slice(stack, k) {
    var shape = stack.shape.slice(1), n = product(shape);
    return { shape: shape, q: stack.q.subarray(k * n, (k + 1) * n), lo: stack.lo[k], hi: stack.hi[k] };
  }

  function values(map) {
    var out = new Float32Array(map.q.length), step = (map.hi - map.lo) / 255;
    for (var i = 0; i < out.length; i++) out[i] = map.lo + map.q[i] * step;
    return out;
  }

  /* matplotlib's rule: a value v in [0, 1] takes table entry floor(256 v), clipped */
  function lutIndex(v) {
    var i = Math.floor(v * 256);
    return i < 0 ? 0 : i > 255 ? 255 : i;
  }

  function loadImage(src) {
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () { resolve(img); };
      img.onerror = function () { reject(new Error("explorer photo failed to decode")); };
      img.src = src;
    });
  }

  function pixelsOf(img) {
    var c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    var ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, c.width, c.height).data;
  }

  /* ---------- small DOM helpers ---------- */

  var counter = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function control(labelText, input) {
    var id = "convlens-control-" + (++counter);
    input.id = id;
    return el("div", { className: "convlens-explorer-control" },
      [el("label", { "for": id, text: labelText }), input]);
  }

  /* a <select>; options: [[value, text], ...] */
  function select(name, options, initial, onchange) {
    var s = el("select", { "data-control": name });
    options.forEach(function (o) { s.appendChild(el("option", { value: String(o[0]), text: o[1] })); });
    s.value = String(initial);
    s.addEventListener("change", function () { onchange(Number(s.value)); });
    return s;
  }

  /* a range over discrete choices (arrow keys step through them); shows the chosen text */
  function slider(name, texts, initial, onchange) {
    var r = el("input", { type: "range", min: "0", max: String(texts.length - 1), step: "1",
      value: String(initial), "data-control": name });
    var shown = el("output", { className: "convlens-explorer-value", text: texts[initial] });
    function update() {
      var i = Number(r.value);
      shown.textContent = texts[i];
      r.setAttribute("aria-valuetext", texts[i]);
      onchange(i);
    }
    r.setAttribute("aria-valuetext", texts[initial]);
    r.addEventListener("input", update);
    var wrap = el("span", { className: "convlens-explorer-range" }, [r, shown]);
    wrap.input = r;
    return wrap;
  }

  function sliderControl(labelText, s) {
    var id = "convlens-control-" + (++counter);
    s.input.id = id;
    return el("div", { className: "convlens-explorer-control" },
      [el("label", { "for": id, text: labelText }), s]);
  }

  function canvas(width, height, label) {
    var c = el("canvas", { width: String(width), height: String(height), role: "img",
      "aria-label": label });
    return c;
  }

  function palette(root) {
    var cs = getComputedStyle(root);
    function v(name, fallback) { return (cs.getPropertyValue(name) || "").trim() || fallback; }
    return { fg: v("--md-default-fg-color", "rgba(0,0,0,0.87)"),
      light: v("--md-default-fg-color--lighter", "rgba(0,0,0,0.32)"),
      bg: v("--md-default-bg-color", "#fff"),
      accent: v("--md-accent-fg-color", "#ff6e42"),
      panel: v("--md-code-bg-color", "#f5f5f5") };
  }

  function percent(p) { return (100 * p).toFixed(1) + "%"; }
  function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3); }

  /* bilinear upsampling of a [h, w] Float32Array to [H, W], like torch's
     F.interpolate(mode="bilinear", align_corners=False) */
  function upsample(src, h, w, H, W) {
    var out = new Float32Array(H * W), sy = h / H, sx = w / W;
    var x0s = new Int32Array(W), x1s = new Int32Array(W), lx = new Float32Array(W);
    for (var X = 0; X < W; X++) {
      var fx = Math.max(sx * (X + 0.5) - 0.5, 0), x0 = Math.floor(fx);
      x0s[X] = x0; x1s[X] = x0 < w - 1 ? x0 + 1 : x0; lx[X] = fx - x0;
    }
    for (var Y = 0; Y < H; Y++) {
      var fy = Math.max(sy * (Y + 0.5) - 0.5, 0), y0 = Math.floor(fy);
      var y1 = y0 < h - 1 ? y0 + 1 : y0, ly = fy - y0;
      for (X = 0; X < W; X++) {
        var a = src[y0 * w + x0s[X]], b = src[y0 * w + x1s[X]];
        var c = src[y1 * w + x0s[X]], d = src[y1 * w + x1s[X]];
        out[Y * W + X] = (1 - ly) * ((1 - lx[X]) * a + lx[X] * b) + ly * ((1 - lx[X]) * c + lx[X] * d);
      }
    }
    return out;
  }

  /* paint a [h, w] array of values in [0, 1] with a lookup table, optionally over a base
     picture (RGBA pixels of the same size) with opacity alpha */
  function paint(ctx, norm, w, h, table, base, alpha) {
    var image = ctx.createImageData(w, h), px = image.data;
    for (var i = 0; i < w * h; i++) {
      var k = 3 * lutIndex(norm[i]);
      if (base) {
        px[4 * i] = (1 - alpha) * base[4 * i] + alpha * table[k];
        px[4 * i + 1] = (1 - alpha) * base[4 * i + 1] + alpha * table[k + 1];
        px[4 * i + 2] = (1 - alpha) * base[4 * i + 2] + alpha * table[k + 2];
      } else {
        px[4 * i] = table[k]; px[4 * i + 1] = table[k + 1]; px[4 * i + 2] = table[k + 2];
      }
      px[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  /* ---------- the explorers ---------- */

  var KINDS = {};

  /* Receptive fields: pick a layer, point at a unit. */
  KINDS["receptive-field"] = function (root, data, ui) {
    var layers = data.layers, m = data.margin, H = data.image.height, W = data.image.width;
    var state = { layer: Math.floor(layers.length / 2), i: 0, j: 0 };
    var masks = {};
    return Promise.all([loadImage(data.image.src)].concat(layers.map(function (layer, li) {
      return Promise.all(layer.measured.map(function (probe) {
        return inflate(probe.z).then(function (packed) { masks[li + ":" + probe.unit] = packed; });
      }));
    }))).then(function (loaded) {
      var photo = loaded[0];
      var c = canvas(W + 2 * m, H + 2 * m, "the photo with the receptive field of the chosen unit");
      c.tabIndex = 0;
      c.classList.add("convlens-explorer-pointer");
      var select_ = select("layer", layers.map(function (l, k) {
        return [k, l.name + " (" + l.map[0] + "\u00d7" + l.map[1] + ")"];
      }), state.layer, function (k) { state.layer = k; centre(); draw(); });
      ui.controls.appendChild(control("Layer", select_));
      ui.stage.appendChild(c);
      ui.hint.textContent = "Point at (or tap) the photo to choose a unit; with the picture focused, " +
        "arrow keys move the unit. Dots mark the units whose measured footprint is shown.";

      function centre() {
        var l = layers[state.layer];
        state.i = Math.floor(l.map[0] / 2); state.j = Math.floor(l.map[1] / 2);
      }

      function box(l, i, j) {
        var top = i * l.stride[0] - l.padding[0], left = j * l.stride[1] - l.padding[1];
        return [top, left, top + l.size[0], left + l.size[1]];
      }

      function probeOf(l, i, j) {
        for (var k = 0; k < l.measured.length; k++) {
          var u = l.measured[k].unit;
          if (u[0] === i && u[1] === j) return l.measured[k];
        }
        return null;
      }

      function draw() {
        var p = palette(root), ctx = c.getContext("2d"), l = layers[state.layer];
        ctx.clearRect(0, 0, c.width, c.height);
        ctx.fillStyle = p.panel; ctx.fillRect(0, 0, c.width, c.height);
        ctx.drawImage(photo, m, m);
        var probe = probeOf(l, state.i, state.j), full = null;
        if (probe && probe.pixels > 0) {
          var bits = masks[state.layer + ":" + probe.unit], b = probe.box;
          var bw = b[3] - b[1], bh = b[2] - b[0];
          var off = document.createElement("canvas");
          off.width = bw; off.height = bh;
          var octx = off.getContext("2d"), img = octx.createImageData(bw, bh);
          var rgb = hexish(p.accent);
          full = new Uint8Array(H * W);
          for (var n = 0; n < bw * bh; n++) {
            if (bits[n >> 3] & (128 >> (n & 7))) {
              full[(b[0] + Math.floor(n / bw)) * W + b[1] + n % bw] = 1;
              img.data[4 * n] = rgb[0]; img.data[4 * n + 1] = rgb[1]; img.data[4 * n + 2] = rgb[2];
              img.data[4 * n + 3] = 140;
            }
          }
          octx.putImageData(img, 0, 0);
          ctx.drawImage(off, m + b[1], m + b[0]);
        }
        // dots on the measured units
        ctx.fillStyle = p.bg; ctx.strokeStyle = p.fg; ctx.lineWidth = 1;
        l.measured.forEach(function (probe_) {
          var y = m + probe_.unit[0] * l.stride[0] - l.padding[0] + l.size[0] / 2;
          var x = m + probe_.unit[1] * l.stride[1] - l.padding[1] + l.size[1] / 2;
          ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
        });
        var bx = box(l, state.i, state.j);
        ctx.strokeStyle = p.accent; ctx.lineWidth = 2;
        ctx.strokeRect(m + bx[1], m + bx[0], bx[3] - bx[1], bx[2] - bx[0]);
        var cy = m + (bx[0] + bx[2]) / 2, cx = m + (bx[1] + bx[3]) / 2;
        ctx.beginPath(); ctx.moveTo(cx - 5, cy); ctx.lineTo(cx + 5, cy);
        ctx.moveTo(cx, cy - 5); ctx.lineTo(cx, cy + 5); ctx.stroke();
        ctx.strokeStyle = p.light; ctx.lineWidth = 1; ctx.strokeRect(m - 0.5, m - 0.5, W + 1, H + 1);

        root.convlensView = { box: bx, unit: [state.i, state.j], layer: l.name, mask: full,
          width: W, height: H };
        root.dataset.layer = l.name;
        root.dataset.unit = state.i + "," + state.j;
        root.dataset.box = bx.join(",");
        root.dataset.measured = probe ? String(probe.pixels) : "";
        var beyond = bx[0] < -m || bx[1] < -m || bx[2] > H + m || bx[3] > W + m;
        ui.readout.textContent = l.name + ": field size " + l.size[0] + "\u00d7" + l.size[1] +
          " px, jump " + l.stride[0] + ", offset " + l.padding[0] + ". Unit (" + state.i + ", " +
          state.j + ") of " + l.map[0] + "\u00d7" + l.map[1] + " sees rows " + bx[0] + "\u2026" +
          (bx[2] - 1) + ", columns " + bx[1] + "\u2026" + (bx[3] - 1) +
          (beyond ? " (the box reaches beyond this view)" : "") + ". " +
          (probe ? "Measured: " + probe.pixels + " pixels have a nonzero gradient (channel " +
            probe.channel + ")." : "Measured footprints: at the dotted units.");
        c.setAttribute("aria-label", ui.readout.textContent);
      }

      function pick(event) {
        var r = c.getBoundingClientRect(), l = layers[state.layer];
        var y = (event.clientY - r.top) * c.height / r.height - m;
        var x = (event.clientX - r.left) * c.width / r.width - m;
        function unit(v, axis) {
          if (l.stride[axis] === 0) return 0;
          var u = Math.round((v + l.padding[axis] - (l.size[axis] - 1) / 2) / l.stride[axis]);
          return Math.max(0, Math.min(l.map[axis] - 1, u));
        }
        var i = unit(y, 0), j = unit(x, 1);
        if (i !== state.i || j !== state.j) { state.i = i; state.j = j; draw(); }
      }
      c.addEventListener("pointermove", pick);
      c.addEventListener("pointerdown", function (e) { pick(e); c.focus({ preventScroll: true }); });
      c.addEventListener("keydown", function (e) {
        var l = layers[state.layer], moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0],
          ArrowLeft: [0, -1], ArrowRight: [0, 1] }, d = moves[e.key];
        if (!d) return;
        e.preventDefault();
        state.i = Math.max(0, Math.min(l.map[0] - 1, state.i + d[0]));
        state.j = Math.max(0, Math.min(l.map[1] - 1, state.j + d[1]));
        draw();
      });
      centre();
      draw();
      return { draw: draw, set: function (layer, i, j) {
        state.layer = layer; state.i = i; state.j = j; select_.value = String(layer); draw();
      } };
    });
  };

  /* "#rrggbb", "rgb(...)", "hsla(...)" -> [r, g, b] through the canvas parser */
  var colourCanvas = null, parsed = {};
  function hexish(colour) {
    if (parsed[colour]) return parsed[colour];
    colourCanvas = colourCanvas || document.createElement("canvas");
    colourCanvas.width = colourCanvas.height = 1;
    var ctx = colourCanvas.getContext("2d", { willReadFrequently: true });
    ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = "#ff6e42"; ctx.fillStyle = colour;
    ctx.fillRect(0, 0, 1, 1);
    var d = ctx.getImageData(0, 0, 1, 1).data;
    parsed[colour] = [d[0], d[1], d[2]];
    return parsed[colour];
  }

  /* Grad-CAM: photo x class x layer. */
  KINDS.gradcam = function (root, data, ui) {
    var table = bytes(data.luts[data.cmap]);
    var state = { photo: 0, cls: 0, layer: data.photos[0].layers.length - 1 };  // the deepest
    return Promise.all(data.photos.map(function (photo) {
      return Promise.all([loadImage(photo.image.src)].concat(photo.maps.map(unpack)));
    })).then(function (loaded) {
      var bases = loaded.map(function (l) { return pixelsOf(l[0]); });
      var c = canvas(data.photos[0].image.width, data.photos[0].image.height, "Grad-CAM map");
      var classBox = el("div"), layerBox = el("div"), classSelect, layerSlider;
      if (data.photos.length > 1) {
        ui.controls.appendChild(control("Photo", select("photo", data.photos.map(function (p, k) {
          return [k, p.name]; }), 0, function (k) { state.photo = k; state.cls = 0; rebuild(); draw(); })));
      }
      ui.controls.appendChild(classBox); ui.controls.appendChild(layerBox);
      ui.stage.appendChild(c);

      function rebuild() {
        var p = data.photos[state.photo];
        classSelect = select("class", p.classes.map(function (cl, k) {
          return [k, cl.label + " (" + percent(cl.p) + ")"]; }), state.cls,
          function (k) { state.cls = k; draw(); });
        classBox.replaceChildren(control("Class (top " + p.classes.length + ")", classSelect));
        state.layer = Math.min(state.layer, p.layers.length - 1);
        layerSlider = slider("layer", p.layers.map(function (l) {
          return l.name + " (" + l.map[0] + "\u00d7" + l.map[1] + ")"; }), state.layer,
          function (k) { state.layer = k; draw(); });
        layerBox.replaceChildren(sliderControl("Layer", layerSlider));
      }

      function draw() {
        var p = data.photos[state.photo], stack = loaded[state.photo][1 + state.layer];
        var layer = p.layers[state.layer], cl = p.classes[state.cls];
        var H = p.image.height, W = p.image.width;
        var coarse = values(slice(stack, state.cls));
        var up = upsample(coarse, layer.map[0], layer.map[1], H, W), top = 0;
        for (var i = 0; i < up.length; i++) if (up[i] > top) top = up[i];
        for (i = 0; i < up.length; i++) up[i] = top > 0 ? up[i] / top : 0;
        c.width = W; c.height = H;
        paint(c.getContext("2d"), up, W, H, table, bases[state.photo], data.alpha);
        root.convlensView = { values: up, width: W, height: H, photo: p.name, cls: cl.index,
          layer: layer.name, alpha: data.alpha, base: bases[state.photo], lut: table };
        root.dataset.photo = p.name; root.dataset.cls = String(cl.index); root.dataset.layer = layer.name;
        ui.readout.textContent = "Grad-CAM of \u2018" + cl.label + "\u2019 (p = " + percent(cl.p) +
          ") at " + layer.name + " (" + layer.map[0] + "\u00d7" + layer.map[1] +
          "), upsampled to " + H + "\u00d7" + W + " and divided by its own maximum; raw maximum " +
          fmt(slice(stack, state.cls).hi) + " (logit units).";
        c.setAttribute("aria-label", ui.readout.textContent);
      }
      rebuild();
      draw();
      return { draw: draw, set: function (photo, cls, layer) {
        state.photo = photo; state.cls = cls; state.layer = layer; rebuild(); draw(); } };
    });
  };

  /* Occlusion: window x stride x class. */
  KINDS.occlusion = function (root, data, ui) {
    var table = bytes(data.luts[data.cmap]);
    var state = { w: Math.floor(data.windows.length / 2), s: 0, cls: 0 };  // a middle window
    var flat = [];
    data.maps.forEach(function (row) { row.forEach(function (e) { flat.push(e); }); });
    return Promise.all([loadImage(data.image.src)].concat(flat.map(unpack))).then(function (loaded) {
      var H = data.image.height, W = data.image.width, rgb = pixelsOf(loaded[0]);
      var grey = new Uint8ClampedArray(4 * H * W);
      for (var i = 0; i < H * W; i++) {
        var g = (rgb[4 * i] + rgb[4 * i + 1] + rgb[4 * i + 2]) / 3;
        grey[4 * i] = grey[4 * i + 1] = grey[4 * i + 2] = g; grey[4 * i + 3] = 255;
      }
      var c = canvas(W, H, "occlusion map");
      ui.controls.appendChild(sliderControl("Window", slider("window", data.windows.map(function (w) {
        return w + " px"; }), state.w, function (k) { state.w = k; draw(); })));
      ui.controls.appendChild(sliderControl("Stride", slider("stride", data.strides.map(function (s) {
        return s + " px"; }), 0, function (k) { state.s = k; draw(); })));
      ui.controls.appendChild(control("Class", select("class", data.classes.map(function (cl, k) {
        return [k, cl.label + " (" + percent(cl.p) + ")"]; }), 0, function (k) { state.cls = k; draw(); })));
      ui.stage.appendChild(c);

      function draw() {
        var window_ = data.windows[state.w], stride = data.strides[state.s];
        var stack = loaded[1 + state.w * data.strides.length + state.s];
        var map = slice(stack, state.cls), v = values(map), rows = map.shape[0], cols = map.shape[1];
        var start = window_ / 2 - stride / 2, limit = data.limit || 1;
        var ctx = c.getContext("2d"), image = ctx.createImageData(W, H), px = image.data;
        for (var y = 0; y < H; y++) {
          var r = Math.floor((y + 0.5 - start) / stride);
          for (var x = 0; x < W; x++) {
            var q = Math.floor((x + 0.5 - start) / stride), n = 4 * (y * W + x);
            if (r >= 0 && r < rows && q >= 0 && q < cols) {
              var k = 3 * lutIndex((v[r * cols + q] + limit) / (2 * limit));
              px[n] = 0.3 * grey[n] + 0.7 * table[k];
              px[n + 1] = 0.3 * grey[n + 1] + 0.7 * table[k + 1];
              px[n + 2] = 0.3 * grey[n + 2] + 0.7 * table[k + 2];
            } else {
              px[n] = grey[n]; px[n + 1] = grey[n + 1]; px[n + 2] = grey[n + 2];
            }
            px[n + 3] = 255;
          }
        }
        ctx.putImageData(image, 0, 0);
        var cl = data.classes[state.cls], most = 0, least = 0;
        for (var t = 0; t < v.length; t++) { most = Math.max(most, v[t]); least = Math.min(least, v[t]); }
        root.convlensView = { values: v, width: cols, height: rows, window: window_, stride: stride,
          cls: cl.index };
        root.dataset.window = String(window_); root.dataset.stride = String(stride);
        root.dataset.cls = String(cl.index);
        ui.readout.textContent = "Window " + window_ + " px at stride " + stride + ": a " + rows +
          "\u00d7" + cols + " map, " + rows * cols + " occluded forward passes. \u2018" + cl.label +
          "\u2019: largest drop " + fmt(most) + ", largest rise " + fmt(-least) +
          " (logit); red = hiding the window lowers the logit; one colour scale \u00b1" +
          fmt(limit) + " for every setting.";
        c.setAttribute("aria-label", ui.readout.textContent);
      }
      draw();
      return { draw: draw };
    });
  };

  /* SmoothGrad: noise level x number of samples. */
  KINDS.smoothgrad = function (root, data, ui) {
    var table = bytes(data.luts[data.cmap]), state = { noise: Math.min(2, data.noise.length - 1), n: data.samples.length - 1 };
    var flat = [], index = [];
    data.maps.forEach(function (row, a) { row.forEach(function (e, b) { index.push([a, b]); flat.push(e); }); });
    return Promise.all([loadImage(data.image.src)].concat(flat.map(unpack))).then(function (loaded) {
      var H = data.image.height, W = data.image.width;
      var c = canvas(W, H, "SmoothGrad map");
      var photo = el("img", { src: data.image.src, alt: "the photo", width: String(W), height: String(H) });
      ui.controls.appendChild(sliderControl("Noise", slider("noise", data.noise.map(function (v) {
        return v === 0 ? "0 (plain gradient)" : String(v); }), state.noise,
        function (k) { state.noise = k; draw(); })));
      ui.controls.appendChild(sliderControl("Samples", slider("samples", data.samples.map(String),
        state.n, function (k) { state.n = k; draw(); })));
      // the lesson's second view: magnitudes averaged over 4x4 blocks (display only)
      var blocks = el("input", { type: "checkbox", "data-control": "blocks" });
      blocks.addEventListener("change", function () { draw(); });
      ui.controls.appendChild(control("4\u00d74 blocks", blocks));
      ui.stage.appendChild(photo); ui.stage.appendChild(c);

      function blockMeans(v, size) {
        var h = Math.floor(H / size), w = Math.floor(W / size), out = new Float32Array(h * w), top = 0;
        for (var y = 0; y < h * size; y++) {
          for (var x = 0; x < w * size; x++) out[Math.floor(y / size) * w + Math.floor(x / size)] += v[y * W + x];
        }
        for (var i = 0; i < out.length; i++) { out[i] /= size * size; top = Math.max(top, out[i]); }
        var up = new Float32Array(H * W);  // nearest, back to the photo's size; divided by the max
        for (y = 0; y < H; y++) {
          for (x = 0; x < W; x++) {
            var b = Math.min(Math.floor(y / size), h - 1) * w + Math.min(Math.floor(x / size), w - 1);
            up[y * W + x] = top > 0 ? out[b] / top : 0;
          }
        }
        return { shown: up, means: out, width: w, height: h };
      }

      function draw() {
        var row = data.maps[state.noise], b = row.length === 1 ? 0 : state.n, k = 0;
        for (; k < index.length; k++) if (index[k][0] === state.noise && index[k][1] === b) break;
        var map = loaded[1 + k], v = values(map), coarse = blocks.checked ? blockMeans(v, 4) : null;
        paint(c.getContext("2d"), coarse ? coarse.shown : v, W, H, table, null, 1);
        var level = data.noise[state.noise], n = data.samples[state.n];
        root.convlensView = { values: v, width: W, height: H, noise: level,
          samples: row.length === 1 ? 1 : n, blocks: coarse ? coarse.means : null };
        root.dataset.noise = String(level); root.dataset.samples = String(row.length === 1 ? 1 : n);
        ui.readout.textContent = (level === 0 ? "Plain gradient (noise 0: the number of samples " +
          "does not matter)" : "SmoothGrad with noise " + level + " (\u03c3 = " + (100 * level).toFixed(0) +
          "% of the input range) and N = " + n + " samples (" + n + " forward and backward passes)") +
          " for \u2018" + data.label + "\u2019: max |g| over colours, clipped at the " + data.percentile +
          "th percentile" + (coarse ? ", then averaged over 4\u00d74 blocks (display only)." : ".");
        c.setAttribute("aria-label", ui.readout.textContent);
      }
      draw();
      return { draw: draw };
    });
  };

  /* Channels: a feature map of a layer, or the kernel maps of a first-layer filter. */
  KINDS.channels = function (root, data, ui) {
    var viridis = bytes(data.luts.viridis), rdbu = bytes(data.luts.RdBu_r);
    // start on the first convolution's filters when there are any (the lesson's figure)
    var state = { mode: data.conv ? data.layers.length : 0, layer: 0, ch: 0, filter: 0 };
    var entries = data.layers.map(function (l) { return l.maps; });
    if (data.conv) entries.push(data.conv.maps, data.conv.weights);
    return Promise.all(entries.map(unpack)).then(function (stacks) {
      var modeBox = el("div"), pickBox = el("div"), stage = el("div", { className: "convlens-explorer-panels" });
      ui.controls.appendChild(modeBox); ui.controls.appendChild(pickBox);
      var photo = el("figure", {}, [el("img", { src: data.image.src, alt: "the photo",
        width: String(data.image.width), height: String(data.image.height),
        className: "convlens-explorer-photo" }), el("figcaption", { text: "input" })]);
      ui.stage.appendChild(stage);
      var modes = data.layers.map(function (l, k) { return [k, "feature maps of " + l.name]; });
      if (data.conv) modes.push([modes.length, "kernel maps of a " + data.conv.name + " filter"]);
      modeBox.replaceChildren(control("Show", select("mode", modes, state.mode, function (k) {
        state.mode = k; rebuild(); draw(); })));

      function isConv() { return data.conv && state.mode === data.layers.length; }

      function rebuild() {
        if (isConv()) {
          pickBox.replaceChildren(sliderControl("Filter", slider("filter", data.conv.filters.map(function (f) {
            return "filter " + f; }), state.filter, function (k) { state.filter = k; draw(); })));
        } else {
          state.layer = state.mode;
          var count = stacks[state.layer].shape[0], texts = [];
          for (var k = 0; k < count; k++) texts.push(k + " of " + count);
          state.ch = Math.min(state.ch, count - 1);
          pickBox.replaceChildren(sliderControl("Channel", slider("channel", texts, state.ch,
            function (k2) { state.ch = k2; draw(); })));
        }
      }

      function panel(norm, w, h, table, label) {
        var c = canvas(w, h, label);
        c.classList.add("convlens-explorer-pixelated");
        paint(c.getContext("2d"), norm, w, h, table, null, 1);
        return el("figure", {}, [c, el("figcaption", { text: label })]);
      }

      function draw() {
        if (isConv()) {
          var conv = data.conv, maps = stacks[data.layers.length], weights = stacks[data.layers.length + 1];
          var m = slice(maps, state.filter), per = m.shape[1] * m.shape[2];
          var h = m.shape[1], w = m.shape[2], figures = [], shown = [];
          // the filter's weights as one RGB patch (its own range), when it reads colour
          var wt = slice(weights, state.filter), k2 = conv.kernel[0] * conv.kernel[1];
          if (conv.in_channels === 3) {
            var wc = canvas(conv.kernel[1], conv.kernel[0], "the filter's weights");
            wc.classList.add("convlens-explorer-pixelated");
            var wctx = wc.getContext("2d"), wimg = wctx.createImageData(conv.kernel[1], conv.kernel[0]);
            for (var p = 0; p < k2; p++) {
              for (var ch = 0; ch < 3; ch++) wimg.data[4 * p + ch] = wt.q[ch * k2 + p];
              wimg.data[4 * p + 3] = 255;
            }
            wctx.putImageData(wimg, 0, 0);
            figures.push(el("figure", {}, [wc, el("figcaption", { text: "weights (RGB)" })]));
          }
          var names = [];
          for (var c_ = 0; c_ < conv.in_channels; c_++) names.push((conv.in_channels === 3 ? "RGB"[c_] : "channel " + c_) + " kernel map");
          names.push("sum = feature map");
          for (var k = 0; k < names.length; k++) {
            var q = m.q.subarray(k * per, (k + 1) * per), norm = new Float32Array(per);
            for (var t = 0; t < per; t++) norm[t] = q[t] / 255;
            shown.push(Float32Array.from(q, function (x) { return m.lo + x * (m.hi - m.lo) / 255; }));
            figures.push(panel(norm, w, h, rdbu, names[k]));
          }
          stage.replaceChildren.apply(stage, [photo].concat(figures));
          var f = conv.filters[state.filter];
          root.convlensView = { values: shown, width: w, height: h, filter: f };
          root.dataset.layer = conv.name; root.dataset.filter = String(f); delete root.dataset.channel;
          ui.readout.textContent = conv.name + " filter " + f + ": the response of each input-channel " +
            "kernel and their sum (the feature map, bias included), one signed scale \u00b1" + fmt(m.hi) +
            " (red > 0, blue < 0).";
        } else {
          var stack = stacks[state.layer], map = slice(stack, state.ch), v = values(map);
          var hh = map.shape[0], ww = map.shape[1], n2 = new Float32Array(v.length);
          for (var i = 0; i < v.length; i++) n2[i] = map.q[i] / 255;
          var name = data.layers[state.layer].name;
          stage.replaceChildren(photo, panel(n2, ww, hh, viridis, name + ", channel " + state.ch));
          root.convlensView = { values: v, width: ww, height: hh, channel: state.ch, layer: name };
          root.dataset.layer = name; root.dataset.channel = String(state.ch); delete root.dataset.filter;
          ui.readout.textContent = name + " channel " + state.ch + " of " + stack.shape[0] + ": a " + hh +
            "\u00d7" + ww + " map, values " + fmt(map.lo) + " \u2026 " + fmt(map.hi) +
            " (viridis, its own colour scale).";
        }
      }
      rebuild();
      draw();
      return { draw: draw };
    });
  };

  /* ---------- wiring ---------- */

  function start(root) {
    if (root.dataset.convlensReady) return;
    root.dataset.convlensReady = "loading";
    var kind = root.getAttribute("data-convlens-explorer"), make = KINDS[kind];
    var raw = root.getAttribute("data-convlens-data");
    if (!make || !raw || typeof DecompressionStream === "undefined") {
      root.dataset.convlensReady = "unsupported";
      return;
    }
    var data = JSON.parse(raw);
    var ui = {
      controls: el("div", { className: "convlens-explorer-controls" }),
      stage: el("div", { className: "convlens-explorer-stage" }),
      readout: el("p", { className: "convlens-explorer-readout", "aria-live": "polite" }),
      hint: el("p", { className: "convlens-explorer-hint" })
    };
    var body = el("div", { className: "convlens-explorer-body" }, [
      data.title ? el("p", { className: "convlens-explorer-title", text: "Interactive figure: " + data.title }) : null,
      ui.controls, ui.stage, ui.readout, ui.hint]);
    make(root, data, ui).then(function (explorer) {
      root.appendChild(body);
      root.classList.add("convlens-explorer--ready");
      root.dataset.convlensReady = "ready";
      root.convlensExplorer = explorer;
      live.push({ root: root, explorer: explorer });
    }).catch(function (error) {
      root.dataset.convlensReady = "failed";
      console.error("convlens explorer (" + kind + "):", error);
    });
  }

  function startAll() {
    live = live.filter(function (e) { return e.root.isConnected; });
    document.querySelectorAll("[data-convlens-explorer]").forEach(start);
  }

  function redrawAll() {
    live.forEach(function (e) { if (e.root.isConnected) e.explorer.draw(); });
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
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
})();
