/* Draws every admin chart: each <canvas data-chart="ID"> gets the spec in the
 * <script type="application/json" id="ID"> beside it (from json_script; built by
 * recommendations/charts.py or campaigns/charts.py) and becomes a Chart.js chart.
 * No inline scripts, no network: Chart.js is vendored under static/vendor/chartjs/.
 *
 * Spec: type, title, labels?, datasets (Chart.js options plus `tooltips`: one text
 * per point, and `valueLabels`: one text drawn at the end of each bar), x / y axes
 * ({title, format, type, min, max, grace}), indexAxis?, height (px), note?. */
(function () {
  "use strict";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // Times come as wall-clock milliseconds in the site's zone: read them with UTC getters.
  function formatDate(ms, withTime) {
    const d = new Date(ms);
    const day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return withTime ? day + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) : day;
  }

  const formats = {
    number: function (v) { return Number(v).toLocaleString("en-GB", { maximumFractionDigits: 3 }); },
    count: function (v) { return Number(v).toLocaleString("en-GB", { maximumFractionDigits: 0 }); },
    percent: function (v) { return (100 * v).toLocaleString("en-GB", { maximumFractionDigits: 1 }) + "%"; },
    date: function (v) { return formatDate(v, false); },
    datetime: function (v) { return formatDate(v, true); },
  };

  function formatter(name) { return formats[name] || null; }

  function scale(axis) {
    axis = axis || {};
    const out = { title: { display: Boolean(axis.title), text: axis.title || "", font: { weight: "bold" } }, ticks: {} };
    ["type", "min", "max", "grace"].forEach(function (key) {
      if (axis[key] !== undefined && axis[key] !== null) out[key] = axis[key];
    });
    const fmt = formatter(axis.format);
    if (fmt) out.ticks.callback = function (value) { return fmt(value); };
    if (axis.format === "date" || axis.format === "datetime") {
      out.ticks.maxRotation = 0;
      out.ticks.autoSkipPadding = 16;
      // room before the first and after the last point: none sits on the chart's edge
      if (out.grace === undefined) out.grace = "5%";
    }
    return out;
  }

  // Text per bar (e.g. "12 (12.0%)", or "n/a" where there is no bar) at the bar's end.
  const valueLabels = {
    id: "affinityValueLabels",
    afterDatasetsDraw: function (chart) {
      const ctx = chart.ctx;
      const horizontal = chart.options.indexAxis === "y";
      chart.data.datasets.forEach(function (dataset, i) {
        if (!dataset.valueLabels || !chart.isDatasetVisible(i)) return;
        const meta = chart.getDatasetMeta(i);
        const valueScale = horizontal ? chart.scales[meta.xAxisID] : chart.scales[meta.yAxisID];
        ctx.save();
        ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
        ctx.fillStyle = "#333";
        ctx.textBaseline = "middle";
        meta.data.forEach(function (bar, j) {
          const text = dataset.valueLabels[j];
          if (!text) return;
          const missing = dataset.data[j] === null || dataset.data[j] === undefined;
          const end = missing ? valueScale.getPixelForValue(0) : horizontal ? bar.x : bar.y;
          if (horizontal) {
            ctx.textAlign = "left";
            ctx.fillText(text, end + 5, bar.y);
          } else {
            ctx.textAlign = "center";
            ctx.fillText(text, bar.x, end - 8);
          }
        });
        ctx.restore();
      });
    },
  };

  function tipText(item) {
    const tips = item.dataset.tooltips;
    if (tips && tips[item.dataIndex]) return tips[item.dataIndex];
    return item.dataset.label + ": " + item.formattedValue;
  }

  function config(spec) {
    const horizontal = spec.indexAxis === "y";
    const x = scale(spec.x);
    const y = scale(spec.y);
    if (spec.type === "line" && y.grace === undefined) y.grace = "8%"; // the top point clear of the edge
    const timeFormat = spec.x && (spec.x.format === "date" || spec.x.format === "datetime");
    return {
      type: spec.type,
      data: { labels: spec.labels, datasets: spec.datasets },
      options: {
        indexAxis: spec.indexAxis || "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        layout: { padding: { right: 12 } }, // room for the last point's ring
        // a line over time: the point under the pointer; bars: every bar of the row / column
        interaction: timeFormat ? { mode: "nearest", intersect: true } : { mode: "index", axis: horizontal ? "y" : "x", intersect: false },
        scales: { x: x, y: y },
        plugins: {
          title: { display: Boolean(spec.title), text: spec.title, align: "start", font: { size: 13, weight: "bold" } },
          legend: { display: spec.datasets.length > 1 || spec.type === "line", position: "top", align: "start", labels: { usePointStyle: spec.type === "line", boxWidth: spec.type === "line" ? 8 : 12, boxHeight: spec.type === "line" ? 8 : 12 } },
          tooltip: {
            filter: function (item, index, items) { // one line per text (a bar and its point may share one)
              return items.findIndex(function (other) { return tipText(other) === tipText(item); }) === index;
            },
            callbacks: {
              title: function (items) {
                if (!items.length) return "";
                return timeFormat ? formatDate(items[0].parsed.x, true) : items[0].label;
              },
              label: tipText,
            },
          },
        },
      },
      plugins: [valueLabels],
    };
  }

  function draw(canvas) {
    if (window.Chart.getChart(canvas)) return;
    const source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    const spec = JSON.parse(source.textContent);
    if (!spec || !spec.datasets) return;
    if (spec.height && canvas.parentElement) canvas.parentElement.style.height = spec.height + "px";
    new window.Chart(canvas, config(spec));
  }

  function drawAll() {
    if (!window.Chart) return;
    window.Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    window.Chart.defaults.color = "#333";
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
