/* index.html's script (tunetorch/reports/html.py inlines it): sort the trials table by any column,
   show a trial's parameters on hover and light up its marks everywhere. The URL fragment does the
   same as a reader would: #sort=-lr&hover=12&view=curves (see html.py). */
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  var table = document.getElementById("trial-table");

  // Each mark's title element becomes its data-tip: one tooltip (ours), not the browser's as well.
  document.querySelectorAll("svg [data-trial]").forEach(function (el) {
    var title = el.querySelector(":scope > title");
    if (title) { el.setAttribute("data-tip", title.textContent); title.remove(); }
  });

  function marks(n) { return document.querySelectorAll('[data-trial="' + n + '"]'); }

  function show(n, x, y) {
    hide();
    var all = marks(n);
    if (!all.length) return false;
    all.forEach(function (el) { el.classList.add("hi"); });
    document.body.classList.add("hovering");
    var text = all[0].getAttribute("data-tip") || ("trial " + n);
    tip.textContent = text;
    tip.hidden = false;
    place(x, y);
    return true;
  }
  function place(x, y) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.max(4, Math.min(x + 14, window.innerWidth - w - 8)) + "px";
    tip.style.top = (y + 18 + h > window.innerHeight ? y - h - 12 : y + 18) + "px";
  }
  function hide() {
    document.querySelectorAll(".hi").forEach(function (el) { el.classList.remove("hi"); });
    document.body.classList.remove("hovering");
    tip.hidden = true;
  }

  var current = null;
  document.addEventListener("mouseover", function (ev) {
    var el = ev.target.closest && ev.target.closest("[data-trial]");
    var n = el ? el.getAttribute("data-trial") : null;
    if (n === current) return;
    current = n;
    if (n === null) hide(); else show(n, ev.clientX, ev.clientY);
  });
  document.addEventListener("mousemove", function (ev) { if (!tip.hidden) place(ev.clientX, ev.clientY); });

  // Sorting: numbers by value, text by text; empty cells last whichever way.
  function sortBy(key, descending) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var col = heads.findIndex(function (th) { return th.dataset.key === key; });
    if (col < 0) return false;
    var numeric = heads[col].dataset.kind === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === "" || y === "") return (x === "") - (y === "");
      var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      if (c === 0) c = parseFloat(a.dataset.trial) - parseFloat(b.dataset.trial);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (th, i) {
      th.classList.toggle("asc", i === col && !descending);
      th.classList.toggle("desc", i === col && descending);
    });
    table.dataset.sorted = (descending ? "-" : "") + key;
    return true;
  }
  if (table) {
    table.tHead.addEventListener("click", function (ev) {
      var th = ev.target.closest("th");
      if (!th) return;
      // first click: the better end first for the score, small to large for the rest
      var descending = th.classList.contains("asc") ||
        (!th.classList.contains("desc") && th.dataset.key === "score" && document.body.dataset.direction !== "minimize");
      sortBy(th.dataset.key, descending);
    });
  }

  // The fragment: sort=KEY or -KEY (a column key, or the last part of a parameter's path),
  // hover=TRIAL, view=SECTION. The sort clicks the column's header, as a reader would.
  var opts = new URLSearchParams(location.hash.replace(/^#/, ""));
  var sort = opts.get("sort");
  if (sort && table) {
    var descending = sort.charAt(0) === "-", key = sort.replace(/^-/, "");
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var hits = heads.filter(function (th) { return th.dataset.key === key; });
    if (!hits.length) hits = heads.filter(function (th) { return th.dataset.key.split(".").pop() === key; });
    if (hits.length === 1) {
      hits[0].click();
      if (hits[0].classList.contains("desc") !== descending) hits[0].click();
    }
  }
  var view = opts.get("view");
  if (view && document.getElementById(view)) document.getElementById(view).scrollIntoView();
  var hover = opts.get("hover");
  if (hover !== null) {
    var target = document.querySelector('svg [data-trial="' + hover + '"]') || marks(hover)[0];
    if (target) {
      var box = target.getBoundingClientRect();
      show(hover, box.right - 6, box.top + box.height / 2);
    }
  }
})();
