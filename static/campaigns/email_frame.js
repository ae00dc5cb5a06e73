/* Emails shown in admin (outbox, preview) are as tall as their content: each
 * iframe.email-frame (sandboxed: no scripts; same origin so its height can be read)
 * is resized to its document once loaded, and again when its images arrive. */
(function () {
  "use strict";
  function fit(frame) {
    try {
      var doc = frame.contentDocument;
      if (!doc || !doc.documentElement) { return; }
      frame.style.height = Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0) + 4 + "px";
    } catch (e) { /* not readable: keep the CSS height */ }
  }
  function watch(frame) {
    frame.addEventListener("load", function () {
      fit(frame);
      var doc = frame.contentDocument;
      if (!doc) { return; }
      Array.prototype.forEach.call(doc.images, function (img) { img.addEventListener("load", function () { fit(frame); }); });
      setTimeout(function () { fit(frame); }, 500);
    });
    fit(frame);
  }
  function init() { Array.prototype.forEach.call(document.querySelectorAll("iframe.email-frame"), watch); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
