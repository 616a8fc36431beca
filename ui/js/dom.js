// dom.js - building elements without innerHTML (so nothing the API returns is ever parsed
// as markup), and small page helpers shared by every page.

let uid = 0;
/** A unique element id with a readable prefix. */
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** h('button', {type: 'button', onclick: fn, class: 'x'}, 'text', childEl, ...) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An alert box; kind is 'error', 'ok' or 'warn'. Errors are announced at once. */
export function alertBox(kind, ...children) {
  return h('div', { class: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    ...children);
}

/** Say something to screen readers (and to the tests) without moving focus. */
export function announce(text) {
  const a = document.getElementById('announcer');
  if (a) a.textContent = text;
}

/** The page heading; focused after navigation so keyboard and reader users start there. */
export function pageTitle(text) {
  return h('h1', { tabindex: '-1', id: 'page-title' }, text);
}

/** A table inside a horizontally scrolling wrapper (phone width). */
export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

/** "2026-01-02 03:04:05 UTC" for an ISO timestamp or epoch ms; '' for none. */
export function fmtTime(v) {
  if (v === null || v === undefined || v === '' || v === 0) return '';
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
