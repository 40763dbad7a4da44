// Keyboard access to content that scrolls inside its own box. A wide code cell, table,
// output or formula scrolls sideways in its box (the page itself never does); a box that
// scrolls and holds nothing focusable gets tabindex="0", so that keyboard users can reach
// and scroll it (WCAG 2.1.1; axe-core's scrollable-region-focusable). Checked on every page
// (instant navigation included), when the window is resized and when MathJax has typeset.
(function () {
  "use strict";
  var MARK = "data-convlens-scrollbox";
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";

  function scrolls(el) {
    var style = getComputedStyle(el);
    return (/(auto|scroll)/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1) ||
      (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1);
  }

  function update() {
    var article = document.querySelector("article");
    if (!article) return;
    article.querySelectorAll("div, pre, code, table, mjx-container").forEach(function (el) {
      var ours = el.hasAttribute(MARK);
      if (scrolls(el)) {
        if (!ours && !el.hasAttribute("tabindex") && !el.querySelector(FOCUSABLE)) {
          el.setAttribute("tabindex", "0");
          el.setAttribute(MARK, "");
        }
      } else if (ours) {
        el.removeAttribute("tabindex");
        el.removeAttribute(MARK);
      }
    });
  }

  var pending = null;
  function soon() {
    if (pending) clearTimeout(pending);
    pending = setTimeout(function () { pending = null; update(); }, 150);
  }

  function onPage() {
    update();
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(soon);
    }
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(onPage);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onPage);
  } else {
    onPage();
  }
  window.addEventListener("resize", soon);
  window.addEventListener("load", soon);
})();
