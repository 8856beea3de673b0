// trainwatch's live page. No framework, no build step, nothing loaded from elsewhere.
// Everything from a log (run names, paths, notes) is put in the page as text (textContent / append of
// strings), never as markup; the server's Content-Security-Policy forbids inline script besides.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_POINTS = 4096; // as the server keeps them: older half thinned when full
  const runs = new Map(); // id → summary (trainwatch.api/1)
  let order = [];
  let selected = decodeURIComponent(location.hash.slice(1)) || null;
  let shown = null; // the selected run's detail: {id, summary, fields, points, evals, notes}
  let loading = false, again = false;

  // ---- formatting --------------------------------------------------------------------------------
  const dash = "—";
  const pad = (n) => String(n).padStart(2, "0");
  function duration(s) {
    if (s == null || !isFinite(s)) return dash;
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s % 3600 / 60))}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor(s % 86400 / 3600)}h`;
  }
  function clock(ts) {
    if (ts == null) return dash;
    const d = new Date(ts * 1000), now = new Date();
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const days = Math.round((new Date(d).setHours(0, 0, 0, 0) - new Date(now).setHours(0, 0, 0, 0)) / 864e5);
    if (days === 0) return hm;
    if (days === 1) return `${hm} tomorrow`;
    return `${d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" })} ${hm}`;
  }
  const loss = (v) => v == null ? dash : typeof v === "string" ? v : v.toFixed(4);
  const int = (v) => v == null ? dash : Math.round(v).toLocaleString("en-US");
  function human(v, unit = "") {
    if (v == null) return dash;
    const p = ["", "k", "M", "G", "T", "P", "E"];
    let i = 0;
    while (Math.abs(v) >= 1000 && i < p.length - 1) { v /= 1000; i++; }
    return `${v.toFixed(v >= 100 || i === 0 ? 0 : v >= 10 ? 1 : 2)} ${p[i]}${unit}`.trim();
  }
  const kwh = (j) => j == null ? dash : `${(j / 3.6e6).toFixed(3)} kWh`;
  const live = (s) => s.state !== "finished" && s.state !== "crashed";

  // ---- DOM helpers: strings become text nodes, never markup ----------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    e.append(...children.filter((c) => c != null));
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function badge(state) { return el("span", { class: `state state-${state}` }, state); }
  function fact(dl, name, value) { dl.append(el("div", {}, el("dt", {}, name), el("dd", {}, value))); }

  // ---- the run list ----------------------------------------------------------------------------------
  function eta(s) {
    const t = s.time;
    if (s.state === "finished") return "finished";
    if (t.eta_s == null) return dash;
    return `${duration(t.eta_s)} (${duration(t.eta_p10_s)} – ${duration(t.eta_p90_s)})`;
  }
  function progressCell(s) {
    const p = s.progress;
    if (p.iter == null) return el("td", {}, dash);
    const bar = p.fraction != null ? el("progress", { value: String(p.fraction), max: "1" }) : null;
    return el("td", {}, bar, ` ${int(p.iter)}${p.max_iters != null ? " / " + int(p.max_iters) : ""}`);
  }
  function renderList() {
    const rows = order.map((id) => {
      const s = runs.get(id);
      const tr = el("tr", { "data-id": id },
        el("td", {}, el("a", { href: "#" + encodeURIComponent(id) }, s.run)),
        el("td", {}, badge(s.state)), progressCell(s), el("td", {}, eta(s)),
        el("td", {}, live(s) ? clock(s.time.finish_at) : dash),
        el("td", {}, `${loss(s.loss.train)} / ${loss(s.loss.val)}`));
      if (id === selected) tr.classList.add("selected");
      tr.addEventListener("click", () => select(id));
      return tr;
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "no run yet")));
    $("run-rows").replaceChildren(...rows);
  }

  // ---- one run ---------------------------------------------------------------------------------------
  function select(id) {
    if (id === selected && shown && shown.id === id) return;
    selected = id;
    history.replaceState(null, "", "#" + encodeURIComponent(id));
    shown = null;
    renderList();
    load();
  }
  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      do {
        again = false;
        const id = selected;
        if (!id || !runs.has(id)) { $("run").hidden = true; break; }
        const have = shown && shown.id === id && shown.points.length ? shown : null;
        const last = have ? have.points[have.points.length - 1] : null;
        let url = `/api/v1/runs/${encodeURIComponent(id)}`;
        if (last) url += `?since=${last[have.f.iter]}&segment=${last[have.f.segment]}`;
        const r = await fetch(url, { cache: "no-store" });
        if (!r.ok) break;
        const d = await r.json();
        if (id !== selected) { again = true; continue; }
        merge(id, d, have);
        renderRun();
      } while (again);
    } catch (e) {
      setLink("down", "connection lost; reconnecting…");
    } finally {
      loading = false;
    }
  }
  function merge(id, d, have) {
    const f = Object.fromEntries(d.history.fields.map((n, i) => [n, i]));
    let points = d.history.points;
    if (have) {
      const last = have.points[have.points.length - 1];
      const restarted = !points.length && (d.progress.iter == null || d.progress.iter < last[f.iter]);
      if (restarted) { shown = null; again = true; return; }
      points = have.points.concat(points);
      while (points.length >= MAX_POINTS) {
        const keep = MAX_POINTS >> 1;
        points = points.slice(0, -keep).filter((_, i) => i % 2 === 0).concat(points.slice(-keep));
      }
    }
    const ef = Object.fromEntries(d.evals.fields.map((n, i) => [n, i]));
    shown = { id, summary: d, f, points, ef, evals: d.evals.points, notes: d.notes };
  }
  function renderRun() {
    const s = runs.get(shown.id) || shown.summary;
    $("run").hidden = false;
    $("run-name").textContent = s.run;
    $("run-state").replaceWith(Object.assign(badge(s.state), { id: "run-state" }));
    document.title = `${s.run} — trainwatch`;
    renderFacts(s);
    lossChart($("loss-chart"), s);
    timeChart($("time-chart"), s);
    renderGpus(s);
    renderEnergy(s);
    renderEvents(s);
  }
  function renderFacts(s) {
    const dl = $("facts");
    dl.replaceChildren();
    const p = s.progress, t = s.time;
    fact(dl, "progress", p.iter == null ? dash :
      `iter ${int(p.iter)} of ${p.max_iters == null ? "?" : int(p.max_iters)}` +
      (p.fraction != null ? ` (${(100 * p.fraction).toFixed(1)} %)` : ""));
    fact(dl, "ETA (p10 – p90)", s.state === "finished" ? "finished" : t.eta_s == null ? (t.eta_reason || dash) : eta(s));
    fact(dl, "finishes", live(s) && t.finish_at != null ?
      `~${clock(t.finish_at)} (${clock(t.finish_p10)} – ${clock(t.finish_p90)})` : dash);
    fact(dl, "loss train / val / best", `${loss(s.loss.train)} / ${loss(s.loss.val)} / ${loss(s.loss.best_val)}`);
    if (s.loss.final_p50 != null) {
      fact(dl, `predicted final ${s.loss.final_of || "val"} loss`,
        `${loss(s.loss.final_p50)} (${loss(s.loss.final_p10)} – ${loss(s.loss.final_p90)})`);
    }
    fact(dl, "time per iteration", t.iter_s == null ? dash : t.iter_s < 1 ? `${(t.iter_s * 1000).toFixed(1)} ms` : `${t.iter_s.toFixed(2)} s`);
    fact(dl, "tokens", `${human(s.tokens.seen)} of ${human(s.tokens.total)}` +
      (s.tokens.per_second ? ` · ${human(s.tokens.per_second)}/s` : ""));
    fact(dl, "MFU", s.compute.mfu == null ? dash : `${(100 * s.compute.mfu).toFixed(1)} %`);
    fact(dl, "elapsed", duration(t.elapsed_s));
    if (s.plan) fact(dl, "plan", s.plan.message);
    if (s.error.type) fact(dl, "error", `${s.error.type}: ${s.error.message || ""}`);
    fact(dl, "log", s.log);
  }

  // ---- charts (hand-drawn SVG) -------------------------------------------------------------------------
  function frame(el_, xs, ys) {
    const w = el_.clientWidth || 600, h = el_.clientHeight || 220;
    el_.setAttribute("viewBox", `0 0 ${w} ${h}`);
    el_.replaceChildren();
    const m = { l: 52, r: 10, t: 8, b: 20 };
    const sx = (x) => m.l + (x - xs[0]) / ((xs[1] - xs[0]) || 1) * (w - m.l - m.r);
    const sy = (y) => h - m.b - (y - ys[0]) / ((ys[1] - ys[0]) || 1) * (h - m.t - m.b);
    for (let i = 0; i <= 4; i++) {
      const y = ys[0] + (ys[1] - ys[0]) * i / 4;
      el_.append(svg("line", { class: "grid", x1: m.l, x2: w - m.r, y1: sy(y), y2: sy(y) }));
      const label = svg("text", { x: m.l - 6, y: sy(y) + 4, "text-anchor": "end" });
      label.textContent = ys.fmt(y);
      el_.append(label);
    }
    for (const x of [xs[0], (xs[0] + xs[1]) / 2, xs[1]]) {
      const label = svg("text", { x: sx(x), y: h - 4, "text-anchor": x === xs[0] ? "start" : x === xs[1] ? "end" : "middle" });
      label.textContent = int(x);
      el_.append(label);
    }
    return { sx, sy };
  }
  function empty(el_, text) {
    el_.replaceChildren();
    const t = svg("text", { x: 60, y: 40, class: "empty" });
    t.textContent = text;
    el_.append(t);
  }
  const finite = (v) => typeof v === "number" && isFinite(v);
  function path(points, sx, sy) {
    let d = "";
    for (const [x, y] of points) d += `${d ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
    return d;
  }
  function lossChart(el_, s) {
    const { f, points } = shown;
    const train = points.filter((p) => finite(p[f.loss])).map((p) => [p[f.iter], p[f.loss]]);
    const val = shown.evals.filter((e) => finite(e[shown.ef.val_loss])).map((e) => [e[shown.ef.iter], e[shown.ef.val_loss]]);
    if (!train.length && !val.length) return empty(el_, "no loss yet");
    const span = Math.max(5, Math.round(train.length / 40)), a = 2 / (span + 1);
    let ema = null;
    const smooth = train.map(([x, y]) => [x, ema = ema == null ? y : ema + a * (y - ema)]);
    const L = s.loss, pred = finite(L.final_p50) && s.progress.max_iters != null && live(s);
    $("pred-key").hidden = !pred;
    const xs = [Math.min(...[...train, ...val].map((p) => p[0])),
      Math.max(...[...train, ...val].map((p) => p[0]), pred ? s.progress.max_iters : -Infinity)];
    // the first 5 % of the run (the steep early drop) may leave the top of the chart: the rest is what is read
    const early = xs[0] + 0.05 * (Math.max(...[...train, ...val].map((p) => p[0])) - xs[0]);
    const later = (pts) => pts.filter((p) => p[0] >= early).map((p) => p[1]);
    const lows = [...train.map((p) => p[1]), ...val.map((p) => p[1]), ...(pred ? [L.final_p10, L.final_p50].filter(finite) : [])];
    const highs = [...later(smooth), ...later(val)];
    const ys = [Math.min(...lows), Math.max(...highs, ...(pred && finite(L.final_p90) ? [L.final_p90] : []))];
    const padY = (ys[1] - ys[0]) * 0.08 || 0.1;
    ys[0] -= padY; ys[1] += padY;
    ys.fmt = (y) => y.toFixed(2);
    const { sx, sy } = frame(el_, xs, ys);
    const clip = (pts) => pts.map(([x, y]) => [x, Math.min(ys[1], Math.max(ys[0], y))]);
    el_.append(svg("path", { class: "train", d: path(clip(train), sx, sy) }));
    el_.append(svg("path", { class: "smooth", d: path(clip(smooth), sx, sy) }));
    if (val.length) {
      el_.append(svg("path", { class: "val", d: path(clip(val), sx, sy) }));
      for (const [x, y] of clip(val)) el_.append(svg("circle", { class: "val-dot", cx: sx(x), cy: sy(y), r: 2.5 }));
    }
    if (pred) {
      const from = val.length ? val[val.length - 1] : smooth[smooth.length - 1];
      const end = s.progress.max_iters;
      if (finite(L.final_p10) && finite(L.final_p90)) {
        el_.append(svg("polygon", { class: "pred-band", points:
          `${sx(from[0])},${sy(from[1])} ${sx(end)},${sy(L.final_p90)} ${sx(end)},${sy(L.final_p10)}` }));
      }
      el_.append(svg("path", { class: "pred", d: path([from, [end, L.final_p50]], sx, sy) }));
    }
  }
  function timeChart(el_, s) {
    const { f, points } = shown;
    const steps = [], over = [];
    let prev = null;
    for (const p of points) {
      let dt = p[f.dt_s];
      if (!finite(dt) && prev && prev[f.segment] === p[f.segment] && p[f.iter] > prev[f.iter]) {
        dt = (p[f.t] - prev[f.t]) / (p[f.iter] - prev[f.iter]);
      }
      if (finite(dt)) (p[f.overhead] ? over : steps).push([p[f.iter], dt]);
      prev = p;
    }
    if (!steps.length && !over.length) return empty(el_, "no timing yet");
    const sorted = steps.map((p) => p[1]).sort((a, b) => a - b);
    const typical = sorted.length ? sorted[Math.floor(sorted.length * 0.98)] : Math.max(...over.map((p) => p[1]));
    const all = [...steps, ...over];
    const ms = typical < 1;
    const xs = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    const ys = [0, typical * 1.6];
    ys.fmt = (y) => ms ? `${(y * 1000).toFixed(0)} ms` : `${y.toFixed(1)} s`;
    const { sx, sy } = frame(el_, xs, ys);
    const dots = (pts, cls) => {
      let d = "";
      for (const [x, y] of pts) d += `M${sx(x).toFixed(1)},${sy(Math.min(y, ys[1])).toFixed(1)}h0.1`;
      el_.append(svg("path", { class: cls, d, "stroke-width": 3, "stroke-linecap": "round" }));
    };
    dots(steps, "step");
    dots(over, "over");
    const steady = s.time.iter_s;
    if (finite(steady) && steady <= ys[1]) {
      el_.append(svg("line", { class: "steady", x1: sx(xs[0]), x2: sx(xs[1]), y1: sy(steady), y2: sy(steady) }));
    }
  }

  // ---- GPUs, energy, events ------------------------------------------------------------------------------
  function renderGpus(s) {
    const box = $("gpus");
    if (!s.gpus.length) { box.replaceChildren(el("p", { class: "dim" }, "no GPU readings")); return; }
    const num = (v, d, unit) => v == null ? dash : `${v.toFixed(d)}${unit}`;
    const rows = s.gpus.map((g) => el("tr", {},
      el("td", {}, `${g.index} ${g.name}${g.lost ? " (lost)" : ""}`),
      el("td", {}, num(g.power_w, 0, " W")),
      el("td", {}, g.utilization == null ? dash : `${Math.round(100 * g.utilization)} %`),
      el("td", {}, g.memory_used_bytes == null ? dash :
        `${(g.memory_used_bytes / 2 ** 30).toFixed(1)} / ${g.memory_total_bytes == null ? "?" : (g.memory_total_bytes / 2 ** 30).toFixed(0)} GiB`),
      el("td", {}, num(g.temperature_c, 0, " °C")),
      el("td", {}, g.throttle.length ? g.throttle.join(", ") : "")));
    box.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ...["GPU", "power", "util", "memory", "temp", "throttle"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows)));
  }
  function renderEnergy(s) {
    const dl = $("energy"), e = s.energy;
    dl.replaceChildren();
    fact(dl, "so far", e.joules == null ? `${dash} (no NVML; --power-watts W)` : `${kwh(e.joules)} (${e.source})`);
    fact(dl, "at the finish", kwh(e.forecast_joules));
    fact(dl, "mean power", e.mean_power_w == null ? dash : `${Math.round(e.mean_power_w)} W`);
    fact(dl, "cost", e.cost == null ? dash : e.cost.toFixed(2));
  }
  function renderEvents(s) {
    const ef = shown.ef, rows = [];
    for (const n of shown.notes) rows.push({ at: n.iter == null ? -1 : n.iter + 0.5, iter: n.iter, kind: n.level, text: n.text });
    for (const e of shown.evals) {
      const best = s.loss.best_val != null && e[ef.val_loss] === s.loss.best_val ? "  best" : "";
      rows.push({ at: e[ef.iter], iter: e[ef.iter], kind: "eval",
        text: `eval  train ${loss(e[ef.train_loss])}  val ${loss(e[ef.val_loss])}${best}` });
    }
    rows.sort((a, b) => b.at - a.at);
    $("events").replaceChildren(...rows.slice(0, 100).map((r) =>
      el("li", {}, el("span", { class: "at" }, r.iter == null ? "" : int(r.iter)), el("span", { class: r.kind }, r.text))));
    if (!rows.length) $("events").append(el("li", { class: "dim" }, "no events yet"));
  }

  // ---- live updates --------------------------------------------------------------------------------------
  function setLink(cls, text) {
    const link = $("link");
    link.className = `link ${cls}`;
    link.textContent = text;
  }
  function onRuns(msg) {
    const moved = new Set();
    for (const s of msg.runs) {
      const old = runs.get(s.id);
      if (!old || old.lines !== s.lines || old.state !== s.state) moved.add(s.id);
      runs.set(s.id, s);
    }
    order = msg.ids.filter((id) => runs.has(id));
    for (const id of [...runs.keys()]) if (!order.includes(id)) runs.delete(id);
    if (!selected || !runs.has(selected)) selected = order[0] || null;
    renderList();
    if (selected && (moved.has(selected) || !shown || shown.id !== selected)) load();
    else if (shown && runs.has(shown.id)) renderRun();
    else $("run").hidden = !selected;
  }
  let wait = 2000;
  function connect() {
    const es = new EventSource("/api/v1/events");
    es.addEventListener("open", () => { wait = 2000; setLink("live", "live"); });
    es.addEventListener("error", () => {
      setLink("down", "connection lost; reconnecting…");
      // the browser retries a dropped stream by itself, but not one refused (503: too many clients)
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(connect, wait);
        wait = Math.min(wait * 2, 30000);
      }
    });
    es.addEventListener("runs", (ev) => onRuns(JSON.parse(ev.data)));
  }
  window.addEventListener("hashchange", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && runs.has(id)) select(id);
  });
  let resized = null;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => { if (shown) renderRun(); }, 150);
  });
  setLink("", "connecting…");
  connect();
})();
