// Audit log: who did what in the workspace, newest first.
import { h, replace, clear, timeEl, fmtTime } from '../dom.js';
import { get } from '../api.js';
import { pageHeader, loadInto, busy, errorBox, emptyState } from '../ui.js';

const ACTIONS = {
  'auth.login': 'Signed in',
  'auth.login_failed': 'Failed sign-in',
  'auth.logout': 'Signed out',
  'key.created': 'Key added',
  'key.updated': 'Key changed',
  'key.rotated': 'Key rotated',
  'key.deleted': 'Key deleted',
  'key.tested': 'Key tested',
  'key.reordered': 'Keys reordered',
  'key.status_changed': 'Key status changed',
  'settings.updated': 'Routing changed',
  'providers.updated': 'Routing changed',
  'token.created': 'API token created',
  'token.deleted': 'API token revoked',
  'member.added': 'Member added',
  'member.updated': 'Member role changed',
  'member.removed': 'Member removed',
  'workspace.created': 'Workspace created',
  'schedule.created': 'Schedule created',
  'schedule.updated': 'Schedule changed',
  'schedule.deleted': 'Schedule deleted',
  'notification.created': 'Notification target added',
  'notification.deleted': 'Notification target removed',
};

function detailText(d) {
  if (!d || typeof d !== 'object') return '';
  return Object.entries(d).map(([k, v]) => `${k}: ${v !== null && typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
}

export async function render(ctx) {
  const { root, base } = ctx;
  root.append(pageHeader('Audit log', 'Who changed what in this workspace. Secrets are never recorded.'));
  const search = h('input', { type: 'search', id: 'audit-search', placeholder: 'action, person, detail…' });
  root.append(h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log', onsubmit: (e) => e.preventDefault() },
    h('div', { class: 'filters__item filters__item--grow' }, h('label', { for: 'audit-search' }, 'Filter the loaded entries'), search)));
  const listSlot = h('div');
  const more = h('div', { class: 'load-more' });
  root.append(listSlot, more);
  const st = { entries: [], next: null };
  search.addEventListener('input', renderRows);

  function renderRows() {
    const t = search.value.trim().toLowerCase();
    const shown = st.entries.filter((e) => !t || [e.action, ACTIONS[e.action], e.actor && e.actor.label, e.target, detailText(e.detail), e.ip]
      .join(' ').toLowerCase().includes(t));
    if (!shown.length) {
      replace(listSlot, emptyState(st.entries.length ? 'No entry matches.' : 'Nothing recorded yet.'));
      return;
    }
    const tbody = h('tbody');
    for (const e of shown) {
      const failed = /fail|denied/.test(e.action) || (e.detail && (e.detail.outcome === 'invalid' || e.detail.valid === false));
      tbody.append(h('tr', { class: failed ? 'is-bad' : null },
        h('td', { 'data-label': 'When' }, timeEl(e.at), h('span', { class: 'muted block' }, fmtTime(e.at))),
        h('td', { 'data-label': 'Who' }, (e.actor && e.actor.label) || (e.actor && e.actor.id) || '—', e.actor ? h('span', { class: 'muted block' }, e.actor.type) : null),
        h('td', { 'data-label': 'Action' }, ACTIONS[e.action] || e.action, h('code', { class: 'muted block small' }, e.action)),
        h('td', { 'data-label': 'Details', class: 'audit__detail' }, detailText(e.detail) || h('span', { class: 'muted' }, '—')),
        h('td', { 'data-label': 'From' }, e.ip || '—')));
    }
    replace(listSlot, h('div', { class: 'table-wrap' }, h('table', { class: 'table table--cards' },
      h('caption', { class: 'visually-hidden' }, 'Audit log, newest first'),
      h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'Details', 'From'].map((x) => h('th', { scope: 'col' }, x)))),
      tbody)));
  }

  function renderMore() {
    clear(more);
    if (!st.next) return;
    const b = h('button', { type: 'button', class: 'btn' }, 'Load older entries');
    b.addEventListener('click', async () => {
      try {
        const r = await busy(b, 'Loading…', () => get(`${base}/audit?limit=100&before=${encodeURIComponent(st.next)}`));
        st.entries.push(...(r.entries || []));
        st.next = r.nextCursor || null;
        renderRows();
        renderMore();
      } catch (err) {
        more.append(errorBox(err));
      }
    });
    more.append(b);
  }

  async function load() {
    await loadInto(listSlot, () => get(`${base}/audit?limit=100`), (r) => {
      st.entries = r.entries || [];
      st.next = r.nextCursor || null;
      renderRows();
      renderMore();
    }, { label: 'Loading the audit log…', alive: ctx.alive });
  }
  await load();
}
