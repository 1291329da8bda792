// MathJax for the formulas that pymdownx.arithmatex marks (Material for MkDocs recipe).
//
// MathJax itself ships with the site, so that formulas render without a network:
// javascripts/mathjax/tex-svg-full.js is es5/tex-svg-full.js of the npm package
// mathjax@3.2.2 (Apache-2.0, licence in javascripts/mathjax/LICENSE). The "full" TeX
// component bundles every TeX extension, so nothing is loaded on demand, and the SVG
// output needs no font files. To update it:
//   npm pack mathjax@3 && tar xzf mathjax-3.*.tgz package/es5/tex-svg-full.js
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
