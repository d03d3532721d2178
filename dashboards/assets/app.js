// Orbas web UI: progressive enhancement only — every page works without JavaScript.
// Draws charts with the vendored Apache ECharts: a score's factors on record pages, and the widgets of
// a dashboard from the JSON the server put in <script id="board-data"> (the data table beside each
// chart is its accessible version). Clicking a bar, point or slice opens the records behind it. The
// dashboard editor posts its form to /ui/widgets/preview and draws the answer with the same renderer.
"use strict";
(function () {
  var GOOD = "#1d6b34", BAD = "#a4161a";
  var PALETTE = ["#0b5cad", "#c2410c", "#1d6b34", "#7e22ce", "#a4161a", "#0f766e", "#854d0e", "#be185d"];

  function label(v) { return v === null || v === undefined ? "(none)" : String(v); }

  // Distinct values of column `c`, in order of first appearance.
  function distinct(rows, c) {
    var seen = [], out = [];
    rows.forEach(function (r) { var k = label(r[c]); if (seen.indexOf(k) < 0) { seen.push(k); out.push(k); } });
    return out;
  }

  // An ECharts option for one widget's data: {kind, columns, rows}. Every data item carries `row`, the
  // index of its result row (for drill-down).
  function option(item) {
    var cols = item.columns || [], rows = item.rows || [], kind = item.kind;
    var v = cols.length - 1, keys = v;
    var base = { animation: false, color: PALETTE, tooltip: { trigger: "item" },
                 grid: { left: 8, right: 16, top: 24, bottom: 8, containLabel: true } };
    if (kind === "pie" || kind === "funnel") {
      base.series = [{ type: kind, top: 8, bottom: 8, radius: kind === "pie" ? "65%" : undefined,
        data: rows.map(function (r, i) {
          var name = r.slice(0, keys).map(label).join(" · ") || "total";
          return { name: name, value: r[v], row: i };
        }) }];
      base.legend = kind === "pie" ? { show: false } : undefined;
      return base;
    }
    if (kind === "heatmap" && keys >= 2) {
      var xs = distinct(rows, 0), ys = distinct(rows, 1);
      var vals = rows.map(function (r) { return Number(r[v]) || 0; });
      base.xAxis = { type: "category", data: xs };
      base.yAxis = { type: "category", data: ys };
      base.grid.bottom = 48;
      base.visualMap = { min: Math.min.apply(null, vals), max: Math.max.apply(null, vals), calculable: false,
                         orient: "horizontal", left: "center", bottom: 0, inRange: { color: ["#e8f0fa", "#0b5cad"] } };
      base.series = [{ type: "heatmap", data: rows.map(function (r, i) {
        return { value: [xs.indexOf(label(r[0])), ys.indexOf(label(r[1])), r[v]], row: i };
      }) }];
      return base;
    }
    // line, bar, stacked bar: x is the first key, series by the second key when there is one.
    var type = kind === "line" ? "line" : "bar";
    var x = keys >= 1 ? distinct(rows, 0) : ["total"];
    var names = keys >= 2 ? distinct(rows, 1) : [cols[v] || "value"];
    base.xAxis = { type: "category", data: x };
    base.yAxis = { type: "value" };
    base.tooltip = { trigger: "item" };
    if (names.length > 1) { base.legend = { type: "scroll", top: 0 }; base.grid.top = 32; }
    base.series = names.map(function (name) {
      var data = x.map(function () { return null; });
      rows.forEach(function (r, i) {
        if (keys >= 2 && label(r[1]) !== name) return;
        var at = keys >= 1 ? x.indexOf(label(r[0])) : 0;
        data[at] = { value: r[v], row: i };
      });
      var s = { type: type, name: name, data: data };
      if (kind === "stacked_bar") s.stack = "all";
      if (type === "line") s.symbolSize = 8;
      return s;
    });
    return base;
  }

  // A printed dashboard (<html data-print="pdf|mail">, rendered server-side by headless Chromium):
  // PDFs get vector (SVG) charts, mails PNG images of canvas charts; no interaction.
  var PRINT = document.documentElement.getAttribute("data-print");
  var drawn = [];

  function draw(el, item) {
    var chart = window.echarts.init(el, null, { renderer: PRINT === "pdf" ? "svg" : "canvas" });
    chart.setOption(option(item));
    drawn.push({ widget: String(item.id), chart: chart });
    chart.on("click", function (p) {
      var row = p.data && p.data.row;
      var links = item.drill || [];
      if (row !== undefined && links[row]) window.location.href = links[row];
    });
    el.setAttribute("data-rendered", "true");
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }

  function factors() {
    document.querySelectorAll(".chart[data-factors]").forEach(function (el) {
      var rows;
      try { rows = JSON.parse(el.getAttribute("data-factors")); } catch (e) { return; }
      if (!Array.isArray(rows) || rows.length === 0) return;
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption({
        animation: false,
        grid: { left: 8, right: 24, top: 8, bottom: 8, containLabel: true },
        xAxis: { type: "value" },
        yAxis: { type: "category", data: rows.map(function (r) { return r[0]; }), inverse: true },
        series: [{ type: "bar", data: rows.map(function (r) {
          return { value: r[1], itemStyle: { color: r[1] >= 0 ? GOOD : BAD } };
        }) }]
      });
      el.setAttribute("data-rendered", "true");
    });
  }

  function board() {
    var script = document.getElementById("board-data");
    if (!script) return;
    var items;
    try { items = JSON.parse(script.textContent); } catch (e) { return; }
    if (!Array.isArray(items)) return;
    items.forEach(function (item) {
      var el = document.querySelector('.chart[data-widget="' + item.id + '"]');
      if (el) draw(el, item);
    });
  }

  function text(tag, s, cls) {
    var e = document.createElement(tag);
    e.textContent = s;
    if (cls) e.className = cls;
    return e;
  }

  // The editor's live preview.
  function editor() {
    var form = document.getElementById("widget-form");
    if (!form) return;
    var button = document.getElementById("preview-button");
    var section = document.getElementById("preview"), body = document.getElementById("preview-body");
    var chart = null, pending = 0;
    function show(answer) {
      if (chart) { chart.dispose(); chart = null; }
      body.textContent = "";
      section.hidden = false;
      if (answer.error) { body.appendChild(text("p", answer.error, "error preview-error")); return; }
      if (answer.tile) {
        body.appendChild(text("p", answer.tile.value, "tile-value"));
        if (answer.tile.delta) body.appendChild(text("p", answer.tile.delta, "delta " + answer.tile.tone));
      }
      if (answer.chart && window.echarts) {
        var el = document.createElement("div");
        el.className = "chart preview-chart";
        el.setAttribute("role", "img");
        el.setAttribute("aria-label", "Preview of " + answer.title);
        body.appendChild(el);
        chart = draw(el, answer.chart);
      }
      if (answer.table) {
        var t = document.createElement("table");
        t.className = "data preview-table";
        t.appendChild(text("caption", "Preview data: " + answer.table.rows.length + " rows"));
        var head = t.createTHead().insertRow();
        answer.table.columns.forEach(function (c) { var th = text("th", c); th.scope = "col"; head.appendChild(th); });
        var tb = t.createTBody();
        answer.table.rows.slice(0, 50).forEach(function (r) {
          var tr = tb.insertRow();
          r.forEach(function (c) { tr.insertCell().textContent = c; });
        });
        body.appendChild(t);
      }
      if (answer.note) body.appendChild(text("p", answer.note, "meta"));
    }
    function preview() {
      var mine = ++pending;
      body.setAttribute("aria-busy", "true");
      fetch(form.getAttribute("data-preview"), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(new FormData(form)).toString()
      }).then(function (r) { return r.json(); })
        .then(function (answer) { if (mine === pending) show(answer); })
        .catch(function () { if (mine === pending) show({ error: "The preview could not be loaded." }); })
        .finally(function () { body.removeAttribute("aria-busy"); });
    }
    button.hidden = false;
    button.addEventListener("click", preview);
    form.addEventListener("change", preview);
  }

  // The SQL page: Ctrl+Enter (Cmd+Enter) in the query runs it.
  function sqlForm() {
    var area = document.getElementById("sql");
    if (!area || !area.form) return;
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        if (area.form.requestSubmit) area.form.requestSubmit(); else area.form.submit();
      }
    });
  }

  // The charts of the page as PNG data URLs (for the mail renderer), in page order.
  window.orbasChartImages = function () {
    return drawn.map(function (d) {
      return { widget: d.widget, url: d.chart.getDataURL({ type: "png", pixelRatio: 2, backgroundColor: "#fff" }) };
    });
  };

  // A script error anywhere ends the wait of whoever waits for the charts, with the reason.
  window.addEventListener("error", function (e) {
    var root = document.documentElement;
    if (root.getAttribute("data-charts-ready") !== "1") {
      root.setAttribute("data-charts-ready", "failed: " + (e.message || "a script error"));
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.documentElement;
    if (typeof window.echarts !== "undefined") {
      root.classList.add("charts-on");
      try {
        factors();
        board();
      } catch (e) {
        root.setAttribute("data-charts-ready", "failed: " + e);
        throw e;
      }
    }
    editor();
    sqlForm();
    // Every chart is painted now (a synchronous flush; charts have no animation), not on some later
    // animation frame — a background or zero-sized tab may never get one. Renderers, benchmarks and
    // tests wait for this mark.
    drawn.forEach(function (d) { d.chart.getZr().flush(); });
    window.orbasReadyAt = performance.now();
    root.setAttribute("data-charts-ready", "1");
  });
})();
