// Chats: the conversations of the workspace. A message shows at once when sent; the answer
// arrives live (message_created / job_succeeded), or its error (job_failed).
import { h, replace, clear, timeEl } from '../dom.js';
import { get, post, plainError } from '../api.js';
import { pageHeader, spinner, errorBox, busy, announce, field, inlineError,
  emptyState, PROVIDER_NAMES } from '../ui.js';

const JOB_EVENTS = ['job_queued', 'job_started', 'job_retrying', 'job_succeeded', 'job_failed', 'job_cancelled'];

export async function render(ctx) {
  const { root, base } = ctx;
  root.classList.add('page--wide');
  root.append(pageHeader('Chats', 'Conversations answered by the workspace’s providers. Answers arrive here live.'));
  const listPane = h('aside', { class: 'chat-list', 'aria-label': 'Conversations' });
  const convPane = h('section', { class: 'chat-conv', 'aria-label': 'Conversation' });
  const layout = h('div', { class: ['chat-layout', ctx.id ? 'has-open' : null] }, listPane, convPane);
  root.append(layout);

  const st = { chats: [], next: null };

  // ---- list of chats -----------------------------------------------------------------------
  const listBody = h('div', { class: 'chat-list__body' });
  if (ctx.isMember) listPane.append(newChatForm());
  listPane.append(listBody);

  function renderList() {
    if (!st.chats.length) {
      replace(listBody, emptyState('No conversations yet.', ctx.isMember ? 'Start one with a title above.' : null));
      return;
    }
    const ul = h('ul', { class: 'chat-list__items' });
    for (const c of st.chats) {
      ul.append(h('li', {}, h('a', { href: ctx.href('chats', c.id), class: 'chat-list__link', 'aria-current': c.id === ctx.id ? 'page' : null },
        h('span', { class: 'chat-list__title' }, c.title || 'Untitled'),
        h('span', { class: 'chat-list__time muted' }, timeEl(c.createdAt)))));
    }
    replace(listBody, ul);
    if (st.next) {
      const more = h('button', { type: 'button', class: 'btn btn--small btn--block' }, 'Older conversations');
      more.addEventListener('click', async () => {
        try {
          const r = await busy(more, 'Loading…', () => get(`${base}/chats?before=${encodeURIComponent(st.next)}`));
          st.chats.push(...(r.chats || []));
          st.next = r.nextCursor || null;
          renderList();
        } catch (err) {
          more.after(inlineError(err));
        }
      });
      listBody.append(more);
    }
  }

  function newChatForm() {
    const title = h('input', { type: 'text', maxlength: '200', autocomplete: 'off', placeholder: 'e.g. Release notes' });
    const f = field({ label: 'New conversation', input: title, id: 'new-chat-title' });
    const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--small' }, 'Start');
    const errSlot = h('div');
    const form = h('form', { class: 'chat-new', novalidate: true }, h('div', { class: 'chat-new__row' }, f.wrap, submit), errSlot);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(errSlot);
      f.setError(null);
      const t = title.value.trim() || 'New conversation';
      try {
        const c = await busy(submit, 'Creating…', () => post(`${base}/chats`, { title: t }));
        title.value = '';
        st.chats.unshift(c);
        ctx.navigate(ctx.href('chats', c.id));
      } catch (err) {
        if (err.field === 'title') f.setError(plainError(err));
        else errSlot.append(inlineError(err));
      }
    });
    return form;
  }

  // ---- one conversation ---------------------------------------------------------------------
  const conv = {
    msgs: [],            // server messages, oldest first
    jobs: new Map(),     // jobId -> job (of this chat, not yet answered)
    local: [],           // messages being sent: {tmpId, content, error?}
    jobErrors: new Map(),
    told: new Map(),     // jobId -> events seen: an answer asked for before one is older
  };
  let loading = false;   // the conversation's first read is under way: events only collect
  const stream = h('ol', { class: 'messages', 'aria-label': 'Messages', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  let chat = null;

  function answered(jobId) {
    return conv.msgs.some((m) => m.direction === 'out' && m.jobId === jobId);
  }

  function atBottom() {
    return stream.scrollHeight - stream.scrollTop - stream.clientHeight < 60;
  }

  // The bubble a control is in, and which of its controls: found again after a redraw.
  function focusedSpot() {
    const a = document.activeElement;
    const li = a && stream.contains(a) ? a.closest('li') : null;
    if (!li) return null;
    const key = ['data-message-id', 'data-job-id', 'data-local'].find((k) => li.hasAttribute(k));
    return key ? { key, value: li.getAttribute(key), nth: [...li.querySelectorAll('a, button')].indexOf(a) } : null;
  }
  function refocus(spot) {
    if (!spot) return;
    const li = [...stream.children].find((x) => x.getAttribute(spot.key) === spot.value);
    const el = li && li.querySelectorAll('a, button')[spot.nth];
    if (el) el.focus({ preventScroll: true });
  }

  // Where each job not answered yet goes: after the question that asked for it (its jobId,
  // else the last question sent before the job was made), else at the end.
  function jobPlaces() {
    const after = new Map();
    const last = [];
    for (const [id, job] of conv.jobs) {
      if (answered(id)) continue;
      let q = conv.msgs.find((m) => m.direction === 'in' && m.jobId === id);
      if (!q && job.createdAt) q = conv.msgs.findLast((m) => m.direction === 'in' && (m.createdAt || '') <= job.createdAt);
      if (q) after.set(q.id, [...(after.get(q.id) || []), job]);
      else last.push(job);
    }
    return { after, last };
  }

  function renderMessages(forceScroll) {
    if (loading) return;
    const stick = forceScroll || atBottom();
    const spot = focusedSpot();
    clear(stream);
    const { after, last } = jobPlaces();
    for (const m of conv.msgs) {
      stream.append(bubble(m));
      for (const job of after.get(m.id) || []) stream.append(jobBubble(job));
    }
    for (const job of last) stream.append(jobBubble(job));
    for (const l of conv.local) stream.append(localBubble(l));
    refocus(spot);
    if (!stream.childNodes.length) {
      stream.append(h('li', { class: 'messages__empty muted' }, ctx.isMember ? 'No messages yet. Write the first one below.' : 'No messages yet.'));
    }
    if (stick) stream.scrollTop = stream.scrollHeight;
  }

  function bubble(m) {
    const out = m.direction === 'out';
    return h('li', { class: ['msg', out ? 'msg--out' : 'msg--in'], 'data-message-id': m.id, 'data-direction': m.direction },
      h('div', { class: 'msg__meta' },
        h('span', { class: 'msg__sender' }, out ? (m.sender || 'Assistant') : (m.sender || 'You')),
        ' · ', timeEl(m.createdAt),
        out && m.jobId ? [' · ', h('a', { href: ctx.href('jobs', m.jobId), class: 'msg__job' }, 'job')] : null),
      h('div', { class: 'msg__body' }, m.content));
  }

  function jobBubble(job) {
    const s = job.status;
    let body;
    let cls = 'msg--pending';
    if (s === 'failed') {
      cls = 'msg--failed';
      const retry = ctx.isMember ? h('button', { type: 'button', class: 'btn btn--small' }, 'Try again') : null;
      if (retry) {
        retry.addEventListener('click', async () => {
          const told = conv.told.get(job.id) || 0;
          try {
            const j = await busy(retry, 'Retrying…', () => post(`${base}/jobs/${encodeURIComponent(job.id)}/retry`, {}));
            conv.jobErrors.delete(job.id);
            // Unless an event has told a later state meanwhile (failed again, even).
            if ((conv.told.get(job.id) || 0) === told) {
              conv.jobs.set(job.id, { ...job, ...(j || {}), status: (j && j.status) || 'queued', error: null });
            }
            renderMessages(true);
          } catch (err) {
            conv.jobErrors.set(job.id, plainError(err));
            renderMessages();
          }
        });
      }
      body = [h('p', { class: 'msg__error' }, h('strong', {}, 'No answer: '), job.error || 'the job failed without an error message.'),
        conv.jobErrors.get(job.id) ? h('p', { class: 'msg__error', role: 'alert' }, conv.jobErrors.get(job.id)) : null,
        h('p', { class: 'msg__actions' }, retry, h('a', { href: ctx.href('jobs', job.id) }, 'Job details'))];
    } else if (s === 'cancelled') {
      cls = 'msg--cancelled';
      body = h('p', {}, 'The answer was cancelled. ', h('a', { href: ctx.href('jobs', job.id) }, 'Job details'));
    } else if (s === 'succeeded') {
      body = spinner('Answer received, loading it…');
    } else if (s === 'retrying') {
      cls = 'msg--retrying';
      body = [spinner(`Retrying (attempt ${job.attempts || 1} of ${job.maxAttempts || '?'})…`),
        job.error ? h('p', { class: 'msg__note' }, `Last try: ${job.error}`) : null];
    } else if (s === 'running') {
      body = spinner(`Thinking${job.provider ? ` (${PROVIDER_NAMES[job.provider] || job.provider})` : ''}…`);
    } else {
      body = spinner('Queued: waiting for a runner…');
    }
    return h('li', { class: ['msg', 'msg--out', cls], 'data-job-id': job.id, 'data-job-status': s },
      h('div', { class: 'msg__meta' }, h('span', { class: 'msg__sender' }, 'Assistant')),
      h('div', { class: 'msg__body' }, body));
  }

  function localBubble(l) {
    return h('li', { class: ['msg', 'msg--in', l.error ? 'msg--send-failed' : 'msg--sending'], 'data-local': l.tmpId },
      h('div', { class: 'msg__meta' }, h('span', { class: 'msg__sender' }, 'You'), ' · ',
        l.error ? h('span', { class: 'msg__error-inline' }, 'not sent') : h('span', { class: 'muted' }, 'sending…')),
      h('div', { class: 'msg__body' }, l.content),
      l.error ? h('p', { class: 'msg__error', role: 'alert' }, l.error, ' ',
        h('button', { type: 'button', class: 'btn btn--small', onclick: () => resend(l) }, 'Send again'),
        h('button', { type: 'button', class: 'btn btn--small btn--ghost', onclick: () => { conv.local = conv.local.filter((x) => x !== l); renderMessages(); } }, 'Discard')) : null);
  }

  let tmpSeq = 0;
  async function send(content, systemPrompt) {
    const l = { tmpId: `tmp-${++tmpSeq}`, content, systemPrompt, error: null };
    conv.local.push(l);
    renderMessages(true);
    await deliver(l);
  }
  async function resend(l) {
    l.error = null;
    renderMessages(true);
    await deliver(l);
  }
  async function deliver(l) {
    try {
      const body = { content: l.content };
      if (l.systemPrompt) body.systemPrompt = l.systemPrompt;
      const r = await post(`${base}/chats/${encodeURIComponent(chat.id)}/messages`, body);
      conv.local = conv.local.filter((x) => x !== l);
      if (r && r.message && !conv.msgs.some((m) => m.id === r.message.id)) conv.msgs.push(r.message);
      if (r && r.job && !answered(r.job.id)) {
        const known = conv.jobs.get(r.job.id);
        // An event may already have told a later state.
        if (!known || known.status === 'queued') conv.jobs.set(r.job.id, r.job);
        if (r.message && !r.message.jobId) r.message.jobId = r.job.id;
      }
      renderMessages(true);
    } catch (err) {
      l.error = plainError(err);
      renderMessages(true);
    }
  }

  // The chat's messages after message `after` (null: from the first), every page of them.
  async function messagesAfter(chatId, after) {
    const all = [];
    let cursor = after;
    for (;;) {
      const q = new URLSearchParams({ limit: '200' });
      if (cursor) q.set('after', cursor);
      const r = await get(`${base}/chats/${encodeURIComponent(chatId)}/messages?${q}`);
      all.push(...(r.messages || []));
      if (!r.nextCursor || r.nextCursor === cursor || !ctx.alive()) return all;
      cursor = r.nextCursor;
    }
  }

  async function catchUp() {
    if (!chat || loading) return;     // the first read brings it
    const last = conv.msgs.length ? conv.msgs[conv.msgs.length - 1].id : null;
    try {
      const msgs = await messagesAfter(chat.id, last);
      let added = false;
      for (const m of msgs) {
        if (!conv.msgs.some((x) => x.id === m.id)) { conv.msgs.push(m); added = true; }
      }
      if (added && ctx.alive()) renderMessages();
    } catch { /* the next event tries again */ }
  }

  async function openChat() {
    const head = h('div', { class: 'chat-conv__head' });
    const composerSlot = h('div', { class: 'composer-slot' });
    replace(convPane, head, stream, composerSlot);
    replace(stream, h('li', { class: 'loading' }, spinner('Loading messages…')));
    // The chat is open from now: events during the reads collect in conv, and are newer
    // than what the reads may answer.
    chat = st.chats.find((c) => c.id === ctx.id) || { id: ctx.id, title: 'Conversation' };
    loading = true;
    try {
      const [msgs, jobs] = await Promise.all([
        messagesAfter(ctx.id, null),
        get(`${base}/jobs?chatId=${encodeURIComponent(ctx.id)}&limit=50`).catch(() => ({ jobs: [] })),
      ]);
      if (!ctx.alive()) return;
      const read = new Set(msgs.map((x) => x.id));
      conv.msgs = [...msgs, ...conv.msgs.filter((x) => !read.has(x.id))];
      conv.msgs.sort((a, b) => (a.createdAt || '').localeCompare(b.createdAt || ''));
      for (const j of jobs.jobs || []) {
        // A job an event told of meanwhile: the event's fields win, the read fills the rest.
        if (conv.jobs.has(j.id)) conv.jobs.set(j.id, { ...j, ...conv.jobs.get(j.id) });
        else if (j.status !== 'succeeded' || !answered(j.id)) conv.jobs.set(j.id, j);
      }
      for (const [id] of conv.jobs) if (answered(id)) conv.jobs.delete(id);
      loading = false;
      replace(head,
        h('a', { href: ctx.href('chats'), class: 'backlink chat-conv__back' }, '← Conversations'),
        h('h2', { class: 'chat-conv__title', tabindex: '-1' }, chat.title || 'Untitled'));
      renderMessages(true);
      if (ctx.isMember) composerSlot.append(composer());
      else composerSlot.append(h('p', { class: 'muted composer-ro' }, 'You can read this conversation; your role does not allow writing to it.'));
      // A job answered between the two reads: its answer comes after the messages read.
      if ([...conv.jobs.values()].some((j) => j.status === 'succeeded')) {
        await catchUp();
        for (const [id] of conv.jobs) if (answered(id)) conv.jobs.delete(id);
        if (ctx.alive()) renderMessages();
      }
    } catch (err) {
      loading = false;
      if (!ctx.alive()) return;
      chat = null;
      replace(stream, h('li', {}, errorBox(err, { retry: openChat })));
    }
  }

  function composer() {
    const text = h('textarea', { rows: '3', placeholder: 'Write a message…  (Enter sends, Shift+Enter for a new line)', 'aria-label': 'Message' });
    const sys = h('textarea', { rows: '2', placeholder: 'Optional instructions for the assistant' });
    const fSys = field({ label: 'System prompt for this message', input: sys });
    const send1 = h('button', { type: 'submit', class: 'btn btn--primary' }, 'Send');
    const errSlot = h('div');
    const form = h('form', { class: 'composer', novalidate: true, 'aria-label': 'Send a message' },
      h('div', { class: 'composer__row' }, text, send1),
      h('details', { class: 'composer__more' }, h('summary', {}, 'System prompt'), fSys.wrap),
      errSlot);
    text.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      clear(errSlot);
      const content = text.value.trim();
      if (!content) { errSlot.append(inlineError('Write something first.')); text.focus(); return; }
      text.value = '';
      send(content, sys.value.trim() || null);
      text.focus();
    });
    return form;
  }

  // ---- live ------------------------------------------------------------------------------
  ctx.on('message_created', (ev) => {
    const m = ev.message;
    if (!m) return;
    const c = st.chats.find((x) => x.id === m.chatId);
    if (c) { st.chats = [c, ...st.chats.filter((x) => x !== c)]; renderList(); }
    if (!chat || m.chatId !== chat.id) return;
    if (!conv.msgs.some((x) => x.id === m.id)) {
      // Our own message may still be "sending": the POST answer and the event race.
      if (m.direction === 'in') {
        const l = conv.local.find((x) => x.content === m.content && !x.error);
        if (l) conv.local = conv.local.filter((x) => x !== l);
      }
      conv.msgs.push(m);
      conv.msgs.sort((a, b) => (a.createdAt || '').localeCompare(b.createdAt || ''));
      if (m.direction === 'out') announce('New answer');
      renderMessages();
    }
  });
  for (const t of JOB_EVENTS) {
    ctx.on(t, (ev) => {
      const job = ev.job || (ev.jobId ? conv.jobs.get(ev.jobId) : null);
      if (!chat || !job) return;
      const mine = job.chatId === chat.id || conv.jobs.has(job.id);
      if (!mine) return;
      conv.told.set(job.id, (conv.told.get(job.id) || 0) + 1);
      const known = conv.jobs.get(job.id) || {};
      const merged = { ...known, ...job };
      if (ev.job === undefined && t !== 'job_queued') merged.status = t.replace('job_', '').replace('started', 'running');
      if (t === 'job_succeeded') {
        conv.jobs.set(job.id, merged);
        if (!answered(job.id)) catchUp().then(() => { if (answered(job.id)) { conv.jobs.delete(job.id); renderMessages(); } });
        else conv.jobs.delete(job.id);
      } else {
        conv.jobs.set(job.id, merged);
        if (t === 'job_failed') announce(`The answer failed: ${merged.error || 'no error message'}`);
      }
      renderMessages();
    });
  }
  ctx.on('resync', async () => {
    await loadChats();
    if (chat) {
      await catchUp();
      try {
        const told = new Map(conv.told);
        const jobs = await get(`${base}/jobs?chatId=${encodeURIComponent(chat.id)}&limit=50`);
        for (const j of jobs.jobs || []) {
          if ((conv.told.get(j.id) || 0) !== (told.get(j.id) || 0)) continue;   // an event is newer
          if (!answered(j.id) && (conv.jobs.has(j.id) || j.status !== 'succeeded')) conv.jobs.set(j.id, j);
        }
        renderMessages();
      } catch { /* keep what we have */ }
    }
  });

  async function loadChats() {
    try {
      const r = await get(`${base}/chats`);
      st.chats = r.chats || [];
      st.next = r.nextCursor || null;
      if (ctx.alive()) renderList();
      return true;
    } catch (err) {
      if (!ctx.alive()) return false;
      // Chats not available at all (501, 403…): say so across the page, not in the side list.
      if (err.status === 501 || err.status === 403) replace(layout, errorBox(err, { retry: () => { replace(layout, listPane, convPane); init(); } }));
      else replace(listBody, errorBox(err, { retry: () => init() }));
      return false;
    }
  }

  async function init() {
    replace(listBody, h('div', { class: 'loading' }, spinner('Loading conversations…')));
    const ok = await loadChats();
    if (!ctx.alive()) return;
    if (ctx.id) {
      await openChat();
    } else if (ok) {
      replace(convPane, h('div', { class: 'chat-conv__placeholder' },
        emptyState(st.chats.length ? 'Choose a conversation.' : 'No conversation yet.',
          st.chats.length ? 'Its messages and live answers show here.' : (ctx.isMember ? 'Start one on the left.' : null))));
    } else {
      clear(convPane);
    }
  }
  await init();
}
