// The runs table's "Compare selected": turn the ticked boxes into ?ids=a,b (a stable URL).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("compare-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    var ids = Array.from(form.querySelectorAll("input[name=pick]:checked")).map(function (b) { return b.value; });
    document.getElementById("compare-ids").value = ids.join(",");
    form.querySelectorAll("input[name=pick]").forEach(function (b) { b.disabled = true; });
  });
});
