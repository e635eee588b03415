// Draws the cockpit's charts with the vendored ECharts from the figures the page carries in
// <script type="application/json" id="cockpit-data"> (no inline script: the CSP forbids it).
(function () {
  "use strict";
  var source = document.getElementById("cockpit-data");
  if (!source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var palette = ["#0b4a8b", "#c8102e", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#455a64"];
  var font = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif';

  function option(kind, items) {
    var names = items.map(function (d) { return d.name; });
    var values = items.map(function (d) { return d.value; });
    var base = { color: palette, textStyle: { fontFamily: font }, tooltip: {}, animation: false };
    if (kind === "pie") {
      base.tooltip = { trigger: "item" };
      base.legend = { bottom: 0 };
      base.series = [{ type: "pie", radius: ["35%", "65%"], data: items, label: { formatter: "{b}：{c}" } }];
      return base;
    }
    var horizontal = kind === "hbar";
    var category = { type: "category", data: names, axisLabel: { interval: 0, width: 120, overflow: "truncate" } };
    var amount = { type: "value", minInterval: 1 };
    base.tooltip = { trigger: "axis" };
    base.grid = { left: horizontal ? 130 : 40, right: 20, top: 20, bottom: 30 };
    if (horizontal) { category.inverse = true; }
    base.xAxis = horizontal ? amount : category;
    base.yAxis = horizontal ? category : amount;
    base.series = [{
      type: kind === "line" ? "line" : "bar",
      data: values,
      smooth: kind === "line",
      areaStyle: kind === "line" ? { opacity: 0.15 } : undefined,
      barMaxWidth: 28
    }];
    return base;
  }

  var charts = [];
  document.querySelectorAll("[data-chart]").forEach(function (node) {
    var items = data[node.getAttribute("data-chart")] || [];
    var chart = echarts.init(node, null, { renderer: "canvas" });
    chart.setOption(option(node.getAttribute("data-kind"), items));
    node.setAttribute("data-rendered", "true");
    charts.push(chart);
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
}());
