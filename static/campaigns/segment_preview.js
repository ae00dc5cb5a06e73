/* Live count and sample of a segment while its rules are edited (admin). No libraries. */
(function () {
  "use strict";
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }
  function render(box, data, ok) {
    box.textContent = "";
    if (!ok) {
      var ul = document.createElement("ul"); ul.className = "errorlist";
      (data.errors || ["could not check the rules"]).forEach(function (m) {
        var li = document.createElement("li"); li.textContent = m; ul.appendChild(li);
      });
      box.appendChild(ul);
      return;
    }
    var p = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = data.count.toLocaleString() + " customer" + (data.count === 1 ? "" : "s");
    p.className = "segment-count";
    p.appendChild(strong); p.appendChild(document.createTextNode(" match these rules now."));
    box.appendChild(p);
    if (!data.sample.length) { return; }
    var table = document.createElement("table");
    var head = document.createElement("tr");
    ["id", "email", "name", "country", "consent"].forEach(function (h) {
      var th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    });
    table.appendChild(head);
    data.sample.forEach(function (u) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(u.pk)); tr.appendChild(cell(u.email));
      tr.appendChild(cell((u.first_name + " " + u.last_name).trim()));
      tr.appendChild(cell(u.country)); tr.appendChild(cell(u.marketing_consent ? "yes" : "no"));
      table.appendChild(tr);
    });
    box.appendChild(table);
  }
  function init() {
    var box = document.getElementById("segment-preview");
    var area = document.querySelector("textarea[data-segment-rules]");
    if (!box || !area) { return; }
    var timer = null, seq = 0;
    function tell(errors) {  // the segment builder marks the conditions the errors name
      document.dispatchEvent(new CustomEvent("segment-preview", {detail: {errors: errors || []}}));
    }
    function check() {
      var mine = ++seq, rules;
      if (!area.value.trim()) {
        box.textContent = "";
        var hint = document.createElement("p"); hint.className = "help";
        hint.textContent = "Add a condition to see how many customers match, and the first of them.";
        box.appendChild(hint); tell([]); return;
      }
      try { rules = JSON.parse(area.value); } catch (e) {
        render(box, {errors: ["not valid JSON yet: " + e.message]}, false); tell([]); return;
      }
      box.setAttribute("aria-busy", "true");
      fetch(box.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
        body: JSON.stringify({rules: rules, segment_id: box.dataset.segmentId || null})
      }).then(function (r) { return r.json().then(function (d) { return [r.ok, d]; }); })
        .then(function (res) {
          if (mine === seq) { render(box, res[1], res[0] && !res[1].errors); tell(res[1].errors); }
        })
        .catch(function (e) { render(box, {errors: [String(e)]}, false); })
        .finally(function () { box.removeAttribute("aria-busy"); });
    }
    area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 600); });
    check();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
