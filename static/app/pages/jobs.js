// Jobs monitor (live over the workspace's event stream; no polling) and the job page with
// its attempts log.
import { h, replace, clear, timeEl, fmtTime, fmtDuration, truncate, fmtInt, fmtUsd } from '../dom.js';
import { get, getAll, post, plainError, ApiError } from '../api.js';
import { pageHeader, errorBox, loadInto, busy, toast, announce, jobBadge, field,
  inlineError, emptyState, notice, PROVIDER_NAMES } from '../ui.js';

const STATUSES = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'];
const ACTIVE = new Set(['queued', 'running', 'retrying']);
const filters = { status: '', type: '', scheduleId: '', text: '' };   // kept while the tab lives
const OUTCOMES = {
  ok: ['Answered', 'good'], auth: ['Key refused', 'bad'], quota: ['Quota exhausted', 'bad'],
  rate: ['Rate limited', 'warn'], transient: ['Provider unavailable', 'warn'], request: ['Request refused', 'bad'],
  cancelled: ['Cancelled', 'muted'],
};
const TERMINAL = new Set(['job_succeeded', 'job_failed', 'job_cancelled']);
const JOB_EVENTS = ['job_queued', 'job_started', 'job_retrying', 'job_succeeded', 'job_failed', 'job_cancelled'];

export async function render(ctx) {
  if (ctx.id) return renderJob(ctx);
  return renderList(ctx);
}

// Key names for "answered by" (ids otherwise); failures leave the ids.
async function keyNames(base) {
  try {
    const r = await getAll(`${base}/keys`, 'keys');
    return new Map((r.keys || []).map((k) => [k.id, k]));
  } catch {
    return new Map();
  }
}

function answeredBy(job, keys) {
  if (!job.provider) return h('span', { class: 'muted' }, '—');
  const k = job.keyId ? keys.get(job.keyId) : null;
  return h('span', { class: 'answered' },
    h('span', { class: 'answered__provider' }, PROVIDER_NAMES[job.provider] || job.provider),
    job.model ? h('span', { class: 'answered__model' }, job.model) : null,
    job.keyId ? h('span', { class: 'answered__key' }, k ? `${k.name || 'key'} ${k.maskedKey}` : (job.keyId === 'system' ? 'system key' : `key ${job.keyId.slice(0, 8)}…`)) : null,
    job.usedFallback ? h('span', { class: 'chip chip--fallback', title: 'The primary provider could not answer; a provider of the fallback chain did.' }, '↪ fallback') : null);
}

function durationOf(job) {
  if (!job.startedAt) return null;
  const end = job.finishedAt ? new Date(job.finishedAt).getTime() : Date.now();
  return end - new Date(job.startedAt).getTime();
}

// Snapshots of a job (an event, a GET, a POST's answer) can land out of order: a GET sent
// before the job failed may answer after the job_failed event. Each snapshot is stamped when
// it is asked for (an event when it arrives, in the stream's order); a row takes no snapshot
// older than the one it shows.
let clock = 0;
const stamp = () => ++clock;

function jobActions(ctx, job, onChange) {
  if (!ctx.isMember) return null;
  const out = [];
  if (ACTIVE.has(job.status)) {
    const b = h('button', { type: 'button', class: 'btn btn--small', 'aria-label': `Cancel job ${job.id.slice(0, 8)}` }, 'Cancel');
    b.addEventListener('click', () => act(ctx, job, 'cancel', b, onChange));
    out.push(b);
  }
  if (job.status === 'failed' || job.status === 'cancelled') {
    const b = h('button', { type: 'button', class: 'btn btn--small', 'aria-label': `Retry job ${job.id.slice(0, 8)}` }, 'Retry');
    b.addEventListener('click', () => act(ctx, job, 'retry', b, onChange));
    out.push(b);
  }
  return out.length ? h('span', { class: 'row-actions' }, out) : null;
}

async function act(ctx, job, what, btn, onChange) {
  const at = stamp();
  try {
    const j = await busy(btn, what === 'cancel' ? 'Cancelling…' : 'Retrying…',
      () => post(`${ctx.base}/jobs/${encodeURIComponent(job.id)}/${what}`, {}));
    toast(what === 'cancel' ? 'Job cancelled.' : 'Job queued again.');
    onChange(j || job, null, at);
  } catch (err) {
    onChange(null, `${what === 'cancel' ? 'Could not cancel' : 'Could not retry'}: ${plainError(err)}`);
  }
}

// ---- list ----------------------------------------------------------------------------------

async function renderList(ctx) {
  const { root, base } = ctx;
  const st = { jobs: [], next: null, keys: new Map(), schedules: [], rowErrors: new Map(), fresh: new Set(),
    seen: new Map() };      // job id -> stamp of the snapshot shown (see stamp)
  root.append(pageHeader('Jobs', 'Every request to a provider, live: what is queued, running, retried, answered or failed.'));

  const statusSel = h('select', { id: 'jobs-status' }, h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s, selected: filters.status === s }, s[0].toUpperCase() + s.slice(1))));
  const typeSel = h('select', { id: 'jobs-type' }, h('option', { value: '' }, 'Any type'),
    h('option', { value: 'chat', selected: filters.type === 'chat' }, 'Chat'), h('option', { value: 'task', selected: filters.type === 'task' }, 'Task'));
  const schedSel = h('select', { id: 'jobs-schedule' }, h('option', { value: '' }, 'Any schedule'));
  const search = h('input', { type: 'search', id: 'jobs-search', value: filters.text, placeholder: 'input, error, model…' });
  const filterBar = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    h('div', { class: 'filters__item' }, h('label', { for: 'jobs-status' }, 'Status'), statusSel),
    h('div', { class: 'filters__item' }, h('label', { for: 'jobs-type' }, 'Type'), typeSel),
    h('div', { class: 'filters__item' }, h('label', { for: 'jobs-schedule' }, 'Schedule'), schedSel),
    h('div', { class: 'filters__item filters__item--grow' }, h('label', { for: 'jobs-search' }, 'Search'), search));
  filterBar.addEventListener('submit', (ev) => ev.preventDefault());
  const counts = h('p', { class: 'counts muted', 'aria-live': 'polite' });
  const listSlot = h('div', { class: 'jobs-list' });
  const more = h('div', { class: 'load-more' });
  root.append(ctx.isMember ? newTaskForm(ctx, (job) => { upsert(job, true, 0); renderRows(); }) : null, filterBar, counts, listSlot, more);

  statusSel.addEventListener('change', () => { filters.status = statusSel.value; reload(); });
  schedSel.addEventListener('change', () => { filters.scheduleId = schedSel.value; reload(); });
  typeSel.addEventListener('change', () => { filters.type = typeSel.value; renderRows(); });
  search.addEventListener('input', () => { filters.text = search.value; renderRows(); });

  function query(before) {
    const q = new URLSearchParams();
    if (filters.status) q.set('status', filters.status);
    if (filters.scheduleId) q.set('scheduleId', filters.scheduleId);
    q.set('limit', '50');
    if (before) q.set('before', before);
    return `${base}/jobs?${q}`;
  }

  function matchesServerFilter(job) {
    if (filters.status && job.status !== filters.status) return false;
    if (filters.scheduleId && job.scheduleId !== filters.scheduleId) return false;
    return true;
  }
  function matchesClientFilter(job) {
    if (filters.type && job.type !== filters.type) return false;
    const t = filters.text.trim().toLowerCase();
    if (t) {
      const hay = [job.input, job.error, job.model, job.provider, job.id, job.schedule && job.schedule.description].join(' ').toLowerCase();
      if (!hay.includes(t)) return false;
    }
    return true;
  }

  // at: the snapshot's stamp; 0 for the answer that created the job, older than any event.
  function upsert(job, isNew, at) {
    if (at < (st.seen.get(job.id) ?? -1)) return;
    st.seen.set(job.id, at);
    const i = st.jobs.findIndex((j) => j.id === job.id);
    if (!matchesServerFilter(job)) {
      if (i >= 0) st.jobs.splice(i, 1);
      return;
    }
    if (i >= 0) st.jobs[i] = { ...st.jobs[i], ...job };
    else {
      st.jobs.unshift(job);
      st.jobs.sort((a, b) => (b.createdAt || '').localeCompare(a.createdAt || ''));
    }
    if (isNew || i < 0) st.fresh.add(job.id);
  }

  function renderRows() {
    const shown = st.jobs.filter(matchesClientFilter);
    const active = st.jobs.filter((j) => ACTIVE.has(j.status)).length;
    counts.textContent = `${shown.length} shown${shown.length !== st.jobs.length ? ` of ${st.jobs.length} loaded` : ''} · ${active} active`;
    if (!shown.length) {
      replace(listSlot, emptyState(st.jobs.length ? 'No job matches these filters.' : 'No jobs yet.',
        st.jobs.length ? 'Change the filters to see more.' : 'Jobs appear here as soon as a chat message, a schedule or an API client creates one.'));
      return;
    }
    const tbody = h('tbody');
    for (const j of shown) tbody.append(row(j));
    replace(listSlot, h('div', { class: 'table-wrap' }, h('table', { class: 'table table--jobs table--cards' },
      h('caption', { class: 'visually-hidden' }, 'Jobs, newest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Job'), h('th', { scope: 'col' }, 'Attempts'),
        h('th', { scope: 'col' }, 'Provider · key'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Took'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      tbody)));
    st.fresh.clear();
  }

  function row(j) {
    const err = st.rowErrors.get(j.id);
    const d = durationOf(j);
    return h('tr', { class: ['job-row', `job-row--${j.status}`, st.fresh.has(j.id) ? 'is-fresh' : null], 'data-job-id': j.id, 'data-status': j.status },
      h('td', { 'data-label': 'Status' }, jobBadge(j.status)),
      h('td', { 'data-label': 'Job', class: 'job-cell' },
        h('a', { href: ctx.href('jobs', j.id), class: 'job-link' }, h('span', { class: 'job-type' }, j.type), ' ', truncate(j.input || '(no input)', 90)),
        j.schedule ? h('span', { class: 'job-schedule' }, '⏰ ', j.schedule.description || j.schedule.cron) : null,
        j.error ? h('span', { class: 'job-error' }, truncate(j.error, 200)) : null,
        err ? h('span', { class: 'job-error', role: 'alert' }, err) : null),
      h('td', { 'data-label': 'Attempts' }, `${j.attempts ?? 0} / ${j.maxAttempts ?? '—'}`),
      h('td', { 'data-label': 'Provider · key' }, answeredBy(j, st.keys)),
      h('td', { 'data-label': 'Created' }, timeEl(j.createdAt)),
      h('td', { 'data-label': 'Took' }, d === null ? h('span', { class: 'muted' }, ACTIVE.has(j.status) ? 'waiting' : '—') : fmtDuration(d)),
      h('td', { 'data-label': 'Actions' }, jobActions(ctx, j, (job, e, at) => {
        if (e) st.rowErrors.set(j.id, e);
        else st.rowErrors.delete(j.id);
        if (job) upsert(job, false, at);
        renderRows();
      })));
  }

  function renderMore() {
    clear(more);
    if (!st.next) return;
    const b = h('button', { type: 'button', class: 'btn' }, 'Load older jobs');
    b.addEventListener('click', async () => {
      try {
        const at = stamp();
        const r = await busy(b, 'Loading…', () => get(query(st.next)));
        for (const j of r.jobs || []) {
          // Shown already, or changed (maybe filtered out) by an event since: not older.
          if (st.jobs.some((x) => x.id === j.id) || (st.seen.get(j.id) ?? -1) > at) continue;
          st.jobs.push(j);
          st.seen.set(j.id, at);
        }
        st.next = r.nextCursor || null;
        renderRows();
        renderMore();
      } catch (err) {
        more.append(errorBox(err));
      }
    });
    more.append(b);
  }

  async function reload() {
    clear(more);
    let at = 0;
    await loadInto(listSlot, () => { at = stamp(); return get(query()); }, (r) => {
      // A job an event has changed since the list was asked for keeps that newer state:
      // its row as shown, or no row when the event took it out of the filter.
      const newer = (id) => (st.seen.get(id) ?? -1) > at;
      const shown = new Map(st.jobs.map((j) => [j.id, j]));
      st.jobs = (r.jobs || []).flatMap((j) => {
        if (newer(j.id)) return shown.has(j.id) ? [shown.get(j.id)] : [];
        return [j];
      });
      const listed = new Set(st.jobs.map((j) => j.id));
      for (const j of shown.values()) {
        if (!listed.has(j.id) && newer(j.id) && matchesServerFilter(j)) st.jobs.push(j);
      }
      st.jobs.sort((a, b) => (b.createdAt || '').localeCompare(a.createdAt || ''));
      // Stamps of the jobs listed, and of those an event changed since (it may list them
      // again): the map does not grow with every job the workspace ever ran.
      const seen = new Map();
      for (const [id, s] of st.seen) if (s > at) seen.set(id, s);
      for (const j of st.jobs) if (!seen.has(j.id)) seen.set(j.id, at);
      st.seen = seen;
      st.next = r.nextCursor || null;
      renderRows();
      renderMore();
    }, { label: 'Loading jobs…', alive: ctx.alive });
  }

  // Live: each job event carries the job; without it, fetch it.
  for (const t of JOB_EVENTS) {
    ctx.on(t, async (ev) => {
      // Events carry the job's changed fields; show them at once, then read the whole job
      // when it is new to the list or finished (duration, answer, error).
      const id = ev.jobId || (ev.job && ev.job.id);
      if (!id) return;
      const known = st.jobs.some((j) => j.id === id);
      if (ev.job && (known || ev.job.createdAt)) {
        upsert(ev.job, t === 'job_queued', stamp());
        renderRows();
      }
      if (known && !TERMINAL.has(t) && ev.job) return;
      const at = stamp();
      let job;
      try { job = await get(`${base}/jobs/${encodeURIComponent(id)}`); } catch { return; }
      if (!ctx.alive()) return;
      if (job.keyId && !st.keys.has(job.keyId)) st.keys = await keyNames(base);
      const row = { ...job };
      delete row.attemptsLog;
      upsert(row, !known, at);
      renderRows();
    });
  }
  let resyncTimer = null;
  ctx.on('resync', () => { clearTimeout(resyncTimer); resyncTimer = setTimeout(reload, 200); });
  ctx.onCleanup(() => clearTimeout(resyncTimer));
  // "Took" of running jobs advances without asking the server.
  const tick = setInterval(() => {
    if (st.jobs.some((j) => j.status === 'running')) renderRowsQuietly();
  }, 5000);
  ctx.onCleanup(() => clearInterval(tick));
  function renderRowsQuietly() {
    if (listSlot.contains(document.activeElement)) return;
    renderRows();
  }

  st.keys = await keyNames(base);
  get(`${base}/schedules?limit=200`).then((r) => {
    if (!ctx.alive()) return;
    for (const s of r.schedules || []) schedSel.append(h('option', { value: s.id, selected: filters.scheduleId === s.id }, s.description || s.cron));
  }).catch(() => { schedSel.disabled = true; });
  await reload();
}

function newTaskForm(ctx, onCreated) {
  const input = h('textarea', { rows: '2', required: true });
  const provider = h('select', {}, h('option', { value: '' }, 'Workspace routing (primary, then fallbacks)'),
    Object.entries(PROVIDER_NAMES).map(([id, name]) => h('option', { value: id }, name)));
  const maxAttempts = h('input', { type: 'number', min: '1', max: '20', value: '5', inputmode: 'numeric' });
  const fIn = field({ label: 'Task input', input, hint: 'Sent to the provider as the prompt; the answer is kept on the job.' });
  const fProv = field({ label: 'Provider', input: provider });
  const fMax = field({ label: 'Max attempts', input: maxAttempts });
  const errSlot = h('div');
  const submit = h('button', { type: 'submit', class: 'btn btn--primary' }, 'Queue task');
  const form = h('form', { class: 'card newtask', novalidate: true, 'aria-label': 'Queue a task' },
    h('div', { class: 'newtask__grid' }, fIn.wrap, h('div', { class: 'newtask__side' }, fProv.wrap, fMax.wrap)),
    errSlot, h('div', { class: 'form-actions' }, submit));
  const details = h('details', { class: 'newtask-wrap' }, h('summary', { class: 'btn btn--small' }, '+ Queue a task'), form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    fIn.setError(null);
    fMax.setError(null);
    fProv.setError(null);
    if (!input.value.trim()) { fIn.setError('Write what the task should do.'); input.focus(); return; }
    const body = { type: 'task', input: input.value, maxAttempts: Number(maxAttempts.value) || undefined };
    if (provider.value) body.provider = provider.value;
    try {
      const job = await busy(submit, 'Queueing…', () => post(`${ctx.base}/jobs`, body));
      input.value = '';
      toast('Task queued.');
      onCreated(job);
    } catch (err) {
      const setters = { input: fIn.setError, maxAttempts: fMax.setError, provider: fProv.setError };
      if (setters[err.field]) setters[err.field](plainError(err));
      else errSlot.append(inlineError(err));
    }
  });
  return details;
}

// ---- one job --------------------------------------------------------------------------------

async function renderJob(ctx) {
  const { root, base } = ctx;
  const back = h('a', { href: ctx.href('jobs'), class: 'backlink' }, '← All jobs');
  const slot = h('div');
  root.append(back, slot);
  let keys = new Map();
  let actionError = null;

  // Reads answering out of order: the one asked for last is the one shown (see stamp).
  let newest = { at: 0, job: null };
  const offer = (at, job) => {
    if (at >= newest.at) newest = { at, job };
    return newest.job === job;
  };
  async function load() {
    const at = stamp();
    const [job, k] = await Promise.all([get(`${base}/jobs/${encodeURIComponent(ctx.id)}`), keyNames(base)]);
    keys = k;
    offer(at, job);
    return newest.job;
  }

  function show(job) {
    clear(slot);
    const d = durationOf(job);
    slot.append(pageHeader(h('span', {}, `Job `, h('code', {}, job.id.slice(0, 8)), ' ', jobBadge(job.status)),
      job.schedule ? `Made by the schedule “${job.schedule.description || job.schedule.cron}”` : (job.chatId ? 'Answering a chat message' : `A ${job.type} job`),
      jobActions(ctx, job, (j, e, at) => {
        actionError = e;
        if (j) offer(at, { ...job, ...j });    // unless a read since is newer
        show(newest.job);
      })));
    if (actionError) slot.append(notice('error', actionError));
    if (job.status === 'failed') {
      slot.append(h('div', { class: 'alert alert--error', role: 'alert' }, h('p', {}, h('strong', {}, 'Failed: '), job.error || 'no error message was recorded')));
    } else if (job.status === 'retrying' && job.error) {
      slot.append(notice('warn', h('strong', {}, 'Retrying after: '), job.error));
    }
    const chatLink = job.chatId ? h('a', { href: ctx.href('chats', job.chatId) }, 'open the chat') : '—';
    slot.append(h('div', { class: 'job-grid' },
      h('section', { class: 'card' }, h('h2', { class: 'card__title' }, 'Details'),
        h('dl', { class: 'deflist' },
          h('dt', {}, 'Type'), h('dd', {}, job.type),
          h('dt', {}, 'Attempts'), h('dd', {}, `${job.attempts ?? 0} of ${job.maxAttempts ?? '—'}`),
          h('dt', {}, job.status === 'succeeded' ? 'Answered by' : 'Last tried'), h('dd', {}, answeredBy(job, keys)),
          h('dt', {}, 'Created'), h('dd', {}, fmtTime(job.createdAt)),
          h('dt', {}, 'Run at'), h('dd', {}, fmtTime(job.runAt)),
          h('dt', {}, 'Started'), h('dd', {}, fmtTime(job.startedAt)),
          h('dt', {}, 'Finished'), h('dd', {}, fmtTime(job.finishedAt), d !== null ? ` (${fmtDuration(d)})` : ''),
          h('dt', {}, 'Delivered'), h('dd', {}, fmtTime(job.deliveredAt)),
          h('dt', {}, 'Chat'), h('dd', {}, chatLink),
          h('dt', {}, 'Schedule'), h('dd', {}, job.schedule ? `${job.schedule.description || ''} (${job.schedule.cron})` : '—'),
          h('dt', {}, 'Priority'), h('dd', {}, String(job.priority ?? 0)),
          h('dt', {}, 'Usage'), h('dd', {}, job.usage ? `${fmtInt(job.usage.inputTokens)} in · ${fmtInt(job.usage.outputTokens)} out · ${fmtUsd(job.usage.costUsd)}` : '—'))),
      h('section', { class: 'card' }, h('h2', { class: 'card__title' }, 'Input'),
        h('pre', { class: 'pre' }, job.input || ''),
        job.systemPrompt ? [h('h3', { class: 'card__subtitle' }, 'System prompt'), h('pre', { class: 'pre' }, job.systemPrompt)] : null,
        h('h2', { class: 'card__title' }, 'Result'),
        job.result ? h('pre', { class: 'pre' }, job.result) : h('p', { class: 'muted' }, ACTIVE.has(job.status) ? 'Not finished yet.' : 'No result.'))));
    const log = job.attemptsLog || [];
    const tbody = h('tbody');
    for (const a of log) {
      const k = a.keyId ? keys.get(a.keyId) : null;
      const dur = a.startedAt && a.finishedAt ? new Date(a.finishedAt) - new Date(a.startedAt) : null;
      tbody.append(h('tr', { class: ['attempt', a.outcome && a.outcome !== 'ok' ? 'attempt--failed' : null] },
        h('td', { 'data-label': 'Attempt' }, String(a.attempt)),
        h('td', { 'data-label': 'Provider' }, PROVIDER_NAMES[a.provider] || a.provider || '—'),
        h('td', { 'data-label': 'Key' }, k ? `${k.name || 'key'} ${k.maskedKey}` : (a.keyId ? `${a.keyId.slice(0, 8)}…` : '—')),
        h('td', { 'data-label': 'Model' }, a.model || '—'),
        h('td', { 'data-label': 'Started' }, fmtTime(a.startedAt)),
        h('td', { 'data-label': 'Took' }, dur === null ? '—' : fmtDuration(dur)),
        h('td', { 'data-label': 'Outcome' }, h('span', { class: ['outcome', `outcome--${(OUTCOMES[a.outcome] || [])[1] || 'muted'}`] }, (OUTCOMES[a.outcome] || [a.outcome || 'running…'])[0]),
          a.httpStatus ? h('span', { class: 'muted block' }, `HTTP ${a.httpStatus}`) : null),
        h('td', { 'data-label': 'Error', class: 'attempt__error' }, a.error || '')));
    }
    slot.append(h('section', { class: 'card' }, h('h2', { class: 'card__title' }, 'Attempts'),
      log.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table table--cards' },
        h('thead', {}, h('tr', {}, ['#', 'Provider', 'Key', 'Model', 'Started', 'Took', 'Outcome', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
        tbody)) : h('p', { class: 'muted' }, 'No attempt yet.')));
  }

  async function reloadJob() {
    const at = stamp();
    try {
      const job = await get(`${base}/jobs/${encodeURIComponent(ctx.id)}`);
      if (!ctx.alive() || !offer(at, job)) return;
      const focusInSlot = slot.contains(document.activeElement);
      show(job);
      if (focusInSlot) { const t = slot.querySelector('h1'); if (t) t.focus(); }
      announce(`Job is ${job.status}`);
    } catch (err) {
      if (ctx.alive() && !(err instanceof ApiError && err.status === 404)) toast(`Could not refresh the job: ${plainError(err)}`, 'error');
    }
  }
  for (const t of JOB_EVENTS) {
    ctx.on(t, (ev) => {
      if ((ev.jobId || (ev.job && ev.job.id)) === ctx.id) reloadJob();
    });
  }
  ctx.on('resync', reloadJob);
  // Listening first: an event during the load is not missed (offer keeps the newest read).
  await loadInto(slot, load, () => show(newest.job), { label: 'Loading the job…', alive: ctx.alive });
}
