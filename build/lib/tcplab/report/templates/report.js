(function () {
  "use strict";
  document.body.classList.add("js");
  var box = document.getElementById("detail");
  var ladder = document.querySelector("svg.ladder");
  if (!box || !ladder) { return; }
  var selected = null;
  ladder.addEventListener("click", function (ev) {
    var g = ev.target.closest ? ev.target.closest("g.pkt") : null;
    if (!g) { return; }
    ev.preventDefault();
    if (selected) { selected.classList.remove("sel"); }
    selected = g;
    g.classList.add("sel");
    var n = g.getAttribute("data-n");
    var t = g.querySelector("title");
    var text = t ? t.textContent : "";
    var row = document.getElementById("pkt-" + n);
    var old = document.querySelector("table.packets tr.sel");
    if (old) { old.classList.remove("sel"); }
    if (row) {
      row.classList.add("sel");
      var p = row.querySelector("td.payload");
      if (p && p.textContent) { text += "\npayload: " + p.textContent; }
    }
    box.textContent = text;
    box.classList.add("on");
  });
})();
