// Members of the workspace and their roles.
import { h, replace, clear, timeEl } from '../dom.js';
import { getAll, post, patch, del, plainError, ApiError } from '../api.js';
import { pageHeader, loadInto, busy, toast, announce, confirmDialog, field, inlineError,
  roleBadge, emptyState } from '../ui.js';

const ROLES = [
  ['admin', 'Admin — everything, keys and members included'],
  ['member', 'Member — chats, jobs and schedules; reads the rest'],
  ['viewer', 'Viewer — read only'],
];

export async function render(ctx) {
  const { root, base, isAdmin, me } = ctx;
  const isInstanceAdmin = !!(me.user && me.user.isInstanceAdmin);
  root.append(pageHeader('Members', 'People with access to this workspace. Admins manage keys, routing, members and tokens; members use chats, jobs and schedules; viewers only read.'));
  const formSlot = h('div');
  const listSlot = h('div');
  root.append(formSlot, listSlot);
  const st = { members: [], rowErrors: new Map() };

  if (isAdmin) formSlot.append(addForm());

  function addForm() {
    const email = h('input', { type: 'email', autocomplete: 'off', required: true });
    const role = h('select', {}, ROLES.map(([v, t]) => h('option', { value: v, selected: v === 'member' }, t)));
    const fEmail = field({ label: 'E-mail of an existing account', input: email });
    const fRole = field({ label: 'Role', input: role });
    const submit = h('button', { type: 'submit', class: 'btn btn--primary' }, 'Add member');
    const errSlot = h('div');
    const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Add a member' },
      h('h2', { class: 'card__title' }, 'Add a member'),
      h('div', { class: 'inline-form__row' }, fEmail.wrap, fRole.wrap, h('div', { class: 'inline-form__submit' }, submit)),
      errSlot);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(errSlot);
      fEmail.setError(null);
      if (!email.value.trim()) { fEmail.setError('Enter the e-mail address of the account to add.'); email.focus(); return; }
      try {
        const m = await busy(submit, 'Adding…', () => post(`${base}/members`, { email: email.value.trim(), role: role.value }));
        email.value = '';
        upsert(m);
        renderList();
        toast(`${m.name || m.email} added as ${m.role}.`);
      } catch (err) {
        let msg = plainError(err);
        if (err instanceof ApiError && err.status === 404) {
          msg = isInstanceAdmin ? 'There is no account with this e-mail. Create it below, then add it.'
            : 'There is no account with this e-mail. An instance admin has to create it first.';
        } else if (err instanceof ApiError && err.status === 409) {
          msg = 'This person is a member already. Change their role in the list below.';
        }
        if (err.field === 'email' || (err instanceof ApiError && err.status === 404)) fEmail.setError(msg);
        else errSlot.append(inlineError(msg));
        email.focus();
      }
    });
    return h('div', { class: 'card members-add' }, form, isInstanceAdmin ? userForm(email) : null);
  }

  // Instance admins can create an account (POST /api/users) without leaving the page.
  function userForm(emailForAdd) {
    const name = h('input', { type: 'text', autocomplete: 'off' });
    const email = h('input', { type: 'email', autocomplete: 'off' });
    const pw = h('input', { type: 'password', autocomplete: 'new-password', minlength: '12' });
    const fName = field({ label: 'Name', input: name });
    const fEmail = field({ label: 'E-mail', input: email });
    const fPw = field({ label: 'Initial password', input: pw, hint: 'At least 12 characters; tell it to the person safely.' });
    const create = h('button', { type: 'submit', class: 'btn' }, 'Create account');
    const errSlot = h('div');
    const sub = h('form', { class: 'inline-form__row', novalidate: true, 'aria-label': 'Create an account' }, fName.wrap, fEmail.wrap, fPw.wrap, h('div', { class: 'inline-form__submit' }, create));
    sub.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(errSlot);
      for (const f of [fName, fEmail, fPw]) f.setError(null);
      try {
        const u = await busy(create, 'Creating…', () => post('/api/users', { name: name.value.trim(), email: email.value.trim(), password: pw.value }));
        pw.value = '';
        emailForAdd.value = u.email;
        toast(`Account ${u.email} created: choose the role and add it.`);
        emailForAdd.focus();
      } catch (err) {
        const set = { name: fName.setError, email: fEmail.setError, password: fPw.setError }[err.field];
        if (set) set(plainError(err)); else errSlot.append(inlineError(err));
      }
    });
    return h('details', { class: 'subform' }, h('summary', {}, 'No account yet? Create one (instance admin)'), sub, errSlot);
  }

  // No longer a member (removed meanwhile by someone else): the row goes.
  function gone(m) {
    st.members = st.members.filter((x) => x.userId !== m.userId);
    toast(`${m.name || m.email} is no longer a member: removed meanwhile.`);
    renderList();
  }

  function upsert(m) {
    const i = st.members.findIndex((x) => x.userId === m.userId);
    if (i >= 0) st.members[i] = m; else st.members.push(m);
  }

  function renderList() {
    if (!st.members.length) {
      replace(listSlot, emptyState('No members.'));
      return;
    }
    const tbody = h('tbody');
    for (const m of st.members) tbody.append(row(m));
    replace(listSlot, h('div', { class: 'table-wrap' }, h('table', { class: 'table table--cards' },
      h('caption', { class: 'visually-hidden' }, 'Members'),
      h('thead', {}, h('tr', {}, ['Name', 'E-mail', 'Role', 'Member since', isAdmin ? '' : null].filter((x) => x !== null).map((t) => h('th', { scope: 'col' }, t)))),
      tbody)));
  }

  function row(m) {
    const isMe = me.user && me.user.id === m.userId;
    const err = st.rowErrors.get(m.userId);
    let roleCell = roleBadge(m.role);
    let actions = null;
    if (isAdmin) {
      const sel = h('select', { 'aria-label': `Role of ${m.name || m.email}` }, ROLES.map(([v]) => h('option', { value: v, selected: v === m.role }, v)));
      sel.addEventListener('change', async () => {
        const old = m.role;
        sel.disabled = true;
        try {
          const u = await patch(`${base}/members/${encodeURIComponent(m.userId)}`, { role: sel.value });
          st.rowErrors.delete(m.userId);
          upsert({ ...m, ...(u || {}), role: (u && u.role) || sel.value });
          announce(`${m.name || m.email} is now ${sel.value}`);
          toast(`${m.name || m.email} is now ${sel.value}.`);
          if (isMe) {     // one's own role: the pages show what it allows now
            await ctx.reloadAccount();
            return;
          }
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) {
            if (isMe) await ctx.reloadAccount();   // removed from the workspace meanwhile
            else gone(m);
            return;
          }
          st.rowErrors.set(m.userId, e instanceof ApiError && e.status === 409 ? 'A workspace needs at least one admin: make someone else admin first.' : plainError(e));
          sel.value = old;
        }
        renderList();
        const again = listSlot.querySelector(`[data-user-id="${CSS.escape(m.userId)}"] select`);
        if (again) again.focus();
      });
      roleCell = sel;
      const rm = h('button', { type: 'button', class: 'btn btn--small btn--ghost btn--danger-text' }, isMe ? 'Leave' : 'Remove');
      rm.addEventListener('click', async () => {
        const ok = await confirmDialog({
          title: isMe ? 'Leave this workspace?' : `Remove ${m.name || m.email}?`,
          body: h('p', {}, isMe ? 'You lose access to this workspace at once.' : `${m.email} loses access to this workspace at once. Their account stays.`),
          confirmLabel: isMe ? 'Leave' : 'Remove', danger: true });
        if (!ok) return;
        try {
          await busy(rm, 'Removing…', () => del(`${base}/members/${encodeURIComponent(m.userId)}`));
          st.members = st.members.filter((x) => x.userId !== m.userId);
          toast(`${m.name || m.email} removed.`);
          if (isMe) { location.hash = '#/'; location.reload(); return; }
          renderList();
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) {
            if (isMe) await ctx.reloadAccount();
            else gone(m);
            return;
          }
          st.rowErrors.set(m.userId, e instanceof ApiError && e.status === 409 ? 'A workspace needs at least one admin: this is the last one.' : plainError(e));
          renderList();
        }
      });
      actions = rm;
    }
    return h('tr', { 'data-user-id': m.userId },
      h('td', { 'data-label': 'Name' }, m.name || '—', isMe ? h('span', { class: 'chip chip--muted' }, 'you') : null,
        err ? h('span', { class: 'job-error', role: 'alert' }, err) : null),
      h('td', { 'data-label': 'E-mail' }, m.email),
      h('td', { 'data-label': 'Role' }, roleCell),
      h('td', { 'data-label': 'Member since' }, timeEl(m.createdAt)),
      isAdmin ? h('td', { 'data-label': 'Actions' }, actions) : null);
  }

  await loadInto(listSlot, () => getAll(`${base}/members`, 'members'), (r) => {
    st.members = r.members || [];
    renderList();
  }, { label: 'Loading members…', alive: ctx.alive });
}
