// Workspace API tokens: create (the secret is shown once, with a copy button), list, revoke.
import { h, replace, clear, timeEl } from '../dom.js';
import { getAll, post, del, plainError, ApiError } from '../api.js';
import { pageHeader, loadInto, busy, toast, announce, confirmDialog, field, inlineError,
  roleBadge, emptyState, copyButton } from '../ui.js';

export async function render(ctx) {
  const { root, base, isAdmin } = ctx;
  root.append(pageHeader('API tokens', 'Tokens let programs use this workspace’s API: send them as “Authorization: Bearer krt_…”. A token has a role, like a member.'));
  const secretSlot = h('div', { class: 'secret-slot' });
  const formSlot = h('div');
  const listSlot = h('div');
  root.append(secretSlot, formSlot, listSlot);
  const st = { tokens: [], rowErrors: new Map(),
    writes: 0 };            // changes made here: a list asked for before one is out of date

  if (isAdmin) formSlot.append(createForm());

  function createForm() {
    const name = h('input', { type: 'text', autocomplete: 'off', maxlength: '100', placeholder: 'e.g. CI deploy' });
    const role = h('select', {},
      h('option', { value: 'member' }, 'Member — create chats, jobs and schedules'),
      h('option', { value: 'viewer' }, 'Viewer — read only'),
      h('option', { value: 'admin' }, 'Admin — everything, keys included'));
    const fName = field({ label: 'Name', input: name, hint: 'Says where the token is used.' });
    const fRole = field({ label: 'Role', input: role });
    const submit = h('button', { type: 'submit', class: 'btn btn--primary' }, 'Create token');
    const errSlot = h('div');
    const form = h('form', { class: 'card inline-form', novalidate: true, 'aria-label': 'Create a token' },
      h('h2', { class: 'card__title' }, 'New token'),
      h('div', { class: 'inline-form__row' }, fName.wrap, fRole.wrap, h('div', { class: 'inline-form__submit' }, submit)),
      errSlot);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(errSlot);
      fName.setError(null);
      fRole.setError(null);
      if (!name.value.trim()) { fName.setError('Give the token a name.'); name.focus(); return; }
      try {
        const t = await busy(submit, 'Creating…', () => post(`${base}/tokens`, { name: name.value.trim(), role: role.value }));
        name.value = '';
        showSecret(t);
        const listed = { ...t };
        delete listed.secret;
        st.writes++;
        st.tokens.unshift(listed);
        renderList();
      } catch (err) {
        if (err.field === 'name') fName.setError(plainError(err));
        else if (err.field === 'role') fRole.setError(plainError(err));
        else errSlot.append(inlineError(err));
      }
    });
    return form;
  }

  function showSecret(t) {
    const out = h('input', { type: 'text', readonly: true, class: 'mono secret__value', 'aria-label': `Secret of the token ${t.name}`, value: t.secret });
    out.addEventListener('focus', () => out.select());
    const done = h('button', { type: 'button', class: 'btn' }, 'Done, I have stored it');
    const box = h('section', { class: 'secret', role: 'region', 'aria-labelledby': 'secret-title' },
      h('h2', { id: 'secret-title', class: 'secret__title' }, `Token “${t.name}” created`),
      h('p', {}, h('strong', {}, 'Copy it now: it is shown this once and cannot be shown again.'), ' Store it like a password.'),
      h('div', { class: 'secret__row' }, out, copyButton(() => t.secret, 'Copy token')),
      h('div', { class: 'form-actions' }, done));
    done.addEventListener('click', () => {
      out.value = '';
      clear(secretSlot);
      const first = formSlot.querySelector('input');
      if (first) first.focus();
    });
    replace(secretSlot, box);
    out.focus();
    announce('Token created. Copy it now: it is shown only once.');
  }

  function renderList() {
    if (!st.tokens.length) {
      replace(listSlot, emptyState('No tokens yet.', isAdmin ? 'Create one above for a script or another service.' : null));
      return;
    }
    const tbody = h('tbody');
    for (const t of st.tokens) tbody.append(row(t));
    replace(listSlot, h('div', { class: 'table-wrap' }, h('table', { class: 'table table--cards' },
      h('caption', { class: 'visually-hidden' }, 'API tokens'),
      h('thead', {}, h('tr', {}, ['Name', 'Role', 'Starts with', 'Created', 'Last used', isAdmin ? '' : null].filter((x) => x !== null).map((x) => h('th', { scope: 'col' }, x)))),
      tbody)));
  }

  function row(t) {
    const err = st.rowErrors.get(t.id);
    let actions = null;
    if (isAdmin) {
      actions = h('button', { type: 'button', class: 'btn btn--small btn--ghost btn--danger-text', 'aria-label': `Revoke ${t.name}` }, 'Revoke');
      actions.addEventListener('click', async () => {
        const ok = await confirmDialog({ title: `Revoke “${t.name}”?`, body: h('p', {}, 'Programs using it are refused from their next request on. This cannot be undone.'), confirmLabel: 'Revoke token', danger: true });
        if (!ok) return;
        try {
          await busy(actions, 'Revoking…', () => del(`${base}/tokens/${encodeURIComponent(t.id)}`));
          toast(`Token “${t.name}” revoked.`);
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) {
            st.rowErrors.set(t.id, `Not revoked: ${plainError(e)}`);
            renderList();
            return;
          }
          toast(`Token “${t.name}” was already revoked.`);
        }
        st.writes++;
        st.tokens = st.tokens.filter((x) => x.id !== t.id);
        renderList();
      });
    }
    return h('tr', { 'data-token-id': t.id },
      h('td', { 'data-label': 'Name' }, t.name, err ? h('span', { class: 'job-error', role: 'alert' }, err) : null),
      h('td', { 'data-label': 'Role' }, roleBadge(t.role)),
      h('td', { 'data-label': 'Starts with' }, h('code', {}, `${t.prefix}…`)),
      h('td', { 'data-label': 'Created' }, timeEl(t.createdAt)),
      h('td', { 'data-label': 'Last used' }, timeEl(t.lastUsedAt)),
      isAdmin ? h('td', { 'data-label': 'Actions' }, actions) : null);
  }

  await loadInto(listSlot, async () => {
    for (;;) {    // again when a token was made or revoked here while the list was asked for
      const w = st.writes;
      const r = await getAll(`${base}/tokens`, 'tokens');
      if (st.writes === w) return r;
    }
  }, (r) => {
    st.tokens = r.tokens || [];
    renderList();
  }, { label: 'Loading tokens…', alive: ctx.alive });
}
