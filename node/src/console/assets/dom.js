// Small DOM helpers. Data from the API is only ever inserted as text (textContent),
// never as HTML, so a resource name cannot inject markup or script.

/** Creates an element: h('td', {class: 'num', onclick: fn}, child, 'text', ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A notice box; kind is '', 'error' or 'ok'. */
export function notice(text, kind = '') {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A compact, bounded text form of any JSON value, for table cells. */
export function cell(v, max = 80) {
  if (v === undefined || v === null) return '';
  let s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s.length > max) s = s.slice(0, max - 1) + '…';
  return s;
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || String(text).toLowerCase()}` }, text);
}

export function fmtTime(ms) {
  if (!ms && ms !== 0) return '';
  const d = new Date(ms);
  return d.toLocaleString(undefined, { hour12: false });
}

export function fmtNum(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}
