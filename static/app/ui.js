// Shared pieces of the pages: headers, errors, spinners, dialogs, badges, forms.
import { h, clear, replace, uid } from './dom.js';
import { ApiError, plainError } from './api.js';

export function pageHeader(title, subtitle, ...actions) {
  return h('header', { class: 'page-head' },
    h('div', { class: 'page-head__text' },
      h('h1', { tabindex: '-1', class: 'page-title' }, title),
      subtitle ? h('p', { class: 'page-sub' }, subtitle) : null),
    actions.length ? h('div', { class: 'page-head__actions' }, actions) : null);
}

export function spinner(label = 'Loading…') {
  return h('span', { class: 'spinner-wrap', role: 'status' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { class: 'spinner-label' }, label));
}

// An error next to what caused it. retry: optional function for a "Try again" button.
export function errorBox(err, { retry, prefix } = {}) {
  const notImpl = err instanceof ApiError && err.notImplemented;
  const text = plainError(err);
  return h('div', { class: ['alert', notImpl ? 'alert--info' : 'alert--error'], role: 'alert' },
    h('p', {}, prefix ? h('strong', {}, `${prefix} `) : null, text),
    retry ? h('button', { type: 'button', class: 'btn btn--small', onclick: retry }, 'Try again') : null);
}

export function inlineError(err) {
  return h('p', { class: 'field-error', role: 'alert' }, typeof err === 'string' ? err : plainError(err));
}

export function notice(kind, ...children) {
  return h('div', { class: ['alert', `alert--${kind}`], role: kind === 'error' ? 'alert' : 'status' }, children);
}

export function emptyState(title, text, ...actions) {
  return h('div', { class: 'empty' },
    h('p', { class: 'empty__title' }, title),
    text ? h('p', { class: 'empty__text' }, text) : null,
    actions.length ? h('div', { class: 'empty__actions' }, actions) : null);
}

// The latest load of each container.
const loads = new WeakMap();

// Loads with fn(), showing a spinner meanwhile and an error with "Try again" on failure.
// render(data) fills the container. Returns the data, or undefined after an error. Of two
// loads into one container, only the later is shown, whichever answers last.
export async function loadInto(container, fn, render, { label = 'Loading…', alive = () => true } = {}) {
  const mine = {};
  loads.set(container, mine);
  const current = () => alive() && loads.get(container) === mine;
  replace(container, h('div', { class: 'loading' }, spinner(label)));
  try {
    const data = await fn();
    if (!current()) return undefined;
    clear(container);
    render(data);
    return data;
  } catch (err) {
    if (!current() || (err && err.name === 'AbortError')) return undefined;
    replace(container, errorBox(err, { retry: () => loadInto(container, fn, render, { label, alive }) }));
    return undefined;
  }
}

// Runs fn while the button shows progress (disabled, spinner, busyLabel).
export async function busy(button, busyLabel, fn) {
  const old = Array.from(button.childNodes);
  const wasDisabled = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  replace(button, h('span', { class: 'spinner spinner--small', 'aria-hidden': 'true' }), ` ${busyLabel}`);
  try {
    return await fn();
  } finally {
    button.disabled = wasDisabled;
    button.removeAttribute('aria-busy');
    replace(button, ...old);
  }
}

let toastRoot = null;
export function toast(text, kind = 'ok') {
  if (!toastRoot || !toastRoot.isConnected) {   // the shell is rebuilt at each sign-in
    toastRoot = document.getElementById('toasts');
    if (!toastRoot) return;
  }
  const t = h('div', { class: ['toast', `toast--${kind}`], role: kind === 'error' ? 'alert' : 'status' }, text);
  toastRoot.append(t);
  setTimeout(() => t.classList.add('toast--leaving'), 4200);
  setTimeout(() => t.remove(), 4700);
}

// Announce to screen readers without showing anything.
export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

// A modal confirmation; resolves true when confirmed.
export function confirmDialog({ title, body, confirmLabel = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg-title');
    const cancel = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
    const ok = h('button', { type: 'button', class: ['btn', danger ? 'btn--danger' : 'btn--primary'], value: 'ok' }, confirmLabel);
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, class: 'dialog__title' }, title),
      h('div', { class: 'dialog__body' }, body),
      h('div', { class: 'dialog__actions' }, cancel, ok));
    let result = false;
    const opener = document.activeElement;
    cancel.addEventListener('click', () => dlg.close());
    ok.addEventListener('click', () => { result = true; dlg.close(); });
    const focusKey = opener && opener.dataset ? opener.dataset.focus : null;
    dlg.addEventListener('close', () => {
      dlg.remove();
      // The page may have re-rendered meanwhile (live events): find the control again.
      let back = opener && opener.isConnected ? opener : null;
      if (!back && focusKey) back = document.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
      if (back && typeof back.focus === 'function') back.focus();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    (danger ? cancel : ok).focus();
  });
}

// A labelled form field; returns {wrap, input, setError(msg|null)}.
export function field({ label, input, hint, id, className }) {
  const inputId = id || input.id || uid('f');
  input.id = inputId;
  const hintId = hint ? `${inputId}-hint` : null;
  const errId = `${inputId}-err`;
  const err = h('p', { class: 'field-error', id: errId, role: 'alert', hidden: true });
  if (hintId) input.setAttribute('aria-describedby', hintId);
  const wrap = h('div', { class: ['field', className] },
    h('label', { for: inputId, class: 'field__label' }, label),
    input,
    hint ? h('p', { class: 'field__hint', id: hintId }, hint) : null,
    err);
  function setError(msg) {
    if (msg) {
      err.textContent = msg;
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
    } else {
      err.textContent = '';
      err.hidden = true;
      input.removeAttribute('aria-invalid');
      if (hintId) input.setAttribute('aria-describedby', hintId); else input.removeAttribute('aria-describedby');
    }
  }
  return { wrap, input, setError };
}

const JOB_STATUS_TEXT = {
  queued: 'Queued', running: 'Running', retrying: 'Retrying', succeeded: 'Succeeded',
  failed: 'Failed', cancelled: 'Cancelled',
};
export function jobBadge(status) {
  return h('span', { class: ['badge', `badge--${status}`] },
    status === 'running' || status === 'retrying' ? h('span', { class: 'spinner spinner--tiny', 'aria-hidden': 'true' }) : null,
    JOB_STATUS_TEXT[status] || status);
}

export const KEY_STATUS_TEXT = {
  valid: 'Valid', invalid: 'Invalid', untested: 'Untested', disabled: 'Disabled',
  exhausted: 'Quota exhausted', expired: 'Expired',
};

export function roleBadge(role) {
  return h('span', { class: ['role', `role--${role}`] }, role);
}

export function copyButton(getText, label = 'Copy') {
  const btn = h('button', { type: 'button', class: 'btn' }, label);
  btn.addEventListener('click', async () => {
    const text = getText();
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // No clipboard permission (plain HTTP, old browser): select a temporary field and copy.
      const ta = h('textarea', { class: 'visually-hidden', readonly: true });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      try { ok = document.execCommand('copy'); } catch { ok = false; }
      ta.remove();
    }
    btn.textContent = ok ? 'Copied ✓' : 'Copy failed: select and copy by hand';
    announce(ok ? 'Copied to the clipboard' : 'Copying failed');
    setTimeout(() => { btn.textContent = label; }, 2500);
  });
  return btn;
}

export function providerName(providers, id) {
  const p = (providers || []).find((x) => x.id === id);
  return p ? p.name : (id || '—');
}

export const PROVIDER_NAMES = {
  anthropic: 'Anthropic', openai: 'OpenAI', google: 'Google Gemini', zai: 'Z.ai',
  moonshot: 'Moonshot', openai_compatible: 'OpenAI-compatible',
};
