/* The live trends board (admin/trends/, templates/admin/trends/board.html).
 * Polls data.json every data-poll-seconds and redraws the rising products and
 * categories and the chart without reloading the page; loads the new products with
 * their predicted audiences (new-products.json, every 5 minutes and when the audience
 * size changes) and one product's audience on demand (audience.json). Every text from
 * the server goes in with textContent: no HTML is built from data. No inline script
 * (the CSP forbids it); Chart.js is vendored. */
(function () {
  "use strict";

  const root = document.getElementById("trends-board");
  if (!root) return;
  const pollSeconds = Math.max(1, parseInt(root.dataset.pollSeconds, 10) || 15);
  const canSeeCustomers = root.dataset.canSeeCustomers === "1";
  const canDraft = root.dataset.canDraft === "1";
  const $ = function (id) { return document.getElementById(id); };
  let chart = null;
  let polls = 0;
  // the new products' audiences read every customer's history: every 5 minutes (or on demand)
  const newEvery = Math.max(1, Math.round(300 / pollSeconds));

  function fmt(value, digits) {
    return Number(value).toLocaleString("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function emptyRow(tbody, columns, text) {
    const tr = document.createElement("tr");
    const td = cell(tr, text, "empty");
    td.colSpan = columns;
    tbody.appendChild(tr);
  }

  function audienceSize() {
    const input = $("audience-size");
    const n = input ? parseInt(input.value, 10) : 200;
    return n > 0 ? n : 200;
  }

  function draftForm(productId) {
    const template = $("draft-form-template");
    if (!canDraft || !template) return null;
    const form = template.content.firstElementChild.cloneNode(true);
    form.elements.product.value = productId;
    form.addEventListener("submit", function () {
      form.elements.size.value = audienceSize();
      const choice = $("draft-template");
      form.elements.template.value = choice ? choice.value : "";
    });
    return form;
  }

  // --- rising products and categories ---------------------------------------------------
  function renderRising(tableId, rows, withAudience) {
    const tbody = $(tableId).querySelector("tbody");
    tbody.replaceChildren();
    if (!rows.length) {
      emptyRow(tbody, withAudience ? 8 : 6, "Nothing is rising significantly in this window.");
      return;
    }
    rows.forEach(function (r, i) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      cell(tr, String(i + 1));
      cell(tr, r.name).title = r.sku ? "SKU " + r.sku : "";
      if (tableId === "rising-products") cell(tr, r.category || "–");
      cell(tr, fmt(r.recent, 0), "num");
      cell(tr, fmt(r.expected, 1), "num");
      cell(tr, "×" + fmt(r.velocity, 2), "num");
      cell(tr, fmt(r.z, 1), "num").title = "p = " + r.p_value.toExponential(2);
      if (withAudience) {
        const td = cell(tr, "");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "button audience-button";
        button.textContent = "Likely buyers";
        button.addEventListener("click", function () { showAudience(r.id, r.name); });
        td.appendChild(button);
      }
      tbody.appendChild(tr);
    });
  }

  function renderChart(series) {
    const canvas = $("trend-chart");
    if (!canvas || typeof window.Chart === "undefined") return;
    const labels = (series.edges || []).map(function (e) { return e.slice(5, 16).replace("T", " "); });
    const datasets = (series.lines || []).map(function (line) {
      return { label: line.name, data: line.counts, tension: 0.25, pointRadius: 2 };
    });
    if (!chart) {
      chart = new window.Chart(canvas, {
        type: "line",
        data: { labels: labels, datasets: datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          plugins: { title: { display: true, text: "Events of the top rising products (the last four windows)" } },
          scales: { y: { beginAtZero: true, title: { display: true, text: "events per bucket" } } },
        },
      });
    } else {
      chart.data.labels = labels;
      chart.data.datasets = datasets;
      chart.update();
    }
  }

  function query() {
    return new URLSearchParams({
      window: $("trend-window").value,
      baseline: $("trend-baseline").value,
      signal: $("trend-signal").value,
    });
  }

  function setStatus(id, text, isError) {
    const el = $(id);
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) throw new Error(body.error || "HTTP " + resp.status);
        return body;
      });
    });
  }

  function refresh() {
    return fetchJson(root.dataset.dataUrl + "?" + query().toString())
      .then(function (data) {
        renderRising("rising-products", data.products, canSeeCustomers);
        renderRising("rising-categories", data.categories, false);
        renderChart(data.series || {});
        $("trend-windows").textContent = data.newest
          ? "Recent window " + data.recent_start.slice(0, 16).replace("T", " ") + " → " +
            data.newest.slice(0, 16).replace("T", " ") + " (" + fmt(data.recent_total, 0) + " events); baseline from " +
            data.baseline_start.slice(0, 10) + " (" + fmt(data.baseline_total, 0) + " events)."
          : "No events yet.";
        root.dataset.refreshes = String((parseInt(root.dataset.refreshes, 10) || 0) + 1);
        setStatus("trend-status", "Live · updated " + new Date().toLocaleTimeString("en-GB") +
          " · every " + pollSeconds + " s", false);
      })
      .catch(function (err) { setStatus("trend-status", "Could not refresh: " + err.message, true); });
  }

  // --- new products and predicted audiences ------------------------------------------
  function methodText(a) {
    if (a.method === "model") return "model " + a.model;
    if (a.method === "content") return "content similarity";
    return "no signal yet";
  }

  function renderNew(data) {
    const tbody = $("new-products").querySelector("tbody");
    tbody.replaceChildren();
    if (!data.products.length) {
      emptyRow(tbody, 8, "No new products without history.");
      return;
    }
    data.products.forEach(function (p) {
      const tr = document.createElement("tr");
      tr.dataset.id = p.id;
      const name = cell(tr, "");
      name.appendChild(link(p.url, p.name));
      cell(tr, p.category || "–");
      cell(tr, p.created_at.slice(0, 10), "nowrap");
      cell(tr, String(p.events), "num");
      cell(tr, methodText(p.audience));
      cell(tr, fmt(p.audience.count, 0) + " (" + fmt(p.audience.consenting, 0) + " consenting)", "num");
      const who = cell(tr, "");
      if (p.audience.preview.length) {
        const list = document.createElement("ol");
        list.className = "audience-list";
        p.audience.preview.forEach(function (u) {
          const li = document.createElement("li");
          li.appendChild(link(u.url, u.name || u.email));
          li.appendChild(document.createTextNode(" · " + fmt(u.score, 3)));
          list.appendChild(li);
        });
        who.appendChild(list);
      } else {
        who.textContent = "nobody yet";
        who.className = "empty";
      }
      const actions = cell(tr, "");
      const more = document.createElement("button");
      more.type = "button";
      more.className = "button audience-button";
      more.textContent = "Preview";
      more.addEventListener("click", function () { showAudience(p.id, p.name); });
      actions.appendChild(more);
      const form = draftForm(p.id);
      if (form && p.audience.count) actions.appendChild(form);
      tbody.appendChild(tr);
    });
  }

  function refreshNew() {
    if (!canSeeCustomers || !$("new-products")) return Promise.resolve();
    setStatus("new-status", "Scoring…", false);
    const params = new URLSearchParams({ size: audienceSize() });
    return fetchJson(root.dataset.newUrl + "?" + params.toString())
      .then(function (data) {
        renderNew(data);
        setStatus("new-status", "Audiences of the top " + data.size + " · updated " +
          new Date().toLocaleTimeString("en-GB"), false);
      })
      .catch(function (err) { setStatus("new-status", "Could not score: " + err.message, true); });
  }

  function showAudience(productId, name) {
    const panel = $("audience-panel");
    if (!panel) return;
    panel.hidden = false;
    $("audience-title").textContent = "Predicted audience: " + name;
    $("audience-summary").textContent = "Scoring…";
    const params = new URLSearchParams({ product: productId, size: audienceSize() });
    fetchJson(root.dataset.audienceUrl + "?" + params.toString())
      .then(function (a) {
        $("audience-summary").textContent = "The top " + a.size + " reach " + fmt(a.count, 0) + " customers (" +
          fmt(a.consenting, 0) + " with marketing consent; consent, suppressions and the frequency cap are checked " +
          "again when the campaign is built), scored by " + methodText(a) + ". The first " + a.preview.length + ":";
        const tbody = $("audience-preview").querySelector("tbody");
        tbody.replaceChildren();
        if (!a.preview.length) emptyRow(tbody, 5, "Nobody has a positive score for this product yet.");
        a.preview.forEach(function (u, i) {
          const tr = document.createElement("tr");
          cell(tr, String(i + 1));
          const who = cell(tr, "");
          who.appendChild(link(u.url, u.name ? u.name + " <" + u.email + ">" : u.email));
          cell(tr, u.country || "–");
          cell(tr, u.consent ? "yes" : "no");
          cell(tr, fmt(u.score, 4), "num");
          tbody.appendChild(tr);
        });
        const draft = $("audience-draft");
        draft.replaceChildren();
        const form = draftForm(productId);
        if (form && a.count) draft.appendChild(form);
        panel.scrollIntoView({ behavior: "smooth", block: "start" });
      })
      .catch(function (err) { $("audience-summary").textContent = "Could not score: " + err.message; });
  }

  // --- polling --------------------------------------------------------------------------
  function tick() {
    polls += 1;
    const work = [refresh()];
    if (polls % newEvery === 0) work.push(refreshNew());
    Promise.all(work).finally(function () { window.setTimeout(tick, pollSeconds * 1000); });
  }

  ["trend-window", "trend-baseline", "trend-signal"].forEach(function (id) {
    $(id).addEventListener("change", function () { refresh(); });
  });
  const sizeInput = $("audience-size");
  if (sizeInput) sizeInput.addEventListener("change", function () { refreshNew(); });

  Promise.all([refresh(), refreshNew()]).finally(function () { window.setTimeout(tick, pollSeconds * 1000); });
})();
