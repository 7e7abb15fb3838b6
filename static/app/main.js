// keyrelay admin pages: the app shell (session, workspace switcher, navigation, live events)
// and the hash router. Routes: #/login, #/w/<workspace>/<page>[/<id>].
import { h, replace, clear } from './dom.js';
import { get, post, setCsrf, onUnauthorized, plainError, ApiError } from './api.js';
import { LiveEvents } from './events.js';
import { field, busy, inlineError, toast, roleBadge, errorBox } from './ui.js';
import * as providers from './pages/providers.js';
import * as jobs from './pages/jobs.js';
import * as chats from './pages/chats.js';
import * as schedules from './pages/schedules.js';
import * as usage from './pages/usage.js';
import * as audit from './pages/audit.js';
import * as members from './pages/members.js';
import * as tokens from './pages/tokens.js';

const PAGES = [
  { id: 'providers', title: 'Providers & keys', mod: providers },
  { id: 'jobs', title: 'Jobs', mod: jobs },
  { id: 'chats', title: 'Chats', mod: chats },
  { id: 'schedules', title: 'Schedules', mod: schedules },
  { id: 'usage', title: 'Usage', mod: usage },
  { id: 'audit', title: 'Audit log', mod: audit },
  { id: 'members', title: 'Members', mod: members },
  { id: 'tokens', title: 'API tokens', mod: tokens },
];
const ROLE_RANK = { viewer: 0, member: 1, admin: 2 };
const LAST_WS = 'keyrelay.lastWorkspace';

const state = {
  me: null,             // answer of login / me
  ws: null,             // current workspace slug
  events: null,         // LiveEvents of the current workspace
  cleanups: [],         // of the page on screen
  renderSeq: 0,
  returnTo: null,       // route to go back to after signing in again
  loginNotice: null,
};

const root = document.getElementById('app');

function decodePart(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;          // a malformed escape: the link is broken, not the page
  }
}

function parseRoute() {
  const raw = (location.hash || '').replace(/^#\/?/, '');
  const parts = raw.split('/').filter(Boolean).map(decodePart);
  if (parts.includes(null)) return { name: 'home' };
  if (parts[0] === 'login') return { name: 'login' };
  if (parts[0] === 'w' && parts[1]) {
    return { name: 'page', ws: parts[1], page: parts[2] || 'providers', id: parts[3] || null, rest: parts.slice(3) };
  }
  return { name: 'home' };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function workspaces() {
  return (state.me && state.me.workspaces) || [];
}

function defaultWs() {
  const ws = workspaces();
  const last = localStorage.getItem(LAST_WS);
  if (last && ws.some((w) => w.slug === last)) return last;
  return ws.length ? ws[0].slug : null;
}

// Tear the page on screen down: its cleanups run, and its ctx.alive() turns false.
function runCleanups() {
  state.renderSeq++;
  for (const fn of state.cleanups.splice(0)) {
    try { fn(); } catch (e) { console.error(e); }
  }
}

function stopEvents() {
  if (state.events) state.events.stop();
  state.events = null;
  if (shell) shell.live.set({ state: 'off', text: 'No live updates' });
}

function sessionEnded() {
  if (!state.me) return;
  state.me = null;
  setCsrf(null);
  stopEvents();
  runCleanups();
  state.loginNotice = 'Your session has ended. Please sign in again.';
  const r = parseRoute();
  if (r.name !== 'login') state.returnTo = location.hash;
  navigate('#/login');
}
onUnauthorized(sessionEnded);

// ---- login -------------------------------------------------------------------------------

function renderLogin() {
  runCleanups();
  stopEvents();
  document.title = 'Sign in · keyrelay';
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const fEmail = field({ label: 'E-mail', input: email, id: 'login-email' });
  const fPass = field({ label: 'Password', input: password, id: 'login-password' });
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block' }, 'Sign in');
  const errSlot = h('div', { class: 'login__error' });
  const form = h('form', { class: 'login__form', novalidate: true, 'aria-labelledby': 'login-title' },
    state.loginNotice ? h('p', { class: 'alert alert--info', role: 'status' }, state.loginNotice) : null,
    fEmail.wrap, fPass.wrap, errSlot, submit);
  state.loginNotice = null;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    fEmail.setError(null);
    fPass.setError(null);
    if (!email.value.trim()) { fEmail.setError('Enter your e-mail address.'); email.focus(); return; }
    if (!password.value) { fPass.setError('Enter your password.'); password.focus(); return; }
    try {
      await busy(submit, 'Signing in…', async () => {
        const me = await post('/api/auth/login', { email: email.value.trim(), password: password.value }, { quiet401: true });
        password.value = '';
        signedIn(me);
      });
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 401 ? 'Wrong e-mail or password.' : plainError(err);
      errSlot.append(inlineError(msg));
      password.focus();
    }
  });
  replace(root,
    h('main', { class: 'login', id: 'main' },
      h('div', { class: 'login__card' },
        h('div', { class: 'brand brand--large' }, h('span', { class: 'brand__mark', 'aria-hidden': 'true' }, '⇄'), 'keyrelay'),
        h('h1', { id: 'login-title', class: 'login__title' }, 'Sign in to the admin pages'),
        form)));
  setTimeout(() => email.focus(), 0);
}

function signedIn(me) {
  state.me = me;
  setCsrf(me.csrfToken);
  const back = state.returnTo;
  state.returnTo = null;
  navigate(back && back !== '#/login' ? back : '#/');
}

async function logout(btn) {
  try {
    await busy(btn, 'Signing out…', () => post('/api/auth/logout', {}, { quiet401: true }));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      toast(`Could not sign out: ${plainError(err)}`, 'error');
      return;
    }
  }
  state.me = null;
  setCsrf(null);
  stopEvents();
  runCleanups();
  localStorage.removeItem(LAST_WS);   // the next person here need not see where we were
  state.loginNotice = 'You are signed out.';
  navigate('#/login');
}

// ---- shell -------------------------------------------------------------------------------

let shell = null;

function liveIndicator() {
  const dot = h('span', { class: 'live__dot', 'aria-hidden': 'true' });
  const text = h('span', { class: 'live__text' }, 'Connecting…');
  const el = h('span', { class: 'live live--connecting', role: 'status', title: 'Live updates' }, dot, text);
  return {
    el,
    set({ state: st, text: t }) {
      el.className = `live live--${st}`;
      text.textContent = t;
    },
  };
}

function createWorkspaceDialog() {
  const slug = h('input', { type: 'text', required: true, pattern: '[a-z0-9][a-z0-9-]{0,62}', autocomplete: 'off' });
  const name = h('input', { type: 'text', required: true, autocomplete: 'off' });
  const fSlug = field({ label: 'Slug', input: slug, hint: 'Lower-case letters, digits and dashes; part of every URL; cannot change later.' });
  const fName = field({ label: 'Name', input: name });
  const errSlot = h('div');
  const create = h('button', { type: 'submit', class: 'btn btn--primary' }, 'Create workspace');
  const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
  const form = h('form', { class: 'dialog__body stack', method: 'dialog' }, fName.wrap, fSlug.wrap, errSlot,
    h('div', { class: 'dialog__actions' }, cancel, create));
  const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'ws-dlg-title' },
    h('h2', { class: 'dialog__title', id: 'ws-dlg-title' }, 'New workspace'), form);
  name.addEventListener('input', () => {
    if (!slug.dataset.touched) slug.value = name.value.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  });
  slug.addEventListener('input', () => { slug.dataset.touched = '1'; });
  cancel.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => dlg.remove());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    fSlug.setError(null);
    fName.setError(null);
    try {
      const w = await busy(create, 'Creating…', () => post('/api/workspaces', { slug: slug.value.trim(), name: name.value.trim() }));
      dlg.close();
      await refreshMe();
      toast(`Workspace “${w.name}” created.`);
      navigate(`#/w/${encodeURIComponent(w.slug)}/providers`);
    } catch (err) {
      if (err.field === 'slug') fSlug.setError(plainError(err));
      else if (err.field === 'name') fName.setError(plainError(err));
      else errSlot.append(inlineError(err));
    }
  });
  document.body.append(dlg);
  dlg.showModal();
  name.focus();
}

// true when the account was read again; false keeps what we have (the next request shows
// the error).
async function refreshMe() {
  try {
    const me = await get('/api/auth/me');
    state.me = me;
    setCsrf(me.csrfToken);
    return true;
  } catch {
    return false;
  }
}

function buildShell() {
  const live = liveIndicator();
  const wsSelect = h('select', { id: 'ws-select', class: 'ws-switch__select' });
  const roleSlot = h('span', { class: 'ws-switch__role' });
  const nav = h('ul', { class: 'sidenav__list' });
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const logoutBtn = h('button', { type: 'button', class: 'btn btn--ghost btn--small', id: 'logout' }, 'Sign out');
  logoutBtn.addEventListener('click', () => logout(logoutBtn));
  wsSelect.addEventListener('change', () => {
    if (wsSelect.value === '__new__') {
      wsSelect.value = state.ws;
      createWorkspaceDialog();
      return;
    }
    const r = parseRoute();
    const page = r.name === 'page' && PAGES.some((p) => p.id === r.page) ? r.page : 'providers';
    navigate(`#/w/${encodeURIComponent(wsSelect.value)}/${page}`);
  });
  const skip = h('a', { class: 'skip-link', href: '#main' }, 'Skip to content');
  skip.addEventListener('click', (ev) => { ev.preventDefault(); main.focus(); });
  const user = state.me.user || {};
  const el = h('div', { class: 'shell' },
    skip,
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, h('span', { class: 'brand__mark', 'aria-hidden': 'true' }, '⇄'), 'keyrelay'),
      h('div', { class: 'ws-switch' },
        h('label', { for: 'ws-select', class: 'ws-switch__label' }, 'Workspace'),
        wsSelect, roleSlot),
      h('div', { class: 'topbar__right' },
        live.el,
        h('span', { class: 'topbar__user', title: user.email || '' }, user.name || user.email || ''),
        logoutBtn)),
    h('div', { class: 'layout' },
      h('nav', { class: 'sidenav', 'aria-label': 'Workspace pages' }, nav),
      main),
    h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' }),
    h('div', { id: 'announcer', class: 'visually-hidden', 'aria-live': 'polite' }));
  shell = { el, live, wsSelect, roleSlot, nav, main };
  replace(root, el);
}

function updateShell(ws, pageId) {
  const { wsSelect, roleSlot, nav } = shell;
  clear(wsSelect);
  for (const w of workspaces()) wsSelect.append(h('option', { value: w.slug, selected: w.slug === ws }, w.name || w.slug));
  if (state.me.user && state.me.user.isInstanceAdmin) wsSelect.append(h('option', { value: '__new__' }, '+ New workspace…'));
  wsSelect.value = ws;
  const role = roleOf(ws);
  replace(roleSlot, roleBadge(role), role === 'viewer' ? h('span', { class: 'ws-switch__ro' }, 'read only') : null);
  clear(nav);
  for (const p of PAGES) {
    const href = `#/w/${encodeURIComponent(ws)}/${p.id}`;
    nav.append(h('li', {}, h('a', { href, class: 'sidenav__link', 'aria-current': p.id === pageId ? 'page' : null }, p.title)));
  }
}

function roleOf(ws) {
  const w = workspaces().find((x) => x.slug === ws);
  return w ? w.role : 'viewer';
}

function ensureEvents(ws) {
  if (state.events && state.events.ws === ws) return state.events;
  stopEvents();
  const ev = new LiveEvents(ws, {
    onStatus: (s) => shell && shell.live.set(s),
    onUnauthorized: () => refreshAfterStreamRefused(ev),
  });
  state.events = ev;
  ev.start();
  return ev;
}

async function refreshAfterStreamRefused(ev) {
  // The stream said 401: confirm with a normal request (which signs out if so). Still signed
  // in: the stream's refusal was passing, so it tries again (unless it was left meanwhile).
  try {
    await get('/api/auth/me');
    if (state.events === ev) ev.scheduleReconnect();
  } catch { /* handled by onUnauthorized */ }
}

function renderNoWorkspace() {
  runCleanups();
  stopEvents();
  if (!shell) buildShell();
  clear(shell.wsSelect);
  clear(shell.nav);
  const isAdmin = state.me.user && state.me.user.isInstanceAdmin;
  replace(shell.main, h('section', { class: 'page' },
    h('h1', { class: 'page-title', tabindex: '-1' }, 'No workspace yet'),
    h('p', {}, 'You are not a member of any workspace. ', isAdmin
      ? 'As an instance admin you can create one.' : 'Ask a workspace admin to add you.'),
    isAdmin ? h('button', { type: 'button', class: 'btn btn--primary', onclick: createWorkspaceDialog }, 'Create a workspace') : null));
}

async function renderPage(r) {
  const page = PAGES.find((p) => p.id === r.page);
  const member = () => workspaces().some((w) => w.slug === r.ws);
  if (!member()) {
    // Added to it since signing in? Ask once before saying no.
    const hash = location.hash;
    await refreshMe();
    if (location.hash !== hash) return;       // gone elsewhere meanwhile
  }
  if (!member()) {
    // A workspace the person does not belong to (or that was deleted): same as not found.
    runCleanups();
    stopEvents();
    if (!shell) buildShell();
    updateShell(defaultWs() || r.ws, null);
    replace(shell.main, h('section', { class: 'page' },
      h('h1', { class: 'page-title', tabindex: '-1' }, 'Workspace not found'),
      h('p', {}, `There is no workspace “${r.ws}” that you belong to.`),
      defaultWs() ? h('a', { class: 'btn', href: `#/w/${encodeURIComponent(defaultWs())}/providers` }, 'Go to your workspace') : null));
    return;
  }
  if (!page) {
    navigate(`#/w/${encodeURIComponent(r.ws)}/providers`);
    return;
  }
  if (!shell) buildShell();
  localStorage.setItem(LAST_WS, r.ws);
  state.ws = r.ws;
  updateShell(r.ws, page.id);
  const events = ensureEvents(r.ws);
  shell.live.set(events.status);
  runCleanups();
  const seq = ++state.renderSeq;
  const role = roleOf(r.ws);
  const container = h('section', { class: `page page--${page.id}` });
  replace(shell.main, container);
  const wsName = (workspaces().find((w) => w.slug === r.ws) || {}).name || r.ws;
  document.title = `${page.title} · ${wsName} · keyrelay`;
  const ctx = {
    ws: r.ws,
    wsName,
    role,
    isAdmin: ROLE_RANK[role] >= ROLE_RANK.admin,
    isMember: ROLE_RANK[role] >= ROLE_RANK.member,
    me: state.me,
    id: r.id,
    rest: r.rest,
    root: container,
    events,
    base: `/api/workspaces/${encodeURIComponent(r.ws)}`,
    href: (p, id) => `#/w/${encodeURIComponent(r.ws)}/${p}${id ? `/${encodeURIComponent(id)}` : ''}`,
    alive: () => seq === state.renderSeq,
    onCleanup: (fn) => state.cleanups.push(fn),
    on: (type, fn) => state.cleanups.push(events.on(type, fn)),
    navigate,
    // The account changed (a role of one's own): read it again and draw the page anew.
    reloadAccount: async () => {
      if (!(await refreshMe())) location.reload();
      else if (seq === state.renderSeq) navigate(location.hash);
    },
  };
  try {
    await page.mod.render(ctx);
  } catch (err) {
    console.error(err);
    if (ctx.alive()) container.append(errorBox(err, { prefix: 'This page failed to load.' }));
  }
  // The title takes the focus for screen readers, unless the user has already put it in a
  // control drawn before the page finished loading (a form above a list still loading).
  const typing = document.activeElement && document.activeElement !== document.body
    && container.contains(document.activeElement);
  if (ctx.alive() && state.focusOnRender && !typing) {
    const title = container.querySelector('h1');
    if (title) title.focus({ preventScroll: true });
  }
  state.focusOnRender = true;
}

async function route() {
  const r = parseRoute();
  if (!state.me) {
    if (r.name !== 'login') {
      try {
        const me = await get('/api/auth/me', { quiet401: true });
        state.me = me;
        setCsrf(me.csrfToken);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          if (r.name === 'page') state.returnTo = location.hash;
          navigate('#/login');
          return;
        }
        replace(root, h('main', { class: 'login', id: 'main' }, h('div', { class: 'login__card' },
          h('h1', { class: 'login__title' }, 'keyrelay is not reachable'),
          errorBox(err, { retry: () => route() }))));
        return;
      }
    } else {
      shell = null;
      renderLogin();
      return;
    }
  }
  if (r.name === 'login') {
    navigate('#/');
    return;
  }
  if (r.name === 'home') {
    const ws = defaultWs();
    if (!ws) {
      renderNoWorkspace();
      return;
    }
    navigate(`#/w/${encodeURIComponent(ws)}/providers`);
    return;
  }
  await renderPage(r);
}

window.addEventListener('hashchange', () => route());
state.focusOnRender = false;
route();
