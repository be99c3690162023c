// A small SVG line chart, drawn here rather than with a library (no build step, no
// external code). Series are [{name, points: [[time_ms, value], ...]}]. The <svg>
// carries data-points (points drawn) and data-max (largest value) for tests.

import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 200;
const PAD = { left: 52, right: 14, top: 12, bottom: 26 };

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A round upper bound for the y axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtAxis(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1);
}

function fmtClock(ms, seconds) {
  return new Date(ms).toLocaleTimeString(undefined, { hour12: false, hour: '2-digit', minute: '2-digit', second: seconds ? '2-digit' : undefined });
}

/**
 * Builds the chart panel. `unit` labels the y axis; `seconds` shows seconds on the x
 * axis; `range` ([from_ms, to_ms]) fixes the x axis instead of fitting the data.
 */
export function lineChart({ id, title, unit, series, seconds, range }) {
  const all = series.flatMap((x) => x.points);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, id });
  const legend = h('div', { class: 'legend' }, series.map((x, i) => h('span', { class: `s${i % 5}` }, x.name)));
  const panel = h('div', { class: 'chart' }, h('h3', {}, title, unit ? h('span', { class: 'muted' }, ` (${unit})`) : null), svg, legend);
  const maxV = all.reduce((m, p) => Math.max(m, p[1]), 0);
  svg.dataset.points = String(all.length);
  svg.dataset.max = String(maxV);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  if (!all.length) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis-label' }, 'No data yet'));
    return panel;
  }
  let t0 = range ? range[0] : Math.min(...all.map((p) => p[0]));
  let t1 = range ? range[1] : Math.max(...all.map((p) => p[0]));
  if (t1 - t0 < 1000) {
    t0 -= 30000;
    t1 += 30000;
  }
  const top = niceMax(maxV);
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    svg.append(s('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    svg.append(s('text', { class: 'axis-label', x: PAD.left - 6, y: y(v) + 3, 'text-anchor': 'end' }, fmtAxis(v)));
  }
  for (const [t, anchor] of [[t0, 'start'], [(t0 + t1) / 2, 'middle'], [t1, 'end']]) {
    svg.append(s('text', { class: 'axis-label', x: x(t), y: H - 8, 'text-anchor': anchor }, fmtClock(t, seconds)));
  }
  series.forEach((ser, i) => {
    const pts = [...ser.points].sort((a, b) => a[0] - b[0]);
    if (!pts.length) return;
    const d = pts.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    const path = s('path', { class: `series s${i % 5}`, d });
    path.dataset.points = String(pts.length);
    path.dataset.series = ser.name;
    svg.append(path);
    const last = pts[pts.length - 1];
    svg.append(s('circle', { class: `dot s${i % 5}`, cx: x(last[0]).toFixed(1), cy: y(last[1]).toFixed(1), r: 2.5 }));
  });
  return panel;
}
