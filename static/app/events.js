// Live workspace events over server-sent events (no polling).
//
// EventSource reconnects by itself after a dropped stream and sends Last-Event-ID, so the
// server resumes where we left off. When that does not work (the server answered an error,
// which closes an EventSource for good, or reconnects keep failing), we take over: wait with
// exponential backoff, look at what the server answers, and open a new EventSource with
// ?lastEventId=<the last id seen>, so nothing is missed. `resync` (the server no longer holds
// the events after our id) and a reconnect without any id tell the pages to reload.

export const EVENT_TYPES = ['job_queued', 'job_started', 'job_retrying', 'job_succeeded',
  'job_failed', 'job_cancelled', 'message_created', 'key_status_changed', 'settings_changed',
  'resync'];

const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 15000;
const NOT_IMPLEMENTED_RETRY = 60000;

export class LiveEvents {
  constructor(ws, { onStatus, onUnauthorized } = {}) {
    this.ws = ws;
    this.url = `/api/workspaces/${encodeURIComponent(ws)}/events`;
    this.handlers = new Map();
    this.lastEventId = null;
    this.es = null;
    this.timer = null;
    this.attempt = 0;
    this.nativeFailures = 0;
    this.everOpened = false;
    this.failed = false;
    this.stopped = false;
    this.status = { state: 'connecting', text: 'Connecting…' };
    this.onStatus = onStatus || (() => {});
    this.onUnauthorized = onUnauthorized || (() => {});
    this.onOnline = () => { if (!this.stopped && (!this.es || this.es.readyState !== 1)) this.reconnectNow(); };
    window.addEventListener('online', this.onOnline);
  }

  // fn(data, event) for one type, or '*' for every event. Returns the unsubscribe function.
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  emit(type, data, ev) {
    for (const key of [type, '*']) {
      for (const fn of Array.from(this.handlers.get(key) || [])) {
        try {
          fn(data, ev);
        } catch (e) {
          console.error('event handler failed', e);
        }
      }
    }
  }

  setStatus(state, text) {
    this.status = { state, text };
    this.onStatus(this.status);
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    if (this.es) this.es.close();
    this.es = null;
  }

  open() {
    if (this.stopped) return;
    if (this.es) this.es.close();
    const url = this.lastEventId ? `${this.url}?lastEventId=${encodeURIComponent(this.lastEventId)}` : this.url;
    const es = new EventSource(url, { withCredentials: true });
    this.es = es;
    this.setStatus('connecting', this.everOpened ? 'Reconnecting…' : 'Connecting…');
    es.onopen = () => {
      if (es !== this.es) return;
      // Down before: after a stream that was open, or after a first connection that failed
      // (the page has loaded its data meanwhile, and events since then are gone).
      const wasDown = this.status.state !== 'live' && (this.everOpened || this.failed);
      this.failed = false;
      this.attempt = 0;
      this.nativeFailures = 0;
      this.setStatus('live', 'Live');
      // Without an event id the server cannot replay what we missed while away: reload.
      if (wasDown && !this.lastEventId) this.emit('resync', { type: 'resync', reason: 'reconnected' });
      this.everOpened = true;
    };
    es.onerror = () => {
      if (es !== this.es || this.stopped) return;
      this.failed = true;   // down until the next open, which then has to resync
      if (es.readyState === EventSource.CLOSED) {
        // The server answered with an error status (or not at all): find out at once the
        // first time, then back off.
        this.scheduleReconnect(this.attempt === 0 ? 0 : undefined);
        return;
      }
      // CONNECTING: the browser retries by itself (after the server's `retry:`) and sends
      // Last-Event-ID. After repeated failures we back off ourselves.
      this.nativeFailures += 1;
      if (this.nativeFailures >= 3) {
        es.close();
        this.scheduleReconnect();
      } else {
        this.setStatus('reconnecting', 'Connection lost, reconnecting…');
      }
    };
    const handle = (ev) => {
      if (es !== this.es) return;
      if (ev.lastEventId) this.lastEventId = ev.lastEventId;
      let data = {};
      if (ev.data) {
        try {
          data = JSON.parse(ev.data);
        } catch {
          data = { raw: ev.data };
        }
      }
      const type = ev.type === 'message' ? (data.type || 'message') : ev.type;
      this.emit(type, data, ev);
    };
    for (const t of EVENT_TYPES) es.addEventListener(t, handle);
    es.addEventListener('message', handle);
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    this.probeAndOpen();
  }

  scheduleReconnect(delay) {
    if (this.stopped) return;
    if (this.es) this.es.close();
    this.attempt += 1;
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** Math.min(this.attempt - 1, 10));
    const wait = delay ?? Math.round(base * (0.75 + Math.random() * 0.5));
    this.setStatus('reconnecting', wait < 1000 ? 'Reconnecting…'
      : `Live updates interrupted, reconnecting in ${Math.ceil(wait / 1000)} s…`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.probeAndOpen(), wait);
  }

  // Asks the server what it answers before opening a new EventSource, so the person is told
  // why live updates are off (signed out, not available, server down).
  async probeAndOpen() {
    if (this.stopped) return;
    this.setStatus('connecting', 'Reconnecting…');
    const ctl = new AbortController();
    let status = 0;
    try {
      const r = await fetch(this.url, { headers: { Accept: 'text/event-stream' }, credentials: 'same-origin',
        signal: ctl.signal, cache: 'no-store' });
      status = r.status;
      ctl.abort();
    } catch (e) {
      status = e && e.name === 'AbortError' ? 200 : 0;
    }
    if (this.stopped) return;
    if (status === 200) {
      this.open();
    } else if (status === 401) {
      this.setStatus('off', 'Signed out');
      this.onUnauthorized();
    } else if (status === 403 || status === 404) {
      this.setStatus('off', 'No live updates for this workspace');
    } else if (status === 501) {
      this.attempt = 0;
      this.setStatus('off', 'Live updates not available on this server yet');
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.probeAndOpen(), NOT_IMPLEMENTED_RETRY);
    } else {
      this.scheduleReconnect();
    }
  }
}
