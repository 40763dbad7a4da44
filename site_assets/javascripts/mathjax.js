// MathJax 3 configuration. Loaded before the vendored javascripts/vendor/mathjax/tex-svg-full.js
// (copied into build/docs by coursebuild: no CDN, the site works offline).
//
// Two sources of math reach the browser:
//  - Markdown pages: pymdownx.arithmatex (generic) wraps math in .arithmatex as \( \) / \[ \];
//  - lesson notebooks: nbconvert renders markdown cells itself and keeps $...$ and $$...$$
//    in .jp-RenderedMarkdown, inside nested <p>, <li>, ... without classes.
// So the page is searched except the site chrome and the code cells and their outputs
// (pre and code are never searched); markdown displayed by a cell is searched again.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "tex2jax_ignore|md-header|md-sidebar|md-footer|md-search|jp-OutputArea|jp-InputArea-editor",
    processHtmlClass: "tex2jax_process|arithmatex|jp-RenderedMarkdown",
  },
  // "local": each formula carries its own glyphs, so instant navigation, which replaces the
  // page content, can never drop a shared glyph cache.
  svg: { fontCache: "local" },
  startup: { typeset: false },  // document$ below typesets every page, the first included
};

// With navigation.instant, Material swaps the page content without a reload: typeset again
// each time (document$ emits on the first load and after every instant navigation).
document$.subscribe(() => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return;
  MathJax.startup.promise = MathJax.startup.promise.then(() => {
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise();
  });
});
