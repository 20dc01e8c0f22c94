// Make the Jupyter widgets of this page (nglview) render from the copies in _static/vendor/, with no CDN.
//
// 1. The widget manager (vendor/embed-amd.js) loads each widget's JavaScript from the last
//    data-jupyter-widgets-cdn attribute among the page's <script> tags (cdn.jsdelivr.net by default). This script,
//    loaded just before it (nb_ipywidgets_js in _config.yml), sets that attribute on its own tag to the absolute URL
//    of _static/vendor/npm/, so it works whatever the folder depth of the page.
// 2. nglview's bundle finds its own URL by webpack's "automatic publicPath": with no document.currentScript it takes
//    the src of the last http(s) <script> tag, else of the first <script> of the page. On a page opened from disk
//    (file://) no src is http(s) and the first script is an inline one, so the bundle throws "Automatic publicPath is
//    not supported in this browser" and the viewer stays blank. A non-executing <script> tag whose src is the
//    bundle's own URL, put first in <head>, gives it the right answer there (over http(s) it is never consulted).
// 3. The widget manager's icon fonts are copied into vendor/. Its two bundles find them by
//    window.__jupyter_widgets_assets_path__ and by the URL require.js gives their modules
//    "@jupyter-widgets/html-manager" and ".../dist/libembed-amd" (by default relative to the page, where the fonts
//    are not): point all of them at vendor/.
(function () {
  var me = document.currentScript;
  if (!me || !me.src) {
    return;
  }
  var npm = new URL("vendor/npm/", me.src).href;
  window.__jupyter_widgets_assets_path__ = new URL("vendor/", me.src).href;
  if (window.require && window.require.config) {
    window.require.config({paths: {
      "@jupyter-widgets/html-manager": new URL("vendor/html-manager", me.src).href,
      "@jupyter-widgets/html-manager/dist/libembed-amd": new URL("vendor/libembed-amd", me.src).href,
    }});
  }
  me.setAttribute("data-jupyter-widgets-cdn", npm);
  var marker = document.createElement("script");
  marker.type = "text/x-public-path"; // never fetched nor run
  marker.src = npm + "index.js";
  document.head.insertBefore(marker, document.head.firstChild);
  // Once the page is parsed, point the marker at nglview's own folder (its images are loaded relative to it).
  document.addEventListener("DOMContentLoaded", function () {
    var state = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
    if (!state) {
      return;
    }
    try {
      var models = JSON.parse(state.textContent).state || {};
      for (var id in models) {
        if (models[id].model_module === "nglview-js-widgets") {
          marker.src = npm + "nglview-js-widgets@" + models[id].model_module_version + "/dist/index.js";
          return;
        }
      }
    } catch (err) {
      console.warn("local-widgets-cdn: unreadable widget state", err);
    }
  });
})();
