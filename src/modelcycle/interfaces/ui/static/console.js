// modelcycle console: draws Plotly charts from the JSON in data-plot attributes (no inline scripts).
(function () {
  function draw() {
    document.querySelectorAll("[data-plot]").forEach(function (el) {
      var spec = JSON.parse(el.getAttribute("data-plot"));
      if (window.Plotly && !el.dataset.drawn) {
        el.dataset.drawn = "1";
        window.Plotly.newPlot(el, spec.data, spec.layout, {responsive: true, displaylogo: false});
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
