// Schedules: recurring jobs (5-field cron in a time zone) that post into a chat.
import { h, replace, clear, timeEl, fmtTime, truncate } from '../dom.js';
import { getAll, post, patch, del, plainError, ApiError } from '../api.js';
import { pageHeader, loadInto, busy, toast, announce, confirmDialog, field, inlineError,
  emptyState } from '../ui.js';

const PRESETS = [
  ['*/15 * * * *', 'Every 15 minutes'],
  ['0 * * * *', 'Every hour'],
  ['0 9 * * *', 'Every day at 09:00'],
  ['0 9 * * 1-5', 'Weekdays at 09:00'],
  ['0 9 * * 1', 'Mondays at 09:00'],
  ['0 0 1 * *', 'First day of the month at 00:00'],
];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

// A plain-words reading of common cron expressions; the expression itself otherwise.
export function cronText(expr) {
  const f = String(expr || '').trim().split(/\s+/);
  if (f.length !== 5) return expr;
  const [mi, ho, dom, mon, dow] = f;
  const pad = (x) => String(x).padStart(2, '0');
  const isNum = (x) => /^\d+$/.test(x);
  if ((isNum(mi) && Number(mi) > 59) || (isNum(ho) && Number(ho) > 23)) return expr;
  let m;
  if ((m = /^\*\/(\d+)$/.exec(mi)) && ho === '*' && dom === '*' && mon === '*' && dow === '*') return `every ${m[1]} minutes`;
  if (mi === '*' && ho === '*' && dom === '*' && mon === '*' && dow === '*') return 'every minute';
  if (isNum(mi) && ho === '*' && dom === '*' && mon === '*' && dow === '*') return `every hour at :${pad(mi)}`;
  if (isNum(mi) && (m = /^\*\/(\d+)$/.exec(ho)) && dom === '*' && mon === '*' && dow === '*') return `every ${m[1]} hours at :${pad(mi)}`;
  if (isNum(mi) && isNum(ho) && mon === '*') {
    const at = `${pad(ho)}:${pad(mi)}`;
    if (dom === '*' && dow === '*') return `every day at ${at}`;
    if (dom === '*' && /^[\d,-]+$/.test(dow)) {
      const days = dow.split(',').map((part) => {
        const r = part.split('-').map(Number);
        return r.length === 2 ? `${DAYS[r[0]]}–${DAYS[r[1]]}` : DAYS[r[0]];
      });
      return `${days.join(', ')} at ${at}`;
    }
    if (isNum(dom) && dow === '*') return `day ${dom} of every month at ${at}`;
  }
  return expr;
}

function timezones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['UTC', 'Europe/Berlin', 'Europe/London', 'America/New_York', 'Asia/Tokyo'];
  }
}

export async function render(ctx) {
  const { root, base } = ctx;
  const st = { schedules: [], chats: [], rowErrors: new Map(), editing: null,
    writes: 0 };            // changes made here: a list asked for before one is out of date
  // Enabled once the chats are loaded: the form offers them as where the answers go.
  const newBtn = ctx.isMember ? h('button', { type: 'button', class: 'btn btn--primary', 'aria-expanded': 'false', disabled: true }, '+ New schedule') : null;
  root.append(pageHeader('Schedules', 'Jobs that run by themselves, at times given in cron form, in a time zone. Their answers go to a chat.', newBtn));
  const formSlot = h('div');
  const listSlot = h('div');
  root.append(formSlot, listSlot);
  if (newBtn) newBtn.addEventListener('click', () => openForm(null));

  function chatTitle(id) {
    const c = st.chats.find((x) => x.id === id);
    return c ? c.title : 'a chat';
  }

  function openForm(s) {
    st.editing = s ? s.id : 'new';
    if (newBtn) newBtn.setAttribute('aria-expanded', String(!s));
    replace(formSlot, scheduleForm(s));
    const first = formSlot.querySelector('input, textarea, select');
    if (first) first.focus();
    formSlot.scrollIntoView({ block: 'nearest' });
  }
  function closeForm(focusId) {
    st.editing = null;
    if (newBtn) newBtn.setAttribute('aria-expanded', 'false');
    clear(formSlot);
    const target = focusId ? listSlot.querySelector(`[data-schedule-id="${CSS.escape(focusId)}"] .sched-edit`) : newBtn;
    if (target) target.focus();
  }

  function scheduleForm(s) {
    const isNew = !s;
    const desc = h('input', { type: 'text', value: s ? s.description : '', maxlength: '200', required: true });
    const cron = h('input', { type: 'text', value: s ? s.cron : '0 9 * * 1-5', required: true, spellcheck: 'false', class: 'mono', autocomplete: 'off' });
    const cronReading = h('strong', {}, cronText(cron.value));
    const cronHint = h('span', {}, 'minute hour day month weekday · ', cronReading);
    const presets = h('select', { 'aria-label': 'Common schedules' }, h('option', { value: '' }, 'Common schedules…'),
      PRESETS.map(([v, t]) => h('option', { value: v }, `${t}  (${v})`)));
    presets.addEventListener('change', () => { if (presets.value) { cron.value = presets.value; cronReading.textContent = cronText(cron.value); cron.focus(); } });
    cron.addEventListener('input', () => { cronReading.textContent = cronText(cron.value); });
    const tzListId = 'tz-list';
    const tz = h('input', { type: 'text', value: s ? s.timezone : (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'), list: tzListId, required: true, autocomplete: 'off', spellcheck: 'false' });
    const tzList = h('datalist', { id: tzListId }, timezones().map((z) => h('option', { value: z })));
    const chatSel = h('select', { required: true });
    chatSel.append(h('option', { value: '__new__' }, '+ A new chat named after the description'));
    for (const c of st.chats) chatSel.append(h('option', { value: c.id, selected: s && s.chatId === c.id }, c.title || 'Untitled'));
    // An edit keeps the schedule's chat, listed or not: never a new chat by default.
    if (s && !st.chats.some((c) => c.id === s.chatId)) {
      chatSel.append(h('option', { value: s.chatId, selected: true }, 'Its current chat'));
    }
    if (!s && st.chats.length) chatSel.value = st.chats[0].id;
    const input = h('textarea', { rows: '3', required: true });
    input.value = s ? s.input : '';
    const sys = h('textarea', { rows: '2' });
    sys.value = s && s.systemPrompt ? s.systemPrompt : '';
    const enabled = h('input', { type: 'checkbox', id: 'sched-enabled', checked: s ? s.enabled : true });
    const f = {
      description: field({ label: 'Description', input: desc, hint: 'Shown on the jobs it makes.' }),
      cron: field({ label: 'When (cron)', input: cron, hint: cronHint }),
      timezone: field({ label: 'Time zone', input: tz, hint: 'IANA name, e.g. Europe/Berlin.' }),
      chatId: field({ label: 'Answers go to', input: chatSel }),
      input: field({ label: 'Prompt', input, hint: 'Sent to the provider each time.' }),
      systemPrompt: field({ label: 'System prompt (optional)', input: sys }),
    };
    const errSlot = h('div');
    const save = h('button', { type: 'submit', class: 'btn btn--primary' }, isNew ? 'Create schedule' : 'Save changes');
    const cancel = h('button', { type: 'button', class: 'btn', onclick: () => closeForm(s && s.id) }, 'Cancel');
    const form = h('form', { class: 'card sched-form', novalidate: true, 'aria-label': isNew ? 'New schedule' : `Edit ${s.description}` },
      h('h2', { class: 'card__title' }, isNew ? 'New schedule' : `Edit “${s.description}”`),
      h('div', { class: 'form-grid' }, f.description.wrap,
        h('div', { class: 'field-combo' }, f.cron.wrap, presets), f.timezone.wrap, f.chatId.wrap),
      tzList, f.input.wrap, f.systemPrompt.wrap,
      h('div', { class: 'check' }, enabled, h('label', { for: 'sched-enabled' }, 'Enabled')),
      errSlot, h('div', { class: 'form-actions' }, save, cancel));
    form.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); closeForm(s && s.id); } });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(errSlot);
      for (const x of Object.values(f)) x.setError(null);
      let bad = false;
      if (!desc.value.trim()) { f.description.setError('Give the schedule a description.'); bad = true; }
      if (!cron.value.trim()) { f.cron.setError('Give a cron expression, e.g. 0 9 * * 1-5.'); bad = true; }
      if (!input.value.trim()) { f.input.setError('Write the prompt to send.'); bad = true; }
      if (bad) { form.querySelector('[aria-invalid="true"]').focus(); return; }
      try {
        await busy(save, isNew ? 'Creating…' : 'Saving…', async () => {
          let chatId = chatSel.value;
          if (chatId === '__new__') {
            const c = await post(`${base}/chats`, { title: desc.value.trim() });
            st.chats.unshift(c);
            chatId = c.id;
            // Made: a refused schedule sent again goes to this chat, not to yet another.
            chatSel.append(h('option', { value: c.id }, c.title || 'Untitled'));
            chatSel.value = c.id;
          }
          const body = { description: desc.value.trim(), cron: cron.value.trim(), timezone: tz.value.trim(),
            input: input.value, chatId, systemPrompt: sys.value.trim() || null, enabled: enabled.checked };
          const saved = isNew ? await post(`${base}/schedules`, body)
            : await patch(`${base}/schedules/${encodeURIComponent(s.id)}`, body);
          upsert(saved);
          renderList();
          toast(isNew ? 'Schedule created.' : 'Schedule saved.');
          closeForm(saved.id);
        });
      } catch (err) {
        const target = f[err.field];
        if (target) { target.setError(plainError(err)); target.input.focus(); } else errSlot.append(inlineError(err));
      }
    });
    return form;
  }

  // Deleted meanwhile (by someone else): the row goes.
  function gone(s) {
    st.writes++;
    st.schedules = st.schedules.filter((x) => x.id !== s.id);
    toast(`“${s.description}” no longer exists: it was deleted meanwhile.`);
    renderList();
    if (newBtn) newBtn.focus();
  }

  function upsert(s) {
    st.writes++;
    const i = st.schedules.findIndex((x) => x.id === s.id);
    if (i >= 0) st.schedules[i] = s;
    else st.schedules.unshift(s);
  }

  function renderList() {
    if (!st.schedules.length) {
      replace(listSlot, emptyState('No schedules yet.', ctx.isMember ? 'Create one to run a prompt regularly, e.g. a morning summary.' : null));
      return;
    }
    const tbody = h('tbody');
    for (const s of st.schedules) tbody.append(row(s));
    replace(listSlot, h('div', { class: 'table-wrap' }, h('table', { class: 'table table--cards' },
      h('caption', { class: 'visually-hidden' }, 'Schedules'),
      h('thead', {}, h('tr', {}, ['Schedule', 'When', 'Next run', 'Last run', 'Answers go to', 'Enabled', ''].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)));
  }

  function row(s) {
    const err = st.rowErrors.get(s.id);
    const toggle = h('button', { type: 'button', class: ['switch', s.enabled ? 'is-on' : null], role: 'switch', 'aria-checked': String(!!s.enabled), 'aria-label': `Enabled: ${s.description}`, disabled: !ctx.isMember },
      h('span', { class: 'switch__knob', 'aria-hidden': 'true' }), h('span', { class: 'switch__text' }, s.enabled ? 'On' : 'Off'));
    toggle.addEventListener('click', async () => {
      try {
        const saved = await busy(toggle, '…', () => patch(`${base}/schedules/${encodeURIComponent(s.id)}`, { enabled: !s.enabled }));
        st.rowErrors.delete(s.id);
        upsert(saved || { ...s, enabled: !s.enabled });
        announce(`${s.description} ${!s.enabled ? 'enabled' : 'disabled'}`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          gone(s);
          return;
        }
        st.rowErrors.set(s.id, plainError(e));
      }
      renderList();
      const t = listSlot.querySelector(`[data-schedule-id="${CSS.escape(s.id)}"] .switch`);
      if (t) t.focus();
    });
    const edit = ctx.isMember ? h('button', { type: 'button', class: 'btn btn--small sched-edit', onclick: () => openForm(s) }, 'Edit') : null;
    const remove = ctx.isMember ? h('button', { type: 'button', class: 'btn btn--small btn--ghost btn--danger-text' }, 'Delete') : null;
    if (remove) {
      remove.addEventListener('click', async () => {
        const ok = await confirmDialog({ title: `Delete “${s.description}”?`, body: h('p', {}, 'It stops making jobs. Jobs it already made are kept.'), confirmLabel: 'Delete schedule', danger: true });
        if (!ok) return;
        try {
          await busy(remove, 'Deleting…', () => del(`${base}/schedules/${encodeURIComponent(s.id)}`));
          st.writes++;
          st.schedules = st.schedules.filter((x) => x.id !== s.id);
          toast('Schedule deleted.');
          renderList();
          if (newBtn) newBtn.focus();
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) {
            gone(s);
            return;
          }
          st.rowErrors.set(s.id, `Not deleted: ${plainError(e)}`);
          renderList();
        }
      });
    }
    return h('tr', { 'data-schedule-id': s.id, class: s.enabled ? null : 'is-disabled' },
      h('td', { 'data-label': 'Schedule' }, h('strong', {}, s.description), h('span', { class: 'muted block' }, truncate(s.input, 100)),
        err ? h('span', { class: 'job-error', role: 'alert' }, err) : null),
      h('td', { 'data-label': 'When' }, h('span', {}, cronText(s.cron)), h('span', { class: 'muted block mono' }, `${s.cron} · ${s.timezone}`)),
      h('td', { 'data-label': 'Next run' }, s.enabled && s.nextRunAt ? [timeEl(s.nextRunAt), h('span', { class: 'muted block' }, fmtTime(s.nextRunAt, s.timezone))] : h('span', { class: 'muted' }, s.enabled ? '—' : 'paused')),
      h('td', { 'data-label': 'Last run' }, timeEl(s.lastRunAt)),
      h('td', { 'data-label': 'Answers go to' }, h('a', { href: ctx.href('chats', s.chatId) }, chatTitle(s.chatId))),
      h('td', { 'data-label': 'Enabled' }, toggle),
      h('td', { 'data-label': 'Actions' }, h('span', { class: 'row-actions' }, edit, remove)));
  }

  // The list, asked again while changes made here meanwhile may be missing from it.
  async function fetchSchedules() {
    for (;;) {
      const w = st.writes;
      const r = await getAll(`${base}/schedules`, 'schedules');
      if (st.writes === w) return r;
    }
  }

  await loadInto(listSlot, async () => {
    const [s, c] = await Promise.all([fetchSchedules(), getAll(`${base}/chats`, 'chats')]);
    return { s, c };
  }, ({ s, c }) => {
    st.schedules = s.schedules || [];
    st.chats = c.chats || [];
    st.loaded = true;
    if (newBtn) newBtn.disabled = false;
    renderList();
  }, { label: 'Loading schedules…', alive: ctx.alive });

  // Next runs move on by themselves: re-read when a schedule-made job is queued.
  ctx.on('job_queued', async (ev) => {
    if (!ev.job || !ev.job.scheduleId || st.editing || !st.loaded) return;
    try {
      const r = await fetchSchedules();
      if (ctx.alive() && !st.editing) { st.schedules = r.schedules || []; renderList(); }
    } catch { /* keep the list */ }
  });
  const tick = setInterval(() => { if (st.loaded && !st.editing && !listSlot.contains(document.activeElement)) renderList(); }, 30000);
  ctx.onCleanup(() => clearInterval(tick));
}
