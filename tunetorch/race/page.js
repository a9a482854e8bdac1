// race.html's script (inlined by tunetorch/race/page.py): replays the recorded race on its clock,
// device minutes. The data is the JSON block #race-data: {scenes: {name: scene}, initial, seed};
// a scene's entrants hold their finished trials with `start` and `end`, the entrant's device
// minutes before and after each. At clock time `tau` a trial is a probe once end <= tau, and
// running while start <= tau < end; each budget bar holds min(tau, the entrant's spend).
//
// The URL fragment drives the page without a mouse (headless browsers): `#landscape=bumpy`
// clicks that switch, `#run` clicks "Run search", `#end` shows the finished race at once,
// `#seconds=N` sets how long a replay takes (default 12 s).
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("race-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const MAP = { w: 360, h: 300, left: 44, bottom: 34, top: 8, right: 16 }; // a panel's svg, in px
  const CHART = { w: 1400, h: 300, left: 60, bottom: 40, top: 14, right: 330 };
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const seconds = Math.max(0.5, Number(params.get("seconds")) || 12);
  let scene = null; // the scene shown
  // a score better than another in the scene's direction (the study's: maximize | minimize)
  const better = (a, b) => (scene.direction === "minimize" ? a < b : a > b);
  let tau = 0; // the race clock, in device minutes
  let state = "ready"; // ready | running | finished
  let timer = null;
  let view = null; // the elements of the scene shown, made by build()

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }
  function html(tag, attrs, parent, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  const fmt = (v, d) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const sup = (v) => {
    // 1e-4 -> "1e-4"; other values to 2 significant digits
    const e = Math.log10(v);
    return Math.abs(e - Math.round(e)) < 1e-9 ? `1e${Math.round(e)}` : v.toPrecision(2);
  };

  // --- axes: a value -> a fraction of its axis (log axes in decades) --------------------------------
  function frac(axis, v) {
    if (axis.log) return (Math.log10(v) - Math.log10(axis.low)) / (Math.log10(axis.high) - Math.log10(axis.low));
    return (v - axis.low) / (axis.high - axis.low);
  }
  function ticks(axis) {
    if (axis.log) {
      const out = [];
      for (let e = Math.ceil(Math.log10(axis.low) - 1e-9); e <= Math.floor(Math.log10(axis.high) + 1e-9); e++)
        out.push(Math.pow(10, e));
      return out;
    }
    return niceTicks(axis.low, axis.high, 5);
  }
  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1;
    const raw = span / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  // --- building a scene's panels and chart -------------------------------------------------------
  function build() {
    const panels = document.getElementById("panels");
    panels.innerHTML = "";
    // four panels share the width; fewer keep a four-panel's size rather than growing
    panels.style.gridTemplateColumns = `repeat(${Math.max(scene.entrants.length, 4)}, minmax(0, 1fr))`;
    const pw = MAP.w - MAP.left - MAP.right;
    const ph = MAP.h - MAP.top - MAP.bottom;
    const px = (v) => MAP.left + pw * frac(scene.x, v);
    const py = (v) => MAP.top + ph * (1 - frac(scene.y, v));
    view = { entrants: [] };
    scene.entrants.forEach((entrant, i) => {
      const box = html("div", { class: "panel", "data-entrant": entrant.name }, panels);
      const title = html("h2", { style: `color:${entrant.colour}` }, box);
      const svg = el("svg", { viewBox: `0 0 ${MAP.w} ${MAP.h}`, class: "map" }, box);
      el("image", {
        href: scene.heatmap, x: MAP.left, y: MAP.top, width: pw, height: ph, preserveAspectRatio: "none",
      }, svg);
      el("rect", { x: MAP.left, y: MAP.top, width: pw, height: ph, fill: "none", stroke: "#444" }, svg);
      for (const v of ticks(scene.x)) {
        el("line", { x1: px(v), x2: px(v), y1: MAP.top + ph, y2: MAP.top + ph + 4, stroke: "#444" }, svg);
        el("text", { x: px(v), y: MAP.top + ph + 15, "text-anchor": "middle" }, svg).textContent = sup(v);
      }
      el("text", { x: MAP.left + pw / 2, y: MAP.h - 4, "text-anchor": "middle" }, svg).textContent =
        scene.x.name + (scene.x.log ? " (log)" : "");
      for (const v of ticks(scene.y)) {
        el("line", { x1: MAP.left - 4, x2: MAP.left, y1: py(v), y2: py(v), stroke: "#444" }, svg);
        el("text", { x: MAP.left - 6, y: py(v) + 4, "text-anchor": "end" }, svg).textContent = sup(v);
      }
      if (i === 0) {
        const t = el("text", { x: 10, y: MAP.top + ph / 2, "text-anchor": "middle",
          transform: `rotate(-90 10 ${MAP.top + ph / 2})` }, svg);
        t.textContent = scene.y.name + (scene.y.log ? " (log)" : "");
      }
      const probes = el("g", { class: "probes" }, svg);
      const dots = entrant.trials.map((t) => {
        if (t.state === "FAIL") {
          const g = el("path", {
            class: "probe failed", d: `M${px(t.x) - 4},${py(t.y) - 4}l8,8m0,-8l-8,8`, stroke: "#000",
            "stroke-width": 1.6, "data-trial": t.n, display: "none",
          }, probes);
          return g;
        }
        return el("circle", {
          class: t.state === "PRUNED" ? "probe pruned" : "probe", cx: px(t.x), cy: py(t.y), r: t.r,
          fill: t.colour, stroke: "#000", "stroke-width": 0.8, "data-trial": t.n, display: "none",
        }, probes);
      });
      if (scene.optimum) {
        const cx = px(scene.optimum.x), cy = py(scene.optimum.y);
        const star = [];
        for (let k = 0; k < 10; k++) {
          const r = k % 2 ? 4 : 10, a = -Math.PI / 2 + (k * Math.PI) / 5;
          star.push(`${(cx + r * Math.cos(a)).toFixed(1)},${(cy + r * Math.sin(a)).toFixed(1)}`);
        }
        el("polygon", { class: "optimum", points: star.join(" "), fill: "#fff", stroke: "#000" }, svg);
      }
      const running = el("circle", { class: "running", r: 7, fill: "none", stroke: entrant.colour,
        "stroke-width": 2, "stroke-dasharray": "3 2", display: "none" }, svg);
      const best = el("circle", { class: "best", r: 10, fill: "none", stroke: "red", "stroke-width": 2.4,
        display: "none" }, svg);
      const bar = html("div", { class: "bar" }, box);
      const fill = html("div", { class: "fill", style: `background:${entrant.colour}` }, bar);
      // The bar spans the budget, or past it by the largest overshoot (a trial in flight finishes):
      // the budget is marked; under a trials budget the bar spans the largest spend.
      const total = Math.max(scene.end, 1e-9);
      if (scene.budget.minutes)
        html("div", { class: "mark", style: `left:calc(${(100 * scene.budget.minutes) / total}% - 1px)` }, bar);
      const label = html("p", { class: "bar-label" }, box);
      view.entrants.push({ entrant, box, title, dots, running, best, fill, label, total, px, py });
    });
    buildChart();
    document.getElementById("objective").textContent =
      `${scene.objective}; budget ${scene.budget.text} per entrant; seed ${DATA.seed}.`;
    const here = names.length > 1 ? "This landscape is the race run in this directory" : "The race run in this directory";
    document.getElementById("note").textContent = (scene.raced_here
      ? `${here} (its entrants' journals).`
      : "This landscape was raced in memory for this page, with the same config but the landscape.") +
      ` Heatmap: ${scene.heat_note}; probes coloured by order (green first), sized by the epochs trained,` +
      " each entrant's best ringed red" + (scene.optimum ? ", the optimum a star." : ".");
    document.getElementById("summary").textContent = scene.summary;
    document.body.dataset.landscape = scene.name;
    for (const b of document.querySelectorAll("#switch button"))
      b.setAttribute("aria-pressed", String(b.dataset.landscape === scene.name));
  }

  function buildChart() {
    const svg = document.getElementById("chart");
    svg.innerHTML = "";
    svg.setAttribute("viewBox", `0 0 ${CHART.w} ${CHART.h}`);
    const w = CHART.w - CHART.left - CHART.right, h = CHART.h - CHART.top - CHART.bottom;
    const [ylo, yhi] = scene.curve.ylim;
    const cx = (m) => CHART.left + (w * m) / scene.curve.xmax;
    const cy = (s) => CHART.top + h * (1 - (s - ylo) / (yhi - ylo));
    for (const v of niceTicks(0, scene.curve.xmax, 8)) {
      el("line", { x1: cx(v), x2: cx(v), y1: CHART.top, y2: CHART.top + h, stroke: "#e4e4e4" }, svg);
      el("text", { x: cx(v), y: CHART.top + h + 15, "text-anchor": "middle" }, svg).textContent = String(v);
    }
    const yt = niceTicks(ylo, yhi, 5);
    const digits = yt.length > 1 ? Math.max(0, Math.ceil(-Math.log10(yt[1] - yt[0]) - 1e-9)) : 2;
    for (const v of yt) {
      el("line", { x1: CHART.left, x2: CHART.left + w, y1: cy(v), y2: cy(v), stroke: "#e4e4e4" }, svg);
      el("text", { x: CHART.left - 6, y: cy(v) + 4, "text-anchor": "end" }, svg).textContent = v.toFixed(digits);
    }
    el("rect", { x: CHART.left, y: CHART.top, width: w, height: h, fill: "none", stroke: "#444" }, svg);
    el("text", { x: CHART.left + w / 2, y: CHART.h - 6, "text-anchor": "middle" }, svg).textContent = scene.unit;
    const ylab = el("text", { x: 14, y: CHART.top + h / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${CHART.top + h / 2})` }, svg);
    ylab.textContent = `best ${scene.score_label} so far`;
    const legend = [];
    if (scene.optimum) {
      el("line", { x1: CHART.left, x2: CHART.left + w, y1: cy(scene.optimum.score), y2: cy(scene.optimum.score),
        stroke: "#666", "stroke-dasharray": "2 3" }, svg);
      legend.push({ colour: "#666", dash: "2 3", text: `optimum ${fmt(scene.optimum.score, 3)}` });
    }
    if (scene.budget.minutes) {
      el("line", { x1: cx(scene.budget.minutes), x2: cx(scene.budget.minutes), y1: CHART.top, y2: CHART.top + h,
        stroke: "#666", "stroke-dasharray": "6 4" }, svg);
      legend.push({ colour: "#666", dash: "6 4", text: `budget ${scene.budget.minutes} ${scene.unit}` });
    }
    const now = el("line", { class: "now", y1: CHART.top, y2: CHART.top + h, stroke: "#000", "stroke-width": 1 }, svg);
    const curves = view.entrants.map((v) =>
      el("polyline", { class: "curve", "data-entrant": v.entrant.name, fill: "none", stroke: v.entrant.colour,
        "stroke-width": 2.4 }, svg));
    // the head of each curve: its latest point (a lone first trial is a point, not a line)
    const heads = view.entrants.map((v) =>
      el("circle", { class: "head", r: 3.5, fill: v.entrant.colour, display: "none" }, svg));
    const legendTexts = view.entrants.map((v, i) => {
      const y = CHART.top + 8 + i * 20;
      el("line", { x1: CHART.left + w + 16, x2: CHART.left + w + 40, y1: y, y2: y, stroke: v.entrant.colour,
        "stroke-width": 3 }, svg);
      return el("text", { x: CHART.left + w + 46, y: y + 4, class: "legend" }, svg);
    });
    legend.forEach((item, k) => {
      const y = CHART.top + 8 + (view.entrants.length + k) * 20;
      el("line", { x1: CHART.left + w + 16, x2: CHART.left + w + 40, y1: y, y2: y, stroke: item.colour,
        "stroke-dasharray": item.dash, "stroke-width": 1.5 }, svg);
      el("text", { x: CHART.left + w + 46, y: y + 4, class: "legend" }, svg).textContent = item.text;
    });
    view.chart = { cx, cy, now, curves, heads, legendTexts };
  }

  // --- drawing the race at clock time tau ---------------------------------------------------------
  function render() {
    const ch = view.chart;
    view.entrants.forEach((v, i) => {
      const trials = v.entrant.trials;
      let shown = 0, pruned = 0, best = null, run = null;
      const points = [];
      trials.forEach((t, k) => {
        const done = t.end <= tau + 1e-12;
        v.dots[k].setAttribute("display", done ? "inline" : "none");
        if (!done) {
          if (t.start <= tau && run === null) run = t;
          return;
        }
        shown += 1;
        if (t.state === "PRUNED") pruned += 1;
        if (t.state !== "FAIL" && t.score !== null &&
            (best === null || better(t.score, best.score) ||
              (t.score === best.score && (t.epochs || 0) > (best.epochs || 0))))
          best = t;
        if (best !== null) points.push([t.end, best.score]);
      });
      const spent = Math.min(tau, v.entrant.spent);
      const stopped = pruned ? `, ${pruned} stopped early` : "";
      v.title.textContent = `${v.entrant.name}: ` +
        (best ? `best ${fmt(best.score, 3)} after ${plural(shown, "probe")}${stopped}` : "no probe yet");
      v.box.dataset.shown = String(shown);
      v.box.dataset.best = best ? String(best.score) : "";
      v.box.dataset.spent = spent.toFixed(4);
      v.best.setAttribute("display", best ? "inline" : "none");
      if (best) { v.best.setAttribute("cx", v.px(best.x)); v.best.setAttribute("cy", v.py(best.y)); }
      v.running.setAttribute("display", run && state !== "ready" ? "inline" : "none");
      if (run) { v.running.setAttribute("cx", v.px(run.x)); v.running.setAttribute("cy", v.py(run.y)); }
      v.fill.style.width = `${(100 * spent) / v.total}%`;
      const trialsOf = scene.budget.trials ? ` of ${scene.budget.trials}` : "";
      v.label.textContent = scene.budget.minutes
        ? `${fmt(spent, 1)} of ${scene.budget.minutes} ${scene.unit} · ${plural(shown, "trial")}${stopped}`
        : `${shown}${trialsOf} trials${stopped} · ${fmt(spent, 1)} ${scene.unit}`;
      // the best-so-far curve: a step at each finished trial, then flat to the entrant's clock
      const xy = [];
      points.forEach(([m, s], k) => {
        if (k > 0) xy.push([m, points[k - 1][1]]);
        xy.push([m, s]);
      });
      if (points.length) xy.push([Math.max(spent, points[points.length - 1][0]), points[points.length - 1][1]]);
      ch.curves[i].setAttribute("points", xy.map(([m, s]) => `${ch.cx(m).toFixed(1)},${ch.cy(s).toFixed(1)}`).join(" "));
      ch.heads[i].setAttribute("display", xy.length ? "inline" : "none");
      if (xy.length) {
        ch.heads[i].setAttribute("cx", ch.cx(xy[xy.length - 1][0]));
        ch.heads[i].setAttribute("cy", ch.cy(xy[xy.length - 1][1]));
      }
      ch.legendTexts[i].textContent = best
        ? `${v.entrant.name}: best ${fmt(best.score, 3)} after ${fmt(spent, 1)} min` : `${v.entrant.name}`;
    });
    ch.now.setAttribute("x1", ch.cx(tau));
    ch.now.setAttribute("x2", ch.cx(tau));
    ch.now.setAttribute("display", state === "ready" ? "none" : "inline");
    const of = scene.budget.minutes ? ` of ${scene.budget.minutes}` : "";
    document.getElementById("clock").textContent = state === "ready"
      ? "Click Run search to watch the race."
      : `${fmt(tau, 1)}${of} ${scene.unit}` + (state === "finished" ? " · finished" : "");
    // what each budget bought, said once the race has run (it would give the ending away before)
    document.getElementById("summary").style.visibility = state === "finished" ? "visible" : "hidden";
    document.body.dataset.state = state;
    document.body.dataset.tau = tau.toFixed(4);
  }

  // --- controls ------------------------------------------------------------------------------------
  function play() {
    clearInterval(timer);
    const t0 = Date.now();
    const end = () => scene.end; // the clock runs to the shown scene's end, even after a switch
    state = "running";
    tau = 0;
    render();
    timer = setInterval(() => {
      tau = Math.min(end(), (end() * (Date.now() - t0)) / (1000 * seconds));
      if (tau >= end()) { state = "finished"; clearInterval(timer); }
      render();
    }, 40);
  }
  function show(name) {
    scene = DATA.scenes[name];
    build();
    if (state === "finished") tau = scene.end; // a finished race stays finished on the other landscape
    tau = Math.min(tau, scene.end);
    render();
  }

  const sw = document.getElementById("switch");
  const names = Object.keys(DATA.scenes);
  for (const name of names) {
    const b = html("button", { type: "button", "data-landscape": name, id: `landscape-${name}` }, sw,
      DATA.scenes[name].label);
    b.disabled = names.length === 1;
    b.addEventListener("click", () => show(name));
  }
  document.getElementById("run").addEventListener("click", play);
  show(DATA.initial in DATA.scenes ? DATA.initial : names[0]);
  if (params.has("landscape") && DATA.scenes[params.get("landscape")])
    document.getElementById(`landscape-${params.get("landscape")}`).click();
  if (params.has("end")) { state = "finished"; tau = scene.end; render(); }
  else if (params.has("run")) document.getElementById("run").click();
})();
