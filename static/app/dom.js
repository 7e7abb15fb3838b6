// Tiny DOM helpers: build elements without innerHTML (no markup injection, nothing the CSP
// forbids: no style attributes, no inline handlers).

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'multiple',
  'indeterminate', 'readOnly', 'required', 'draggable', 'open']);

function applyProps(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false || c === true) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// h('button', {class: 'btn', onclick: fn}, 'Save')
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  appendAll(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k, String(v));
  }
  appendAll(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  appendAll(el, children);
  return el;
}

let idSeq = 0;
export function uid(prefix = 'id') {
  idSeq += 1;
  return `${prefix}-${idSeq}`;
}

// Time formatting -------------------------------------------------------------------------

// In the browser's zone, or in timeZone (an IANA name) with the zone's short name.
export function fmtTime(iso, timeZone) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const opts = { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' };
  if (timeZone) {
    try {
      return d.toLocaleString(undefined, { ...opts, timeZone, timeZoneName: 'short' });
    } catch { /* a zone this browser does not know: its own */ }
  }
  return d.toLocaleString(undefined, opts);
}

export function fmtRelative(iso, now = Date.now()) {
  if (!iso) return 'never';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.round((t - now) / 1000);
  const a = Math.abs(s);
  let text;
  if (a < 45) return 'just now';
  else if (a < 90) text = 'a minute';
  else if (a < 3600) text = `${Math.round(a / 60)} minutes`;
  else if (a < 5400) text = 'an hour';
  else if (a < 86400) text = `${Math.round(a / 3600)} hours`;
  else if (a < 172800) text = 'a day';
  else text = `${Math.round(a / 86400)} days`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

// <time> with the relative text and the exact time as title.
export function timeEl(iso, { relative = true } = {}) {
  if (!iso) return h('span', { class: 'muted' }, relative ? 'never' : '—');
  return h('time', { datetime: iso, title: fmtTime(iso) }, relative ? fmtRelative(iso) : fmtTime(iso));
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function fmtInt(n) {
  return (Number(n) || 0).toLocaleString();
}

export function fmtUsd(n) {
  const v = Number(n) || 0;
  if (v === 0) return '$0';
  if (v < 0.01) return `$${v.toFixed(4)}`;
  return `$${v.toFixed(2)}`;
}

export function truncate(s, n) {
  s = String(s ?? '');
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// "sk-ant-api03-abcdef…" -> "sk-ant-…cdef" (for showing what the person typed, never sent).
export function maskSecret(s) {
  s = String(s || '');
  if (s.length < 16) return `…${s.slice(-2)}`;
  return `${s.slice(0, 7)}…${s.slice(-4)}`;
}
