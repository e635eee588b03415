// Draws the auditor's charts with the vendored ECharts from the figures the page carries in
// <script type="application/json" id="chart-data"> (no inline script: the CSP forbids it).
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var font = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif';
  var outcomes = [["allowed", "允许", "#2e7d32"], ["denied", "拒绝", "#c8102e"], ["error", "错误", "#ef6c00"]];

  function base() {
    return { textStyle: { fontFamily: font }, animation: false, color: ["#0b4a8b", "#c8102e", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f"] };
  }

  function perDay() {
    var option = base();
    option.tooltip = { trigger: "axis" };
    option.legend = { top: 0 };
    option.grid = { left: 50, right: 20, top: 30, bottom: 30 };
    option.xAxis = { type: "category", data: data.days };
    option.yAxis = { type: "value", minInterval: 1 };
    option.series = outcomes.map(function (o) {
      return { name: o[1], type: "bar", stack: "requests", color: o[2], data: data.per_day[o[0]] || [] };
    });
    return option;
  }

  function ranking(items) {
    var option = base();
    option.tooltip = { trigger: "axis" };
    option.grid = { left: 150, right: 30, top: 10, bottom: 30 };
    option.xAxis = { type: "value", minInterval: 1 };
    option.yAxis = {
      type: "category", inverse: true, data: items.map(function (d) { return d.name; }),
      axisLabel: { width: 140, overflow: "truncate" }
    };
    option.series = [{ type: "bar", barMaxWidth: 24, data: items.map(function (d) { return d.value; }) }];
    return option;
  }

  function pie(items) {
    var option = base();
    option.tooltip = { trigger: "item" };
    option.legend = { bottom: 0 };
    option.series = [{ type: "pie", radius: ["35%", "62%"], data: items, label: { formatter: "{b}：{c}" } }];
    return option;
  }

  var charts = [];
  document.querySelectorAll("[data-chart]").forEach(function (node) {
    var key = node.getAttribute("data-chart");
    var items = data[key];
    var option = key === "per_day" ? perDay() : key === "denials" ? pie(items) : ranking(items);
    if (key !== "per_day" && (!items || items.length === 0)) {
      node.textContent = "该时间范围内没有数据";
      node.className += " empty";
      return;
    }
    var chart = echarts.init(node, null, { renderer: "svg" });
    chart.setOption(option);
    node.setAttribute("data-rendered", "1");
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
}());
