/* Live status of a campaign in admin: polls its JSON status every few seconds while it runs. */
(function () {
  "use strict";
  function init() {
    var box = document.getElementById("campaign-status");
    if (!box) { return; }
    var bar = box.querySelector("progress");
    function update(data) {
      box.querySelectorAll("[data-field]").forEach(function (el) {
        var v = data[el.dataset.field];
        if (v !== undefined && v !== null) { el.textContent = typeof v === "number" ? v.toLocaleString() : v; }
      });
      if (bar) { bar.max = data.audience || 1; bar.value = data.done; }
      return data.status === "running" || data.status === "scheduled";
    }
    function poll() {
      fetch(box.dataset.url, {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (d) { if (update(d)) { setTimeout(poll, 3000); } })
        .catch(function () { setTimeout(poll, 10000); });
    }
    setTimeout(poll, 1500);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
