// Draws the per-app usage charts of /admin/usage with the vendored ECharts from the figures
// the page carries in <script type="application/json" id="usage-data"> (no inline script).
(function () {
  "use strict";
  var source = document.getElementById("usage-data");
  if (!source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var font = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif';
  var palette = ["#0b4a8b", "#c8102e", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#455a64"];
  document.querySelectorAll(".chart[data-series]").forEach(function (node) {
    var key = node.getAttribute("data-series");
    var chart = echarts.init(node, null, { renderer: "canvas" });
    chart.setOption({
      color: palette,
      textStyle: { fontFamily: font },
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { bottom: 0, type: "scroll" },
      grid: { left: 50, right: 20, top: 20, bottom: 50 },
      xAxis: { type: "category", data: data.days },
      yAxis: { type: "value", minInterval: 1 },
      series: data.apps.map(function (app) {
        return { name: app.name, type: "bar", stack: key, data: app[key] };
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
