// The live latency heatmap: polls /api/heatmap once a second for the
// columns it has not seen, and draws one SVG per stage: time to the right,
// latency bucket upwards, one rect per non-empty cell carrying its count.
"use strict";

const WINDOW = 60;          // columns shown (seconds)
const CELL_W = 10, CELL_H = 12, LEFT = 60, BOTTOM = 16;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = { after: 0, columns: [], meta: null, drawnSeq: 0 };

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// shade by log count, so one order and a million are both visible
function shade(count, max) {
  const f = Math.log1p(count) / Math.log1p(Math.max(max, 1));
  const light = Math.round(92 - 62 * f);
  return `hsl(${Math.round(220 - 200 * f)}, 85%, ${light}%)`;
}

function setUp(meta) {
  state.meta = meta;
  const panels = document.getElementById("panels");
  panels.textContent = "";
  const rows = meta.buckets.length;
  for (const p of meta.panels) {
    const div = document.createElement("div");
    div.className = "panel";
    div.dataset.panel = p.id;
    const h = document.createElement("h2");
    h.textContent = `${p.title} (per ${p.unit})`;
    div.appendChild(h);
    const svg = el("svg", { width: LEFT + WINDOW * CELL_W + 4, height: rows * CELL_H + BOTTOM,
                            "data-panel": p.id });
    meta.buckets.forEach((label, b) => {
      const y = (rows - 1 - b) * CELL_H;
      const t = el("text", { x: LEFT - 4, y: y + CELL_H - 2, "text-anchor": "end",
                             class: "axis" }, svg);
      t.textContent = "≤ " + label;
    });
    const axis = el("text", { x: LEFT + WINDOW * CELL_W, y: rows * CELL_H + 12,
                              "text-anchor": "end", class: "axis" }, svg);
    axis.textContent = "now";
    const axis0 = el("text", { x: LEFT, y: rows * CELL_H + 12, class: "axis" }, svg);
    axis0.textContent = `-${WINDOW} s`;
    el("g", { class: "cells" }, svg);
    div.appendChild(svg);
    panels.appendChild(div);
  }
}

function draw() {
  const meta = state.meta;
  const rows = meta.buckets.length;
  const cols = state.columns.slice(-WINDOW);
  const offset = WINDOW - cols.length;
  for (const p of meta.panels) {
    const g = document.querySelector(`svg[data-panel="${p.id}"] g.cells`);
    g.textContent = "";
    let max = 0;
    for (const c of cols) for (const n of c.deltas[p.id]) max = Math.max(max, n);
    cols.forEach((c, i) => {
      c.deltas[p.id].forEach((n, b) => {
        if (!n) return;
        const r = el("rect", { class: "cell", x: LEFT + (offset + i) * CELL_W,
                               y: (rows - 1 - b) * CELL_H, width: CELL_W - 1, height: CELL_H - 1,
                               fill: shade(n, max), "data-seq": c.seq, "data-bucket": b,
                               "data-count": n }, g);
        const tip = el("title", {}, r);
        tip.textContent = `${n} in ${meta.buckets[b]} at ${new Date(c.t * 1000).toISOString()}`;
      });
    });
  }
  const last = cols[cols.length - 1];
  if (last) {
    state.drawnSeq = last.seq;
    document.body.dataset.drawnSeq = String(last.seq);
    const box = document.getElementById("counters");
    box.textContent = "";
    for (const [k, v] of Object.entries(last.counters)) {
      const d = document.createElement("div");
      d.className = "counter";
      d.dataset.counter = k;
      d.innerHTML = `${k.replace(/_/g, " ")}: <span class="value"></span>`;
      d.querySelector(".value").textContent = v.toLocaleString("en");
      box.appendChild(d);
    }
  }
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const r = await fetch(`/api/heatmap?after=${state.after}`, { cache: "no-store" });
    const body = await r.json();
    if (!state.meta) setUp(body);
    for (const c of body.columns) {
      state.columns.push(c);
      state.after = c.seq;
    }
    if (state.columns.length > WINDOW) state.columns.splice(0, state.columns.length - WINDOW);
    draw();
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `no data: ${e}`;
  }
  setTimeout(poll, 1000);
}

poll();
