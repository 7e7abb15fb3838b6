// Providers & keys: routing settings (primary, fallback chain, models, system keys) and a card
// per provider with its keys as pills (test, enable/disable, rename, rotate, delete, reorder by
// drag and drop or keyboard, add keys in bulk).
import { h, replace, clear, uid, timeEl, maskSecret } from '../dom.js';
import { get, getAll, post, put, patch, del, plainError, ApiError } from '../api.js';
import { pageHeader, spinner, loadInto, busy, toast, announce, confirmDialog,
  field, inlineError, notice, KEY_STATUS_TEXT } from '../ui.js';

export async function render(ctx) {
  const { root, base, isAdmin } = ctx;
  const st = {
    settings: null,
    keys: [],
    pill: new Map(),        // keyId -> {result: {kind, text}, edit: 'rename'|'rotate'|null, node}
    addForms: new Map(),    // provider -> {node, open}
    cardErrors: new Map(),  // provider -> error text (reorder failures)
    draft: null,            // routing settings being edited
    dirty: false,
    externalChange: false,
    routingSave: { busy: false, error: null }, // Save routing: under way; its refusal    drag: null,
    reorderQueue: new Map(),  // provider -> promise of the last PUT /keys/reorder
    reorderPending: new Map(), // provider -> PUTs not answered yet
    writes: 0,              // changes made on this page: a reload begun before one is stale
  };

  root.append(pageHeader('Providers & keys',
    isAdmin ? 'Keys are tried in the order shown, the primary provider first, then the fallback chain. Drag a key, or focus it and press Alt+↑ / Alt+↓, to change the order.'
      : 'Keys are tried in the order shown, the primary provider first, then the fallback chain.'));
  const banner = h('div', { class: 'banner-slot' });
  const settingsCard = h('section', { class: 'card routing', 'aria-labelledby': 'routing-title' });
  const cards = h('div', { class: 'providers' });
  const body = h('div', { class: 'providers-page' }, banner, settingsCard, cards);
  root.append(body);

  async function fetchAll() {
    const [s, k] = await Promise.all([get(`${base}/providers`), getAll(`${base}/keys`, 'keys')]);
    return { settings: s, keys: k.keys || [] };
  }
  async function load() {
    const got = await fetchAll();
    st.settings = got.settings;
    st.keys = got.keys;
  }

  function providerList() {
    return (st.settings && st.settings.providers) || [];
  }
  function pname(id) {
    const p = providerList().find((x) => x.id === id);
    return p ? p.name : id;
  }
  function keysOf(provider) {
    return st.keys.filter((k) => k.provider === provider).sort((a, b) => a.priority - b.priority);
  }
  function pillState(id) {
    if (!st.pill.has(id)) st.pill.set(id, { result: null, edit: null });
    return st.pill.get(id);
  }

  // Re-rendering keeps the focus on the control that had it (by data-focus).
  function withFocus(fn) {
    const a = document.activeElement;
    const key = a && a.dataset ? a.dataset.focus : null;
    fn();
    if (key) {
      const el = root.querySelector(`[data-focus="${CSS.escape(key)}"]`);
      if (el) el.focus({ preventScroll: true });
    }
  }

  function renderAll() {
    withFocus(() => {
      renderBanner();
      // Not edited: the form shows the settings as they are now, the pick kept.
      if (!st.dirty && st.draft && st.settings) st.draft = { ...draftFromSettings(), pick: st.draft.pick };
      renderSettings();
      renderCards();
    });
  }

  let refreshTimer = null;
  let refreshing = null;
  // A reorder not saved yet: the server still has the old order, which a reload would put
  // back on screen until the save lands. Reload after it instead (its event asks anyway).
  const reordering = () => [...st.reorderPending.values()].some((n) => n > 0);
  let again = false;        // asked for during a reload, which may predate the reason
  async function refresh() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    if (reordering()) {
      refreshSoon();
      return null;
    }
    refreshing = (async () => {
      try {
        const writes = st.writes;
        const got = await fetchAll();
        if (!ctx.alive()) return;
        // A change made here while loading (a move, even one saved since) may postdate what
        // the server answered: keep what is on screen and load again.
        if (reordering() || st.writes !== writes) {
          refreshSoon();
          return;
        }
        // Redraw only when something changed: an event about our own change would
        // otherwise replace the pills under the pointer or the keyboard. What is kept is
        // always what is on screen, which the moves and buttons act on.
        const shown = JSON.stringify([st.settings, st.keys]);
        st.settings = got.settings;
        st.keys = got.keys;
        noteTheirs();
        if (JSON.stringify([st.settings, st.keys]) !== shown) renderAll();
      } catch (err) {
        if (ctx.alive()) toast(`Could not reload the keys: ${plainError(err)}`, 'error');
      } finally {
        refreshing = null;
        if (again && ctx.alive()) {
          again = false;
          refreshSoon();
        }
      }
    })();
    return refreshing;
  }
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 250);
  }
  ctx.onCleanup(() => clearTimeout(refreshTimer));

  // ---- banner: effective primary ---------------------------------------------------------

  function renderBanner() {
    clear(banner);
    const s = st.settings;
    if (!s) return;
    const eff = s.effectivePrimary;
    if (!s.primary) {
      banner.append(notice('info', h('strong', {}, 'No primary provider chosen yet. '),
        eff ? `Jobs go to ${pname(eff)} first.` : (isAdmin ? 'Add keys below and choose the primary provider in Routing.' : 'A workspace admin has to add keys and choose one.')));
    } else if (eff && eff !== s.primary) {
      banner.append(notice('warn', h('strong', {}, `${pname(s.primary)} has no usable key. `),
        `Jobs go to ${pname(eff)} first (the effective primary) until ${pname(s.primary)} has a working key again.`));
    } else if (!eff) {
      banner.append(notice('error', h('strong', {}, 'No provider has a usable key. '),
        'Jobs will fail until a key of the primary provider or of the fallback chain works.'));
    }
  }

  // ---- routing settings ------------------------------------------------------------------

  // What the routing form edits: a change elsewhere to anything else (key counts) is no
  // reason to interrupt an edit.
  function routingOf(s) {
    return JSON.stringify(s ? [s.primary, s.fallbackChain, s.models, s.baseUrls, s.allowSystemKeys] : null);
  }

  function draftFromSettings() {
    const s = st.settings;
    const models = {};
    for (const p of providerList()) models[p.id] = (s.models && s.models[p.id]) || '';
    return {
      base: routingOf(s),     // the routing the edit started from
      pick: '',               // the provider picked in "Add a provider…", not added yet
      primary: s.primary || '',
      chain: [...(s.fallbackChain || [])],
      models,
      baseUrl: (s.baseUrls && s.baseUrls.openai_compatible) || '',
      allowSystemKeys: !!s.allowSystemKeys,
    };
  }

  // While the routing is being edited: is what the server has now not what the edit started
  // from? (The event of our own save, arriving after the next edit began, is no change.)
  function noteTheirs() {
    if (st.dirty && st.draft && routingOf(st.settings) !== st.draft.base) st.externalChange = true;
  }

  function markDirty() {
    st.dirty = true;
    settingsCard.classList.add('is-dirty');
  }

  function renderSettings() {
    clear(settingsCard);
    const s = st.settings;
    if (!s) return;
    const head = h('div', { class: 'card__head' },
      h('h2', { id: 'routing-title', class: 'card__title' }, 'Routing'),
      h('p', { class: 'card__sub' }, 'Which provider answers first, and where jobs go when it cannot.'));
    settingsCard.append(head);
    if (!isAdmin) {
      settingsCard.append(h('dl', { class: 'deflist' },
        h('dt', {}, 'Primary'), h('dd', {}, s.primary ? pname(s.primary) : 'not chosen',
          s.effectivePrimary && s.effectivePrimary !== s.primary ? h('span', { class: 'chip chip--warn' }, `in effect: ${pname(s.effectivePrimary)}`) : null),
        h('dt', {}, 'Fallback chain'), h('dd', {}, s.fallbackChain && s.fallbackChain.length ? s.fallbackChain.map(pname).join(' → ') : 'none'),
        h('dt', {}, 'Models'), h('dd', {}, providerList().filter((p) => p.model).map((p) => `${p.name}: ${p.model}`).join(' · ') || '—'),
        h('dt', {}, 'System keys'), h('dd', {}, s.allowSystemKeys ? 'allowed' : 'not allowed')));
      return;
    }
    if (!st.draft) st.draft = draftFromSettings();
    const d = st.draft;
    const errors = {};

    if (st.externalChange) {
      settingsCard.append(notice('info', 'Someone else changed these settings. ',
        h('button', { type: 'button', class: 'btn btn--small', onclick: () => { st.dirty = false; st.externalChange = false; settingsCard.classList.remove('is-dirty'); renderAll(); } }, 'Load their version')));
    }

    // Primary
    const primarySel = h('select', { id: 'routing-primary', 'data-focus': 'routing-primary' });
    if (!d.primary) primarySel.append(h('option', { value: '' }, 'Choose a provider…'));
    for (const p of providerList()) {
      primarySel.append(h('option', { value: p.id, selected: p.id === d.primary },
        `${p.name} (${usableText(p)})`));
    }
    primarySel.addEventListener('change', () => {
      d.primary = primarySel.value;
      const before = d.chain.length;
      d.chain = d.chain.filter((x) => x !== d.primary);
      markDirty();
      withFocus(renderSettings);
      if (d.chain.length !== before) announce(`${pname(d.primary)} was removed from the fallback chain, since it is now the primary.`);
    });
    const fPrimary = field({ label: 'Primary provider', input: primarySel, hint: 'Answers every job first, with its keys in order.' });
    errors.primary = fPrimary.setError;

    // Fallback chain
    const chainId = uid('chain');
    const chainList = h('ol', { class: 'chain', id: chainId, 'aria-label': 'Fallback chain, in order' });
    d.chain.forEach((pid, i) => {
      const p = providerList().find((x) => x.id === pid) || { id: pid, name: pid };
      const up = h('button', { type: 'button', class: 'btn btn--icon btn--small', 'aria-label': `Move ${p.name} earlier in the chain`, 'data-focus': `chain-up-${pid}`, disabled: i === 0, title: 'Earlier' }, '↑');
      const down = h('button', { type: 'button', class: 'btn btn--icon btn--small', 'aria-label': `Move ${p.name} later in the chain`, 'data-focus': `chain-down-${pid}`, disabled: i === d.chain.length - 1, title: 'Later' }, '↓');
      const rm = h('button', { type: 'button', class: 'btn btn--small btn--ghost', 'aria-label': `Remove ${p.name} from the chain`, 'data-focus': `chain-rm-${pid}` }, 'Remove');
      up.addEventListener('click', () => moveChain(i, -1, pid));
      down.addEventListener('click', () => moveChain(i, 1, pid));
      rm.addEventListener('click', () => {
        d.chain.splice(i, 1);
        markDirty();
        withFocus(renderSettings);
        const addSel = settingsCard.querySelector('#routing-chain-add');
        if (addSel) addSel.focus();
        announce(`${p.name} removed from the fallback chain`);
      });
      chainList.append(h('li', { class: 'chain__item', 'data-provider': pid },
        h('span', { class: 'chain__pos', 'aria-hidden': 'true' }, String(i + 1)),
        h('span', { class: 'chain__name' }, p.name),
        h('span', { class: 'chain__usable muted' }, usableText(p)),
        h('span', { class: 'chain__actions' }, up, down, rm)));
    });
    if (!d.chain.length) chainList.append(h('li', { class: 'chain__empty muted' }, 'No fallback: when the primary fails, the job fails.'));
    function moveChain(i, delta, pid) {
      const j = i + delta;
      if (j < 0 || j >= d.chain.length) return;
      [d.chain[i], d.chain[j]] = [d.chain[j], d.chain[i]];
      markDirty();
      withFocus(renderSettings);
      announce(`${pname(pid)} is now number ${j + 1} in the chain`);
    }
    const candidates = providerList().filter((p) => p.id !== d.primary && !d.chain.includes(p.id));
    const addSel = h('select', { id: 'routing-chain-add', 'data-focus': 'routing-chain-add', disabled: !candidates.length });
    addSel.append(h('option', { value: '' }, candidates.length ? 'Add a provider…' : 'All providers are in use'));
    // The provider picked but not added yet is part of the draft: a redraw keeps it.
    for (const p of candidates) addSel.append(h('option', { value: p.id, selected: p.id === d.pick }, `${p.name} (${usableText(p)})`));
    addSel.addEventListener('change', () => { d.pick = addSel.value; });
    const addBtn = h('button', { type: 'button', class: 'btn btn--small', 'data-focus': 'routing-chain-addbtn', disabled: !candidates.length }, 'Add to chain');
    addBtn.addEventListener('click', () => {
      if (!addSel.value) { addSel.focus(); return; }
      const added = addSel.value;
      d.pick = '';
      d.chain.push(added);
      markDirty();
      withFocus(renderSettings);
      announce(`${pname(added)} added to the fallback chain at position ${d.chain.length}`);
    });
    const chainErr = h('p', { class: 'field-error', role: 'alert', hidden: true });
    errors.fallbackChain = (msg) => { chainErr.hidden = !msg; chainErr.textContent = msg || ''; };
    const chainField = h('div', { class: 'field field--chain', role: 'group', 'aria-labelledby': `${chainId}-label` },
      h('span', { class: 'field__label', id: `${chainId}-label` }, 'Fallback chain'),
      h('p', { class: 'field__hint' }, 'Tried in this order when the primary provider has no working key.'),
      chainList,
      h('div', { class: 'chain__add' },
        h('label', { for: 'routing-chain-add', class: 'visually-hidden' }, 'Provider to add to the chain'), addSel, addBtn),
      chainErr);

    // Models
    const modelFields = providerList().map((p) => {
      const input = h('input', { type: 'text', value: d.models[p.id] || '', placeholder: p.defaultModel || 'model name', autocomplete: 'off', spellcheck: 'false', 'data-focus': `model-${p.id}` });
      input.addEventListener('input', () => { d.models[p.id] = input.value; markDirty(); });
      const f = field({ label: p.name, input, id: `model-${p.id}`, hint: p.defaultModel ? null : 'No default: set one to use it' });
      errors[`models.${p.id}`] = f.setError;
      return f.wrap;
    });
    const baseInput = h('input', { type: 'url', value: d.baseUrl, placeholder: 'http://127.0.0.1:1234/v1', autocomplete: 'off', spellcheck: 'false', 'data-focus': 'base-url' });
    baseInput.addEventListener('input', () => { d.baseUrl = baseInput.value; markDirty(); });
    const fBase = field({ label: 'OpenAI-compatible base URL', input: baseInput, id: 'base-url-compat', hint: 'A self-hosted server (LM Studio, vLLM…); the instance configuration must allow it.' });
    errors['baseUrls.openai_compatible'] = fBase.setError;

    // System keys
    const sys = h('input', { type: 'checkbox', id: 'routing-system', checked: d.allowSystemKeys, 'data-focus': 'routing-system' });
    sys.addEventListener('change', () => { d.allowSystemKeys = sys.checked; markDirty(); });
    const sysAvail = providerList().filter((p) => p.systemKeyAvailable).map((p) => p.name);
    const sysField = h('div', { class: 'field field--check' },
      h('div', { class: 'check' }, sys, h('label', { for: 'routing-system' }, 'Allow the instance’s system keys')),
      h('p', { class: 'field__hint' }, 'When this workspace has no working key for a provider, keys configured for the whole instance may answer. ',
        sysAvail.length ? `Available for: ${sysAvail.join(', ')}.` : 'No system keys are configured on this instance.'));

    const errSlot = h('div', { class: 'form-error-slot' });
    const save = h('button', { type: 'submit', class: 'btn btn--primary', 'data-focus': 'routing-save' }, 'Save routing');
    const discard = h('button', { type: 'button', class: 'btn', 'data-focus': 'routing-discard' }, 'Discard changes');
    discard.addEventListener('click', () => {
      st.routingSave = { busy: st.routingSave.busy, error: null };
      st.dirty = false;
      st.externalChange = false;
      settingsCard.classList.remove('is-dirty');
      st.draft = null;
      withFocus(renderSettings);
    });
    const form = h('form', { class: 'routing__form', novalidate: true },
      h('div', { class: 'routing__grid' },
        h('div', { class: 'routing__col' }, fPrimary.wrap, chainField, sysField),
        h('fieldset', { class: 'routing__models' }, h('legend', {}, 'Model per provider'),
          h('p', { class: 'field__hint routing__models-hint' }, 'Empty fields use the provider’s default, shown in grey.'),
          modelFields, fBase.wrap)),
      errSlot,
      h('div', { class: 'form-actions' }, save, discard,
        h('span', { class: 'dirty-note', 'aria-live': 'polite' }, st.dirty ? 'Unsaved changes' : '')));
    form.addEventListener('input', () => { const n = form.querySelector('.dirty-note'); if (n) n.textContent = 'Unsaved changes'; });
    form.addEventListener('change', () => { const n = form.querySelector('.dirty-note'); if (n) n.textContent = 'Unsaved changes'; });
    // A live event may redraw the form while it is saved: the saving state and the answer's
    // error live in st, and every drawing of the form shows them.
    if (st.routingSave.busy) {
      save.disabled = true;
      save.setAttribute('aria-busy', 'true');
      save.textContent = 'Saving…';
    }
    const failed = st.routingSave.error;
    if (failed) {
      if (errors[failed.key]) errors[failed.key](failed.text);
      else errSlot.append(inlineError(failed.err));
    }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (st.routingSave.busy) return;
      clear(errSlot);
      for (const fn of Object.values(errors)) fn(null);
      st.routingSave = { busy: true, error: null };
      const bodyOut = {
        fallbackChain: d.chain,
        allowSystemKeys: d.allowSystemKeys,
        models: Object.fromEntries(providerList().map((p) => [p.id, (d.models[p.id] || '').trim() || null])),
        baseUrls: { openai_compatible: d.baseUrl.trim() || null },
      };
      if (d.primary) bodyOut.primary = d.primary;
      try {
        const s = await busy(save, 'Saving…', () => put(`${base}/providers`, bodyOut));
        st.writes++;
        st.routingSave = { busy: false, error: null };
        st.settings = s;
        st.dirty = false;
        st.externalChange = false;
        settingsCard.classList.remove('is-dirty');
        st.draft = null;
        renderAll();
        toast('Routing saved.');
        announce('Routing saved');
      } catch (err) {
        const f = err.field || '';
        st.routingSave = { busy: false,
          error: { key: f.startsWith('fallbackChain') ? 'fallbackChain' : f, text: plainError(err), err } };
        if (ctx.alive()) withFocus(renderSettings);
      }
    });
    settingsCard.append(form);
  }

  function usableText(p) {
    if (!p.keyCount) return p.systemKeyAvailable ? 'system key only' : 'no keys';
    if (!p.usableKeyCount) return `${p.keyCount} key${p.keyCount === 1 ? '' : 's'}, none usable`;
    return `${p.usableKeyCount} usable key${p.usableKeyCount === 1 ? '' : 's'}`;
  }

  // ---- provider cards --------------------------------------------------------------------

  function providerOrder() {
    const s = st.settings;
    const ids = providerList().map((p) => p.id);
    const first = [s.primary, ...(s.fallbackChain || [])].filter((x) => x && ids.includes(x));
    return [...new Set([...first, ...ids])];
  }

  function renderCards() {
    clear(cards);
    if (!st.settings) return;
    for (const pid of providerOrder()) cards.append(card(pid));
  }

  function roleChip(pid) {
    const s = st.settings;
    if (pid === s.primary) {
      return h('span', { class: ['chip', 'chip--primary'] }, pid === s.effectivePrimary || !s.effectivePrimary ? 'Primary' : 'Primary (not in effect)');
    }
    const i = (s.fallbackChain || []).indexOf(pid);
    if (pid === s.effectivePrimary) return h('span', { class: 'chip chip--warn' }, i >= 0 ? `Effective primary · fallback ${i + 1}` : 'Effective primary');
    if (i >= 0) return h('span', { class: 'chip chip--fallback' }, `Fallback ${i + 1}`);
    return h('span', { class: 'chip chip--muted' }, 'Not in the chain');
  }

  function card(pid) {
    const p = providerList().find((x) => x.id === pid);
    const list = keysOf(pid);
    const titleId = `prov-${pid}-title`;
    const s = st.settings;
    const inUse = list.length || pid === s.primary || (s.fallbackChain || []).includes(pid) || pid === s.effectivePrimary
      || (st.addForms.get(pid) && st.addForms.get(pid).open);
    const el = h('article', { class: ['card', 'provider', inUse ? null : 'provider--unused', st.reorderPending.get(pid) ? 'is-saving' : null], 'aria-labelledby': titleId, 'data-provider': pid, 'aria-busy': st.reorderPending.get(pid) ? 'true' : null });
    const meta = [
      `${list.length} key${list.length === 1 ? '' : 's'}`,
      `${p.usableKeyCount} usable`,
      p.model ? `model ${p.model}` : 'no model set',
    ];
    if (p.systemKeyAvailable) meta.push(st.settings.allowSystemKeys ? 'system key allowed' : 'system key available (not allowed)');
    el.append(h('header', { class: 'provider__head' },
      h('div', { class: 'provider__titles' },
        h('h2', { id: titleId, class: 'provider__title' }, p.name),
        roleChip(pid)),
      h('p', { class: 'provider__meta' }, meta.join(' · '))));
    const cardErr = st.cardErrors.get(pid);
    if (cardErr) el.append(h('div', { class: 'alert alert--error', role: 'alert' }, h('p', {}, cardErr)));
    if (list.length) {
      const ol = h('ol', { class: 'pills', 'aria-label': `${p.name} keys, in the order they are tried` });
      list.forEach((k, i) => ol.append(pill(k, i, list.length, p)));
      el.append(ol);
    } else {
      el.append(h('p', { class: 'provider__empty muted' }, 'No keys yet.', isAdmin ? ' Add one to use this provider.' : ''));
    }
    if (isAdmin) el.append(addKeysBlock(p));
    return el;
  }

  function pill(k, i, n, p) {
    const ps = pillState(k.id);
    const status = k.status || (k.isEnabled ? 'untested' : 'disabled');
    const label = k.name || 'Unnamed key';
    const li = h('li', {
      class: ['pill', `pill--${status}`],
      'data-key-id': k.id,
      'data-status': status,
      'data-focus': `pill-${k.id}`,
      tabindex: '0',
      draggable: isAdmin ? 'true' : null,
      'aria-label': `${label}, ${k.maskedKey}, ${KEY_STATUS_TEXT[status] || status}, ${i + 1} of ${n}`,
      'aria-describedby': `pill-${k.id}-meta`,
    });
    const metaBits = [h('span', { class: 'pill__pos' }, `#${i + 1}`)];
    if (k.validatedAt) metaBits.push(' · ', h('span', {}, 'tested ', timeEl(k.validatedAt)));
    else if (status === 'untested') metaBits.push(' · ', h('span', {}, 'never tested'));
    metaBits.push(' · ', k.lastUsedAt ? h('span', {}, 'used ', timeEl(k.lastUsedAt)) : h('span', {}, 'never used'));
    if (k.expiresAt) metaBits.push(' · ', h('span', {}, status === 'expired' ? 'expired ' : 'expires ', timeEl(k.expiresAt)));
    if (k.cooldownUntil && new Date(k.cooldownUntil).getTime() > Date.now()) metaBits.push(' · ', h('span', {}, 'resting until ', timeEl(k.cooldownUntil, { relative: false })));
    li.append(
      h('div', { class: 'pill__top' },
        isAdmin ? h('span', { class: 'pill__handle', 'aria-hidden': 'true', title: 'Drag to reorder' }, '⠿') : null,
        h('span', { class: 'pill__dot', 'aria-hidden': 'true' }),
        h('span', { class: 'pill__name' }, label),
        h('span', { class: 'pill__status' }, KEY_STATUS_TEXT[status] || status)),
      h('code', { class: 'pill__mask' }, k.maskedKey),
      h('p', { class: 'pill__meta', id: `pill-${k.id}-meta` }, metaBits));
    if (k.lastError && status !== 'valid' && !(ps.result && ps.result.kind === 'bad')) {
      li.append(h('p', { class: 'pill__error' }, h('span', { class: 'visually-hidden' }, 'Last error: '), k.lastError));
    }
    const result = h('p', { class: 'pill__result', role: 'status' });
    if (ps.result) renderResult(result, ps.result);
    li.append(result);

    if (isAdmin) {
      const testBtn = h('button', { type: 'button', class: 'btn btn--small', 'data-focus': `test-${k.id}`, 'aria-label': `Test ${label}` }, 'Test');
      testBtn.addEventListener('click', () => testKey(k, testBtn, result));
      const toggle = h('button', { type: 'button', class: 'btn btn--small', 'data-focus': `toggle-${k.id}`, 'aria-label': `${k.isEnabled ? 'Disable' : 'Enable'} ${label}` }, k.isEnabled ? 'Disable' : 'Enable');
      toggle.addEventListener('click', () => setEnabled(k, !k.isEnabled, toggle, result));
      const rename = h('button', { type: 'button', class: 'btn btn--small btn--ghost', 'data-focus': `rename-${k.id}`, 'aria-label': `Rename ${label}`, 'aria-expanded': ps.edit === 'rename' ? 'true' : 'false' }, 'Rename');
      rename.addEventListener('click', () => openEdit(k, 'rename'));
      const rotate = h('button', { type: 'button', class: 'btn btn--small btn--ghost', 'data-focus': `rotate-${k.id}`, 'aria-label': `Rotate ${label}`, 'aria-expanded': ps.edit === 'rotate' ? 'true' : 'false' }, 'Rotate');
      rotate.addEventListener('click', () => openEdit(k, 'rotate'));
      const remove = h('button', { type: 'button', class: 'btn btn--small btn--ghost btn--danger-text', 'data-focus': `delete-${k.id}`, 'aria-label': `Delete ${label}` }, 'Delete');
      remove.addEventListener('click', () => deleteKey(k, p, remove, result));
      const up = h('button', { type: 'button', class: 'btn btn--icon btn--small', 'data-focus': `up-${k.id}`, 'aria-label': `Move ${label} up`, title: 'Move up (Alt+↑)', disabled: i === 0 }, '↑');
      up.addEventListener('click', () => moveBy(k, -1, `up-${k.id}`));
      const down = h('button', { type: 'button', class: 'btn btn--icon btn--small', 'data-focus': `down-${k.id}`, 'aria-label': `Move ${label} down`, title: 'Move down (Alt+↓)', disabled: i === n - 1 }, '↓');
      down.addEventListener('click', () => moveBy(k, 1, `down-${k.id}`));
      li.append(h('div', { class: 'pill__actions' }, testBtn, toggle, rename, rotate, remove,
        n > 1 ? h('span', { class: 'pill__move' }, up, down) : null));
      if (ps.edit) li.append(editForm(k, ps));
      li.addEventListener('keydown', (ev) => {
        if (ev.target !== li || !ev.altKey) return;
        if (ev.key === 'ArrowUp' || ev.key === 'ArrowLeft') { ev.preventDefault(); moveBy(k, -1, `pill-${k.id}`); }
        if (ev.key === 'ArrowDown' || ev.key === 'ArrowRight') { ev.preventDefault(); moveBy(k, 1, `pill-${k.id}`); }
      });
      wireDrag(li, k);
    }
    return li;
  }

  function renderResult(el, r) {
    el.className = `pill__result pill__result--${r.kind}`;
    if (r.kind === 'pending') replace(el, spinner(r.text));
    else replace(el, r.text);
  }

  async function testKey(k, btn, resultEl) {
    const ps = pillState(k.id);
    ps.result = { kind: 'pending', text: `Testing against ${pname(k.provider)}…` };
    renderResult(resultEl, ps.result);
    const t0 = performance.now();
    try {
      const r = await busy(btn, 'Testing…', () => post(`${base}/keys/${encodeURIComponent(k.id)}/test`, {}));
      st.writes++;
      if (r.valid) {
        ps.result = { kind: 'ok', text: `✓ Works: answered in ${r.latencyMs ?? Math.round(performance.now() - t0)} ms.` };
      } else if (r.status === 'invalid' || r.status === 'exhausted' || r.status === 'expired') {
        ps.result = { kind: 'bad', text: `✗ Test failed: ${r.error || KEY_STATUS_TEXT[r.status]}.` };
      } else {
        ps.result = { kind: 'warn', text: `Could not tell: ${r.error || 'the provider did not answer'}. The key's status is unchanged.` };
      }
      const key = st.keys.find((x) => x.id === k.id);
      if (key && r.status) key.status = r.status;
      if (key && !r.valid && r.error && (r.status === 'invalid' || r.status === 'exhausted')) key.lastError = r.error;
      announce(ps.result.text);
    } catch (err) {
      ps.result = { kind: 'bad', text: `Test could not run: ${plainError(err)}` };
    }
    if (!ctx.alive()) return;
    renderAll();
    refreshSoon();
  }

  async function setEnabled(k, enabled, btn, resultEl) {
    try {
      const updated = await busy(btn, enabled ? 'Enabling…' : 'Disabling…', () => patch(`${base}/keys/${encodeURIComponent(k.id)}`, { isEnabled: enabled }));
      st.writes++;
      mergeKey(updated);
      pillState(k.id).result = null;
      announce(`${k.name || 'Key'} ${enabled ? 'enabled' : 'disabled'}`);
      renderAll();
      refreshSoon();
    } catch (err) {
      pillState(k.id).result = { kind: 'bad', text: plainError(err) };
      showResult(k, resultEl);
    }
  }

  // A pill's result, in the pill drawn when the action began or, after a redraw, in the
  // pill now on screen.
  function showResult(k, resultEl) {
    if (!ctx.alive()) return;
    if (resultEl.isConnected) renderResult(resultEl, pillState(k.id).result);
    else withFocus(renderCards);
  }

  // A key as an answer or an event gave it. Its priority only for a key not shown yet: a
  // snapshot may predate a move made here since; the order comes from reloads, which wait
  // for moves to be saved.
  function mergeKey(k) {
    if (!k || !k.id) return;
    const i = st.keys.findIndex((x) => x.id === k.id);
    if (i >= 0) st.keys[i] = { ...st.keys[i], ...k, priority: st.keys[i].priority };
    else st.keys.push(k);
  }

  function openEdit(k, mode) {
    const ps = pillState(k.id);
    ps.edit = ps.edit === mode ? null : mode;
    ps.editNode = null;
    renderCards();
    const first = root.querySelector(`[data-focus="edit-${k.id}"]`);
    if (first) first.focus();
    else {
      const b = root.querySelector(`[data-focus="${mode}-${k.id}"]`);
      if (b) b.focus();
    }
  }

  function editForm(k, ps) {
    if (ps.editNode && ps.editNode.dataset.mode === ps.edit) return ps.editNode;
    const closeEdit = () => {
      ps.edit = null;
      ps.editNode = null;
      renderCards();
      const b = root.querySelector(`[data-focus="pill-${k.id}"]`);
      if (b) b.focus();
    };
    const errSlot = h('div');
    let form;
    if (ps.edit === 'rename') {
      const name = h('input', { type: 'text', value: k.name || '', maxlength: '100', autocomplete: 'off', 'data-focus': `edit-${k.id}` });
      const exp = h('input', { type: 'date', value: k.expiresAt ? k.expiresAt.slice(0, 10) : '', 'data-focus': `edit-exp-${k.id}` });
      const fName = field({ label: 'Name', input: name });
      const fExp = field({ label: 'Expires on (optional)', input: exp, hint: 'From then on the key is marked expired and not used.' });
      const save = h('button', { type: 'submit', class: 'btn btn--small btn--primary' }, 'Save');
      const cancel = h('button', { type: 'button', class: 'btn btn--small', onclick: closeEdit }, 'Cancel');
      form = h('form', { class: 'pill__edit', 'data-mode': 'rename', novalidate: true, 'aria-label': `Rename ${k.name || 'key'}` },
        fName.wrap, fExp.wrap, errSlot, h('div', { class: 'form-actions' }, save, cancel));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clear(errSlot);
        fName.setError(null);
        fExp.setError(null);
        const bodyOut = { name: name.value.trim() };
        const oldExp = k.expiresAt ? k.expiresAt.slice(0, 10) : '';
        if (exp.value !== oldExp) bodyOut.expiresAt = exp.value ? new Date(`${exp.value}T00:00:00Z`).toISOString() : null;
        try {
          const updated = await busy(save, 'Saving…', () => patch(`${base}/keys/${encodeURIComponent(k.id)}`, bodyOut));
          st.writes++;
          mergeKey(updated);
          toast('Key renamed.');
          closeEdit();
          refreshSoon();
        } catch (err) {
          if (err.field === 'name') fName.setError(plainError(err));
          else if (err.field === 'expiresAt') fExp.setError(plainError(err));
          else errSlot.append(inlineError(err));
        }
      });
    } else {
      const secret = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', 'data-focus': `edit-${k.id}` });
      const fSecret = field({ label: 'New key', input: secret, hint: `Replaces ${k.maskedKey}; the name and position stay, the status becomes untested.` });
      const save = h('button', { type: 'submit', class: 'btn btn--small btn--primary' }, 'Rotate key');
      const cancel = h('button', { type: 'button', class: 'btn btn--small', onclick: closeEdit }, 'Cancel');
      form = h('form', { class: 'pill__edit', 'data-mode': 'rotate', novalidate: true, 'aria-label': `Rotate ${k.name || 'key'}` },
        fSecret.wrap, errSlot, h('div', { class: 'form-actions' }, save, cancel));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clear(errSlot);
        fSecret.setError(null);
        if (!secret.value.trim()) { fSecret.setError('Paste the new key.'); secret.focus(); return; }
        try {
          const updated = await busy(save, 'Rotating…', () => post(`${base}/keys/${encodeURIComponent(k.id)}/rotate`, { key: secret.value.trim() }));
          st.writes++;
          secret.value = '';
          mergeKey(updated);
          pillState(k.id).result = { kind: 'ok', text: 'Rotated: test the new key to confirm it works.' };
          toast('Key rotated.');
          closeEdit();
          refreshSoon();
        } catch (err) {
          if (err.field === 'key') fSecret.setError(plainError(err));
          else errSlot.append(inlineError(err));
        }
      });
    }
    form.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); closeEdit(); } });
    ps.editNode = form;
    return form;
  }

  async function deleteKey(k, p, btn, resultEl) {
    const label = k.name || 'this key';
    const s = st.settings;
    const usable = keysOf(k.provider).filter((x) => x.id !== k.id && x.isEnabled && (x.status === 'valid' || x.status === 'untested'));
    const warn = k.provider === s.primary && usable.length === 0
      ? h('p', { class: 'alert alert--warn' }, `This is ${p.name}'s last usable key: jobs will go to the fallback chain until you add another.`) : null;
    const ok = await confirmDialog({
      title: `Delete ${label}?`,
      body: [h('p', {}, `The ${p.name} key `, h('code', {}, k.maskedKey), ' will be deleted. Jobs stop using it at once. This cannot be undone.'), warn],
      confirmLabel: 'Delete key',
      danger: true,
    });
    if (!ok) return;
    try {
      await busy(btn, 'Deleting…', () => del(`${base}/keys/${encodeURIComponent(k.id)}`));
      st.writes++;
      st.keys = st.keys.filter((x) => x.id !== k.id);
      st.pill.delete(k.id);
      toast(`${label} deleted.`);
      announce(`${label} deleted`);
      renderAll();
      const cardEl = root.querySelector(`[data-provider="${k.provider}"] h2`);
      if (cardEl) { cardEl.setAttribute('tabindex', '-1'); cardEl.focus(); }
      refresh();
    } catch (err) {
      pillState(k.id).result = { kind: 'bad', text: `Not deleted: ${plainError(err)}` };
      showResult(k, resultEl);
    }
  }

  // ---- reorder ---------------------------------------------------------------------------

  // Positions are read when the move is made, from the order on screen: a pill drawn before
  // a redraw still moves its own key.
  function moveBy(k, delta, focusKey) {
    const at = keysOf(k.provider).findIndex((x) => x.id === k.id);
    if (at >= 0) moveKey(k.provider, k.id, at + delta, focusKey);
  }

  async function moveKey(provider, id, to, focusKey) {
    const list = keysOf(provider);
    const from = list.findIndex((k) => k.id === id);
    if (from < 0 || to < 0 || to >= list.length || from === to) return;
    st.writes++;
    const before = list.map((k) => ({ id: k.id, priority: k.priority }));
    const [moved] = list.splice(from, 1);
    list.splice(to, 0, moved);
    list.forEach((k, i) => { k.priority = i; });
    st.cardErrors.delete(provider);
    renderCards();
    let focusEl = root.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
    if (!focusEl || focusEl.disabled) focusEl = root.querySelector(`[data-focus="pill-${id}"]`);
    if (focusEl) focusEl.focus({ preventScroll: false });
    announce(`${moved.name || 'Key'} moved to position ${to + 1} of ${list.length}`);
    st.reorderPending.set(provider, (st.reorderPending.get(provider) || 0) + 1);
    const cardEl = root.querySelector(`[data-provider="${provider}"]`);
    if (cardEl) cardEl.classList.add('is-saving');
    // One PUT at a time per provider, each with the order on screen when it is sent, so
    // quick successive moves are saved in order.
    const prev = st.reorderQueue.get(provider) || Promise.resolve();
    const next = prev.then(async () => {
      const order = keysOf(provider).map((k, idx) => ({ id: k.id, priority: idx }));
      await put(`${base}/keys/reorder`, { keys: order });
    });
    st.reorderQueue.set(provider, next.catch(() => {}));
    const settle = () => {
      st.reorderPending.set(provider, st.reorderPending.get(provider) - 1);
      const c = root.querySelector(`[data-provider="${provider}"]`);
      if (c && !st.reorderPending.get(provider)) c.classList.remove('is-saving');
    };
    try {
      await next;
      settle();
    } catch (err) {
      settle();
      for (const b of before) {
        const k = st.keys.find((x) => x.id === b.id);
        if (k) k.priority = b.priority;
      }
      st.cardErrors.set(provider, `The new order was not saved: ${plainError(err)}`);
      if (ctx.alive()) withFocus(renderCards);
      refreshSoon();
    }
  }

  // A redraw (a live event) during a drag replaces the pills: Chromium then drops on the old
  // pill, detached and without a size. Positions and sizes are therefore read at the drop,
  // from the order and the pill now on screen.
  function wireDrag(li, k) {
    const shown = () => (li.isConnected ? li
      : root.querySelector(`li.pill[data-key-id="${CSS.escape(k.id)}"]`));
    const where = (ev) => {
      const el = shown();
      if (!el) return null;
      const r = el.getBoundingClientRect();
      const horizontal = el.parentElement && el.parentElement.clientWidth > r.width * 1.5;
      return horizontal ? (ev.clientX < r.left + r.width / 2 ? 'before' : 'after')
        : (ev.clientY < r.top + r.height / 2 ? 'before' : 'after');
    };
    li.addEventListener('dragstart', (ev) => {
      if (ev.target !== li) return;
      st.drag = { id: k.id, provider: k.provider };
      ev.dataTransfer.effectAllowed = 'move';
      ev.dataTransfer.setData('text/plain', k.id);
      li.classList.add('is-dragging');
    });
    li.addEventListener('dragend', () => {
      st.drag = null;
      li.classList.remove('is-dragging');
      for (const x of root.querySelectorAll('.drop-before, .drop-after')) x.classList.remove('drop-before', 'drop-after');
    });
    li.addEventListener('dragover', (ev) => {
      if (!st.drag || st.drag.provider !== k.provider) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'move';
      const w = where(ev);
      li.classList.toggle('drop-before', w === 'before');
      li.classList.toggle('drop-after', w === 'after');
    });
    li.addEventListener('dragleave', () => li.classList.remove('drop-before', 'drop-after'));
    li.addEventListener('drop', (ev) => {
      if (!st.drag || st.drag.provider !== k.provider) return;
      ev.preventDefault();
      const id = st.drag.id;
      st.drag = null;
      const list = keysOf(k.provider);
      const from = list.findIndex((x) => x.id === id);
      const at = list.findIndex((x) => x.id === k.id);
      const w = where(ev);
      if (from < 0 || at < 0 || !w) {   // the key went away meanwhile
        renderCards();
        return;
      }
      let to = w === 'before' ? at : at + 1;
      if (from < to) to -= 1;
      if (to !== from) moveKey(k.provider, id, to, `pill-${id}`);
      else renderCards();
    });
  }

  // ---- add keys --------------------------------------------------------------------------

  // Keys: separated by commas and/or newlines (any run of them is one separator), trimmed.
  function splitKeys(text) {
    return text.split(/(?:\s*[,\r\n]\s*)+/).map((x) => x.trim()).filter(Boolean);
  }
  // Names: by position, so an empty name ("Prod,,Backup") leaves that key unnamed; a comma
  // at the end of a line and the newline after it are one separator.
  function splitNames(text) {
    const raw = text.replace(/,[ \t]*\r?\n/g, ',').split(/,|\r?\n/).map((x) => x.trim());
    while (raw.length && raw[raw.length - 1] === '') raw.pop();
    return raw;
  }

  function addKeysBlock(p) {
    let entry = st.addForms.get(p.id);
    if (entry) {
      return entry.node;
    }
    const node = h('div', { class: 'addkeys' });
    const openBtn = h('button', { type: 'button', class: 'btn btn--small btn--primary-soft addkeys__open', 'aria-expanded': 'false', 'data-focus': `add-open-${p.id}` }, '+ Add keys');
    const formId = `addkeys-${p.id}`;
    openBtn.setAttribute('aria-controls', formId);
    const keysInput = h('textarea', { rows: '3', autocomplete: 'off', spellcheck: 'false', class: 'mono', 'data-focus': `add-keys-${p.id}` });
    const namesInput = h('input', { type: 'text', autocomplete: 'off', 'data-focus': `add-names-${p.id}` });
    const validate = h('input', { type: 'checkbox', id: `${formId}-validate`, 'data-focus': `add-validate-${p.id}` });
    const fKeys = field({ label: 'Keys', input: keysInput, id: `${formId}-keys`, hint: 'One per line, or separated by commas. Keys are stored encrypted and never shown again.' });
    const fNames = field({ label: 'Names (optional)', input: namesInput, id: `${formId}-names`, hint: 'In the same order, separated by commas: e.g. Production, Backup.' });
    const preview = h('ol', { class: 'addkeys__preview', 'aria-label': 'Keys to add' });
    const errSlot = h('div', { class: 'form-error-slot' });
    const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--small' }, 'Save keys');
    const cancel = h('button', { type: 'button', class: 'btn btn--small' }, 'Cancel');
    const form = h('form', { class: 'addkeys__form', id: formId, hidden: true, novalidate: true, 'aria-label': `Add ${p.name} keys` },
      h('h3', { class: 'addkeys__title' }, `Add ${p.name} keys`),
      fKeys.wrap, fNames.wrap,
      h('div', { class: 'field field--check' },
        h('div', { class: 'check' }, validate, h('label', { for: `${formId}-validate` }, 'Validate before saving')),
        h('p', { class: 'field__hint' }, `Each key is tested against ${p.name} first; nothing is saved unless all of them work.`)),
      preview, errSlot,
      h('div', { class: 'form-actions' }, submit, cancel));
    node.append(openBtn, form);
    entry = { node, open: false };
    st.addForms.set(p.id, entry);

    let entryErrors = new Map(); // index -> {key?, name?}
    function updatePreview() {
      clear(preview);
      const keys = splitKeys(keysInput.value);
      const names = namesInput.value.trim() ? splitNames(namesInput.value) : [];
      keys.forEach((k, i) => {
        const e = entryErrors.get(i) || {};
        preview.append(h('li', { class: ['addkeys__entry', e.key || e.name ? 'is-bad' : null], 'data-index': String(i) },
          h('span', { class: 'addkeys__num' }, `${i + 1}.`),
          h('code', {}, k ? maskSecret(k) : '(empty)'),
          names[i] ? h('span', { class: 'addkeys__name' }, names[i]) : h('span', { class: 'muted' }, 'no name'),
          e.key ? h('span', { class: 'addkeys__err', role: 'alert' }, e.key) : null,
          e.name ? h('span', { class: 'addkeys__err', role: 'alert' }, e.name) : null));
      });
      preview.hidden = keys.length === 0;
      submit.textContent = keys.length > 1 ? `Save ${keys.length} keys` : 'Save key';
    }
    function clearErrors() {
      entryErrors = new Map();
      clear(errSlot);
      fKeys.setError(null);
      fNames.setError(null);
    }
    keysInput.addEventListener('input', () => { clearErrors(); updatePreview(); });
    namesInput.addEventListener('input', () => { clearErrors(); updatePreview(); });
    validate.addEventListener('change', () => { submit.dataset.validate = validate.checked ? '1' : ''; });
    function setOpen(open) {
      entry.open = open;
      form.hidden = !open;
      openBtn.hidden = open;
      openBtn.setAttribute('aria-expanded', String(open));
      if (open && node.closest('.provider')) node.closest('.provider').classList.remove('provider--unused');
      if (open) keysInput.focus();
      else openBtn.focus();
    }
    openBtn.addEventListener('click', () => setOpen(true));
    cancel.addEventListener('click', () => { keysInput.value = ''; namesInput.value = ''; clearErrors(); updatePreview(); setOpen(false); });
    form.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); cancel.click(); } });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors();
      const keys = splitKeys(keysInput.value);
      const names = namesInput.value.trim() ? splitNames(namesInput.value) : [];
      if (!keys.length) { fKeys.setError('Paste at least one key.'); keysInput.focus(); return; }
      if (names.length > keys.length) {
        fNames.setError(`${names.length} names for ${keys.length} key${keys.length === 1 ? '' : 's'}: give at most one name per key.`);
        namesInput.focus();
        return;
      }
      const n = keys.length;
      const label = validate.checked ? `Testing ${n} key${n === 1 ? '' : 's'} with ${p.name}…` : 'Saving…';
      const progress = validate.checked ? h('p', { class: 'muted addkeys__progress' }, spinner(`Testing each key against ${p.name}; this can take a few seconds per key.`)) : null;
      if (progress) errSlot.append(progress);
      try {
        const r = await busy(submit, label, () => post(`${base}/keys`, {
          provider: p.id, keys, names: names.length ? names : undefined, validate: validate.checked,
        }));
        st.writes++;
        if (progress) progress.remove();
        keysInput.value = '';
        namesInput.value = '';
        updatePreview();
        for (const k of (r && r.keys) || []) mergeKey(k);
        const added = ((r && r.keys) || []).length;
        toast(`${added} ${p.name} key${added === 1 ? '' : 's'} added${validate.checked ? ' and validated' : ''}.`);
        announce(`${added} keys added`);
        entry.open = false;
        form.hidden = true;
        openBtn.hidden = false;
        openBtn.setAttribute('aria-expanded', 'false');
        await refresh();
        const b = root.querySelector(`[data-focus="add-open-${p.id}"]`);
        if (b) b.focus();
      } catch (err) {
        if (progress) progress.remove();
        showAddError(err, keys);
      }
    });
    function showAddError(err, keys) {
      const m = /^(keys|names)\[(\d+)\]/.exec(err.field || '');
      const text = (err.serverMessage || '').replace(/^entry \d+:?\s*/i, '');
      if (m && err instanceof ApiError && (err.status === 422 || err.status === 409)) {
        const i = Number(m[2]);
        const which = m[1] === 'keys' ? 'key' : 'name';
        const msg = err.status === 409 ? 'Already stored in this workspace for this provider.' : sentenceCase(text);
        entryErrors.set(i, { [which]: msg });
        updatePreview();
        const what = `${which === 'key' ? 'Key' : 'Name'} ${i + 1}${keys[i] && which === 'key' ? ` (${maskSecret(keys[i])})` : ''}`;
        (which === 'key' ? fKeys : fNames).setError(`${what}: ${msg} Nothing was saved.`);
        (which === 'key' ? keysInput : namesInput).focus();
      } else if (err.field === 'keys') {
        fKeys.setError(`${plainError(err)} Nothing was saved.`);
        keysInput.focus();
      } else if (err.field === 'names') {
        fNames.setError(`${plainError(err)} Nothing was saved.`);
        namesInput.focus();
      } else {
        errSlot.append(inlineError(`${plainError(err)} Nothing was saved.`));
      }
    }
    updatePreview();
    return node;
  }

  function sentenceCase(s) {
    s = String(s || '').trim();
    if (!s) return 'Not accepted.';
    s = s[0].toUpperCase() + s.slice(1);
    return /[.!?)]$/.test(s) ? s : `${s}.`;
  }

  // ---- live events -----------------------------------------------------------------------

  ctx.on('key_status_changed', (ev) => {
    if (ev.key) {
      const before = JSON.stringify(st.keys);
      // The key as it was when the event was written: its priority may predate a move made
      // here since. The order comes from the reload below, after any move is saved.
      if (ev.key.deleted) st.keys = st.keys.filter((x) => x.id !== ev.key.id);
      else mergeKey(ev.key);
      if (JSON.stringify(st.keys) !== before) renderAll();
    }
    refreshSoon();
  });
  ctx.on('settings_changed', () => {
    if (st.dirty) refreshSettingsOnly();
    else refreshSoon();
  });
  ctx.on('resync', () => refreshSoon());

  async function refreshSettingsOnly() {
    try {
      const s = await get(`${base}/providers`);
      if (!ctx.alive()) return;
      st.settings = s;
      noteTheirs();
      withFocus(() => { renderBanner(); renderSettings(); renderCards(); });
    } catch { /* next refresh shows it */ }
  }

  await loadInto(cards, load, () => renderAll(), { label: 'Loading keys…', alive: ctx.alive });
  ctx.onCleanup(() => { for (const d of document.querySelectorAll('dialog')) d.close(); });
}
