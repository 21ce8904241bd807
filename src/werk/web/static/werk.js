// werk web UI: confirmations, select-all checkboxes and the live dashboard graph.
// Plain JavaScript, no build step, no libraries.
(function () {
  "use strict";

  // Buttons with data-confirm ask first.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Select-all checkboxes and the "N selected" count of list forms.
  document.querySelectorAll("form.selectable").forEach(function (form) {
    var all = form.querySelector(".check-all");
    var boxes = Array.prototype.slice.call(form.querySelectorAll("input[name=jid]"));
    var counter = form.querySelector(".selected-count");
    var buttons = form.querySelectorAll(".needs-selection");
    function refresh() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      if (counter) { counter.textContent = n + " selected"; }
      buttons.forEach(function (b) { b.disabled = n === 0; });
      if (all) {
        all.checked = n > 0 && n === boxes.length;
        all.indeterminate = n > 0 && n < boxes.length;
      }
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        refresh();
      });
    }
    boxes.forEach(function (b) { b.addEventListener("change", refresh); });
    refresh();
  });

  // Live graph: poll /stats.json, plot processed and failed per interval as inline SVG.
  var live = document.getElementById("live");
  if (!live) { return; }
  var MAX_POINTS = 60;
  var W = 1000, H = 200, TOP = 0;
  var svg = live.querySelector("svg");
  var grid = svg.querySelector(".grid");
  var yAxis = live.querySelector(".chart-y");
  var select = document.getElementById("poll-interval");
  var beacon = document.querySelector(".beacon");
  var processed = [], failed = [];
  var last = null, timer = null;
  var fmt = new Intl.NumberFormat("en-US");

  function compact(n) {
    if (n >= 1e9) { return +(n / 1e9).toFixed(n < 1e10 ? 1 : 0) + "B"; }
    if (n >= 1e6) { return +(n / 1e6).toFixed(n < 1e7 ? 1 : 0) + "M"; }
    if (n >= 1e3) { return +(n / 1e3).toFixed(n < 1e4 ? 1 : 0) + "k"; }
    return String(Math.round(n));
  }
  // A round tick step (1, 2 or 5 x 10^n) and the axis top it gives, as the history graph.
  function scale(v) {
    var raw = Math.max(v / 4, 1);
    var e = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = 10 * e;
    [5, 2, 1].forEach(function (m) { if (m * e >= raw) { step = m * e; } });
    return { step: step, top: Math.max(Math.ceil(v / step), 1) * step };
  }
  function paths(values, top) {
    var step = W / (MAX_POINTS - 1);
    var offset = MAX_POINTS - values.length;
    var line = "";
    values.forEach(function (v, i) {
      var x = ((offset + i) * step).toFixed(1);
      var y = (H - (H - TOP) * v / top).toFixed(1);
      line += (i === 0 ? "M" : "L") + x + "," + y;
    });
    if (!line) { return { line: "", area: "" }; }
    var x0 = (offset * step).toFixed(1);
    return { line: line, area: "M" + x0 + "," + H + line.replace(/^M/, "L") + "L" + W + "," + H + "Z" };
  }
  function draw() {
    var sc = scale(Math.max.apply(null, processed.concat(failed, [0])));
    var top = sc.top;
    var p = paths(processed, top), f = paths(failed, top);
    svg.querySelector(".area.processed").setAttribute("d", p.area);
    svg.querySelector(".line.processed").setAttribute("d", p.line);
    svg.querySelector(".area.failed").setAttribute("d", f.area);
    svg.querySelector(".line.failed").setAttribute("d", f.line);
    var lines = "", labels = "";
    for (var k = top / sc.step; k >= 0; k--) {
      var y = (H - (H - TOP) * k * sc.step / top).toFixed(1);
      lines += '<line x1="0" x2="' + W + '" y1="' + y + '" y2="' + y + '"></line>';
      labels += "<span>" + compact(k * sc.step) + "</span>";
    }
    grid.innerHTML = lines;
    yAxis.innerHTML = labels;
    if (processed.length > 1) { live.classList.add("has-data"); }
  }
  function setText(name, value) {
    document.querySelectorAll('[data-stat="' + name + '"]').forEach(function (el) {
      el.textContent = el.classList.contains("pill") ? compact(value) : fmt.format(value);
      if (el.hasAttribute("title")) { el.setAttribute("title", fmt.format(value)); }
    });
  }
  function push(series, value) {
    series.push(Math.max(value, 0));
    if (series.length > MAX_POINTS) { series.shift(); }
  }
  function poll() {
    fetch(live.getAttribute("data-url"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (s) {
        if (last) {
          push(processed, s.processed - last.processed);
          push(failed, s.failures - last.failures);
          document.getElementById("live-processed").textContent = fmt.format(processed[processed.length - 1]);
          document.getElementById("live-failed").textContent = fmt.format(failed[failed.length - 1]);
        }
        last = s;
        ["processed", "failures", "working", "enqueued", "retries", "scheduled", "dead", "connections"]
          .forEach(function (k) { setText(k, s[k]); });
        if (beacon) { beacon.classList.remove("paused"); }
        draw();
      })
      .catch(function () { if (beacon) { beacon.classList.add("paused"); } });
  }
  function interval() {
    var v = parseInt(select && select.value, 10);
    return v >= 1000 ? v : 5000;
  }
  function restart() {
    if (timer) { clearInterval(timer); }
    timer = setInterval(function () { if (!document.hidden) { poll(); } }, interval());
  }
  if (select) {
    var saved = window.localStorage && localStorage.getItem("werk.interval");
    if (saved && select.querySelector('option[value="' + saved + '"]')) { select.value = saved; }
    select.addEventListener("change", function () {
      try { localStorage.setItem("werk.interval", select.value); } catch (e) { /* private mode */ }
      restart();
    });
  }
  draw();
  poll();
  restart();
})();
