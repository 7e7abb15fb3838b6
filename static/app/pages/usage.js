// Usage: calls, tokens and cost by day, provider, model or key, as a table and an SVG chart.
import { h, svg, replace, clear, fmtInt, fmtUsd, uid } from '../dom.js';
import { get, getAll } from '../api.js';
import { pageHeader, loadInto, emptyState, PROVIDER_NAMES } from '../ui.js';

const GROUPS = [['day', 'Day'], ['provider', 'Provider'], ['model', 'Model'], ['key', 'Key']];
const METRICS = [['tokens', 'Tokens'], ['cost', 'Cost (USD)'], ['calls', 'Calls']];
const view = { groupBy: 'day', metric: 'tokens', days: 30 };

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function short(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n * 100) / 100);
}

export async function render(ctx) {
  const { root, base } = ctx;
  root.append(pageHeader('Usage', 'Calls, tokens and cost of this workspace’s jobs.'));
  const today = new Date();
  const fromIn = h('input', { type: 'date', id: 'usage-from', value: isoDay(new Date(today.getTime() - (view.days - 1) * 86400000)) });
  const toIn = h('input', { type: 'date', id: 'usage-to', value: isoDay(today) });
  const groupBtns = GROUPS.map(([id, label]) => {
    const b = h('button', { type: 'button', class: 'seg__btn', 'aria-pressed': String(view.groupBy === id), 'data-group': id }, label);
    b.addEventListener('click', () => { view.groupBy = id; for (const x of groupBtns) x.setAttribute('aria-pressed', String(x === b)); load(); });
    return b;
  });
  const metricSel = h('select', { id: 'usage-metric' }, METRICS.map(([id, label]) => h('option', { value: id, selected: view.metric === id }, label)));
  metricSel.addEventListener('change', () => { view.metric = metricSel.value; draw(); });
  fromIn.addEventListener('change', load);
  toIn.addEventListener('change', load);
  root.append(h('div', { class: 'filters', role: 'group', 'aria-label': 'Usage view' },
    h('div', { class: 'filters__item' }, h('label', { for: 'usage-from' }, 'From (UTC day)'), fromIn),
    h('div', { class: 'filters__item' }, h('label', { for: 'usage-to' }, 'To (UTC day, included)'), toIn),
    h('div', { class: 'filters__item' }, h('span', { class: 'filters__label', id: 'usage-group-label' }, 'Group by'),
      h('div', { class: 'seg', role: 'group', 'aria-labelledby': 'usage-group-label' }, groupBtns)),
    h('div', { class: 'filters__item' }, h('label', { for: 'usage-metric' }, 'Chart'), metricSel)));
  const totals = h('div', { class: 'totals' });
  const chartSlot = h('figure', { class: 'card chart' });
  const tableSlot = h('div');
  const body = h('div', {}, totals, chartSlot, tableSlot);
  root.append(body);

  let rows = [];
  let keys = new Map();
  try {
    const r = await getAll(`${base}/keys`, 'keys');
    keys = new Map((r.keys || []).map((k) => [k.id, k]));
  } catch { /* ids then */ }

  function label(r) {
    switch (view.groupBy) {
      case 'day': return r.day || '—';
      case 'provider': return PROVIDER_NAMES[r.provider] || r.provider || 'unknown';
      case 'model': return r.model ? `${r.model}${r.provider ? ` (${PROVIDER_NAMES[r.provider] || r.provider})` : ''}` : 'unknown';
      case 'key': {
        if (!r.keyId) return 'system / unknown';
        const k = keys.get(r.keyId);
        return k ? `${k.name || 'key'} ${k.maskedKey}` : `deleted key ${r.keyId.slice(0, 8)}`;
      }
      default: return '';
    }
  }

  // The days as the server takes them: from's start to the end of to (UTC days).
  function query() {
    const q = new URLSearchParams({ groupBy: view.groupBy });
    if (fromIn.value) q.set('from', fromIn.value);
    if (toIn.value) q.set('to', toIn.value);
    return `${base}/usage?${q}`;
  }
  function show(r) {
    rows = r.rows || [];
    if (view.groupBy === 'day') rows = fillDays(rows, fromIn.value, toIn.value);
    else rows.sort((a, b) => value(b) - value(a));
    drawTotals();
    draw();
    drawTable();
  }

  // A new view: the spinner meanwhile, or the error in its place.
  async function load() {
    clear(totals);
    clear(chartSlot);
    await loadInto(tableSlot, () => get(query()), show, { label: 'Loading usage…', alive: ctx.alive });
  }
  // The same view brought up to date: what is shown stays until the new figures are in, and
  // stays when they cannot be read.
  let updates = 0;
  async function update() {
    const asked = query();
    const n = ++updates;
    try {
      const r = await get(asked);
      if (ctx.alive() && n === updates && query() === asked && !tableSlot.querySelector('.loading')) show(r);
    } catch { /* the next finished job tries again */ }
  }

  function fillDays(list, from, to) {
    const by = new Map(list.map((r) => [r.day, r]));
    if (!from || !to || from > to) return list.sort((a, b) => (a.day || '').localeCompare(b.day || ''));
    const out = [];
    for (let d = new Date(`${from}T00:00:00Z`); isoDay(d) <= to && out.length < 400; d = new Date(d.getTime() + 86400000)) {
      const k = isoDay(d);
      out.push(by.get(k) || { day: k, calls: 0, successes: 0, failures: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, p50LatencyMs: null, p95LatencyMs: null, empty: true });
    }
    return out;
  }

  function value(r) {
    if (view.metric === 'cost') return Number(r.costUsd) || 0;
    if (view.metric === 'calls') return Number(r.calls) || 0;
    return (Number(r.inputTokens) || 0) + (Number(r.outputTokens) || 0);
  }
  function fmtValue(v) {
    return view.metric === 'cost' ? fmtUsd(v) : fmtInt(v);
  }

  function sum(key) {
    return rows.reduce((a, r) => a + (Number(r[key]) || 0), 0);
  }

  function drawTotals() {
    replace(totals,
      stat('Calls', fmtInt(sum('calls')), `${fmtInt(sum('failures'))} failed`),
      stat('Input tokens', fmtInt(sum('inputTokens'))),
      stat('Output tokens', fmtInt(sum('outputTokens'))),
      stat('Cost', fmtUsd(sum('costUsd'))));
  }
  function stat(name, v, sub) {
    return h('div', { class: 'stat' }, h('span', { class: 'stat__name' }, name), h('span', { class: 'stat__value' }, v), sub ? h('span', { class: 'stat__sub muted' }, sub) : null);
  }

  function draw() {
    clear(chartSlot);
    const has = rows.some((r) => value(r) > 0);
    const metricName = METRICS.find((m) => m[0] === view.metric)[1];
    const groupName = GROUPS.find((g) => g[0] === view.groupBy)[1].toLowerCase();
    const caption = h('figcaption', { class: 'chart__caption' }, `${metricName} by ${groupName}`,
      view.metric === 'tokens' ? h('span', { class: 'legend' },
        h('span', { class: 'legend__item' }, h('span', { class: 'legend__swatch legend__swatch--in', 'aria-hidden': 'true' }), 'input'),
        h('span', { class: 'legend__item' }, h('span', { class: 'legend__swatch legend__swatch--out', 'aria-hidden': 'true' }), 'output')) : null);
    chartSlot.append(caption);
    if (!has) {
      chartSlot.append(h('p', { class: 'muted chart__empty' }, 'Nothing used in this period.'));
      return;
    }
    chartSlot.append(view.groupBy === 'day' ? dayChart(metricName) : barChart(metricName));
  }

  function segments(r) {
    if (view.metric === 'tokens') return [['in', Number(r.inputTokens) || 0], ['out', Number(r.outputTokens) || 0]];
    return [['one', value(r)]];
  }

  function dayChart(metricName) {
    const W = 820;
    const H = 260;
    const L = 56;
    const R = 12;
    const T = 12;
    const B = 36;
    const n = rows.length;
    const max = niceMax(Math.max(...rows.map(value)));
    const cw = (W - L - R) / n;
    const bw = Math.max(2, Math.min(36, cw * 0.7));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const titleId = uid('chart');
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart__svg', role: 'img', 'aria-labelledby': titleId },
      svg('title', { id: titleId }, `${metricName} per day, ${rows[0].day} to ${rows[n - 1].day}; the table below has the numbers.`));
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'chart__grid' }),
        svg('text', { x: L - 6, y: y(v) + 4, class: 'chart__tick', 'text-anchor': 'end' }, view.metric === 'cost' ? `$${short(v)}` : short(v)));
    }
    const every = Math.ceil(n / 10);
    rows.forEach((r, i) => {
      const x = L + i * cw + (cw - bw) / 2;
      let acc = 0;
      for (const [kind, v] of segments(r)) {
        if (v <= 0) continue;
        const y0 = y(acc + v);
        const hgt = y(acc) - y0;
        g.append(svg('rect', { x, y: y0, width: bw, height: Math.max(hgt, 0.5), class: `chart__bar chart__bar--${kind}` },
          svg('title', {}, `${r.day}: ${kind === 'in' ? 'input ' : kind === 'out' ? 'output ' : ''}${fmtValue(v)}`)));
        acc += v;
      }
      if (i % every === 0 || i === n - 1) {
        g.append(svg('text', { x: L + i * cw + cw / 2, y: H - B + 16, class: 'chart__tick', 'text-anchor': 'middle' }, (r.day || '').slice(5)));
      }
    });
    g.append(svg('line', { x1: L, x2: W - R, y1: y(0), y2: y(0), class: 'chart__axis' }));
    return g;
  }

  function barChart(metricName) {
    const list = rows.slice(0, 20);
    const W = 820;
    const rowH = 30;
    const L = 230;
    const R = 90;
    const H = list.length * rowH + 10;
    const max = niceMax(Math.max(...list.map(value)));
    const x = (v) => L + (W - L - R) * (v / max);
    const titleId = uid('chart');
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart__svg', role: 'img', 'aria-labelledby': titleId },
      svg('title', { id: titleId }, `${metricName} per ${view.groupBy}; the table below has the numbers.`));
    list.forEach((r, i) => {
      const yy = 5 + i * rowH;
      const name = label(r);
      g.append(svg('text', { x: L - 8, y: yy + rowH / 2 + 4, class: 'chart__label', 'text-anchor': 'end' }, name.length > 34 ? `${name.slice(0, 33)}…` : name));
      let acc = 0;
      for (const [kind, v] of segments(r)) {
        if (v <= 0) continue;
        g.append(svg('rect', { x: x(acc), y: yy + 5, width: Math.max(x(acc + v) - x(acc), 0.5), height: rowH - 10, class: `chart__bar chart__bar--${kind}` },
          svg('title', {}, `${name}: ${kind === 'in' ? 'input ' : kind === 'out' ? 'output ' : ''}${fmtValue(v)}`)));
        acc += v;
      }
      g.append(svg('text', { x: x(acc) + 6, y: yy + rowH / 2 + 4, class: 'chart__value' }, fmtValue(value(r))));
    });
    return g;
  }

  function drawTable() {
    const shown = rows.filter((r) => !r.empty);
    if (!shown.length) {
      replace(tableSlot, emptyState('No usage in this period.', 'Usage is recorded for every provider call a job makes.'));
      return;
    }
    const groupName = GROUPS.find((g) => g[0] === view.groupBy)[1];
    const tbody = h('tbody');
    for (const r of shown) {
      tbody.append(h('tr', {},
        h('th', { scope: 'row', 'data-label': groupName }, label(r)),
        h('td', { 'data-label': 'Calls', class: 'num' }, fmtInt(r.calls)),
        h('td', { 'data-label': 'Succeeded', class: 'num' }, fmtInt(r.successes)),
        h('td', { 'data-label': 'Failed', class: ['num', r.failures ? 'text-bad' : null] }, fmtInt(r.failures)),
        h('td', { 'data-label': 'Input tokens', class: 'num' }, fmtInt(r.inputTokens)),
        h('td', { 'data-label': 'Output tokens', class: 'num' }, fmtInt(r.outputTokens)),
        h('td', { 'data-label': 'Cost', class: 'num' }, fmtUsd(r.costUsd)),
        h('td', { 'data-label': 'p50 latency', class: 'num' }, r.p50LatencyMs == null ? '—' : `${fmtInt(r.p50LatencyMs)} ms`),
        h('td', { 'data-label': 'p95 latency', class: 'num' }, r.p95LatencyMs == null ? '—' : `${fmtInt(r.p95LatencyMs)} ms`)));
    }
    const tfoot = h('tfoot', {}, h('tr', {},
      h('th', { scope: 'row' }, 'Total'),
      h('td', { class: 'num' }, fmtInt(sum('calls'))), h('td', { class: 'num' }, fmtInt(sum('successes'))),
      h('td', { class: 'num' }, fmtInt(sum('failures'))), h('td', { class: 'num' }, fmtInt(sum('inputTokens'))),
      h('td', { class: 'num' }, fmtInt(sum('outputTokens'))), h('td', { class: 'num' }, fmtUsd(sum('costUsd'))),
      h('td', {}), h('td', {})));
    replace(tableSlot, h('div', { class: 'table-wrap' }, h('table', { class: 'table table--cards table--usage' },
      h('caption', { class: 'visually-hidden' }, `Usage by ${groupName.toLowerCase()}`),
      h('thead', {}, h('tr', {}, [groupName, 'Calls', 'Succeeded', 'Failed', 'Input tokens', 'Output tokens', 'Cost', 'p50 latency', 'p95 latency']
        .map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null }, t)))),
      tbody, tfoot)));
  }

  // New usage arrives with finished jobs: at most one update every 1.5 s, however many jobs
  // finish meanwhile.
  let timer = null;
  const soon = () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; update(); }, 1500);
  };
  ctx.on('job_succeeded', soon);
  ctx.on('job_failed', soon);
  ctx.on('resync', soon);
  ctx.onCleanup(() => clearTimeout(timer));
  await load();
}
