// The data of each interactive figure on a lesson page is a file of its own
// (coursebuild.figures moves it out of the page): the element names it in
// data-convlens-src, relative to the page, and keeps its kind in data-convlens-pending.
// This script fetches the file, puts the data where explorers/main.js reads it
// (data-convlens-explorer, data-convlens-data) and asks explorers/main.js to draw it.
// It runs on every page, instant navigation included (Material's document$).
(function () {
  "use strict";

  function load(root) {
    if (root.dataset.convlensFetch) return;
    root.dataset.convlensFetch = "loading";
    var url = new URL(root.getAttribute("data-convlens-src"), window.location.href);
    fetch(url.href).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status + " for " + url.href);
      return response.text();
    }).then(function (text) {
      if (!root.isConnected) return;
      root.setAttribute("data-convlens-data", text);
      root.setAttribute("data-convlens-explorer", root.getAttribute("data-convlens-pending"));
      root.dataset.convlensFetch = "done";
      if (window.convlensExplorers) window.convlensExplorers.start();
    }).catch(function (error) {
      root.dataset.convlensFetch = "failed";
      console.error("convlens explorer data:", error);
    });
  }

  function loadAll() {
    document.querySelectorAll("[data-convlens-src][data-convlens-pending]").forEach(load);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(loadAll);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", loadAll);
  } else {
    loadAll();
  }
})();
