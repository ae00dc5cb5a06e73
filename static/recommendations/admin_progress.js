/* Live progress of model training in admin: polls the JSON endpoint every 2 s while
   a version is queued or running, updates the bars, reloads once when one finishes. */
(function () {
  "use strict";
  function poll(url, ids, onData) {
    var query = ids.length ? "?ids=" + ids.join(",") : "";
    fetch(url + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { versions: [] }; })
      .then(onData)
      .catch(function () { /* keep polling: a blip must not stop the display */ });
  }
  function render(el, v) {
    var bar = el.querySelector("progress");
    var text = el.querySelector(".rec-stage");
    if (bar) { bar.value = v.progress; }
    if (text) { text.textContent = v.progress + "% " + (v.stage || v.status); }
  }
  function start() {
    var panel = document.getElementById("rec-running");
    var detail = document.getElementById("rec-detail-progress");
    var root = panel || detail;
    if (!root) { return; }
    var url = root.getAttribute("data-progress-url");
    var seen = {};
    var timer = null;
    function tick() {
      var ids = [];
      if (detail) { ids.push(detail.getAttribute("data-version")); }
      document.querySelectorAll("[data-version-progress]").forEach(function (el) {
        ids.push(el.getAttribute("data-version-progress"));
      });
      poll(url, panel ? [] : ids, function (data) {
        var finished = false;
        var running = data.versions.filter(function (v) { return v.status === "queued" || v.status === "running"; });
        if (panel) {
          panel.innerHTML = "";
          running.forEach(function (v) {
            var row = document.createElement("div");
            row.className = "rec-job";
            row.innerHTML = "<strong></strong> <progress max='100'></progress> <span class='rec-stage'></span>";
            row.querySelector("strong").textContent = v.label;
            render(row, v);
            panel.appendChild(row);
            seen[v.id] = true;
          });
          Object.keys(seen).forEach(function (id) {
            if (!running.some(function (v) { return String(v.id) === id; })) { finished = true; }
          });
        }
        data.versions.forEach(function (v) {
          document.querySelectorAll("[data-version-progress='" + v.id + "']").forEach(function (el) { render(el, v); });
          if (detail && String(v.id) === detail.getAttribute("data-version")) {
            render(detail, v);
            if (v.status === "succeeded" || v.status === "failed") { finished = true; }
          }
        });
        if (finished) { clearInterval(timer); window.location.reload(); }
      });
    }
    tick();
    timer = setInterval(tick, 2000);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
