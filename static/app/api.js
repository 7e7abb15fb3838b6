// The JSON API client: JSON in and out, the session cookie, X-CSRF-Token on writes, and
// errors turned into ApiError with a plain-words message for people.

export class ApiError extends Error {
  constructor({ status, code, message, field, method, path }) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || '';
    this.serverMessage = message || '';
    this.field = field || null;
    this.method = method;
    this.path = path;
  }

  get notImplemented() {
    return this.status === 501;
  }
}

let csrfToken = null;
let unauthorizedHandler = null;

export function setCsrf(token) {
  csrfToken = token || null;
}

// Called when an API answer says the session is gone (401 outside the login form).
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export async function api(method, path, body, { signal, quiet401 = false } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', signal, cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') {
    if (body === undefined && method !== 'DELETE') body = {};
    if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError({ status: 0, code: 'network', method, path,
      message: 'could not reach the server' });
  }
  const text = resp.status === 204 ? '' : await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError({ status: resp.status, code: e.code, message: e.message,
      field: e.field, method, path });
    if (resp.status === 401 && !quiet401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body, opts);
export const put = (path, body, opts) => api('PUT', path, body, opts);
export const patch = (path, body, opts) => api('PATCH', path, body, opts);
export const del = (path, opts) => api('DELETE', path, undefined, opts);

// Every item of a paginated list (api.md: ?limit up to 200, nextCursor until null), as one
// answer { [name]: [...] }. path may carry a query of its own.
export async function getAll(path, name) {
  const items = [];
  const sep = path.includes('?') ? '&' : '?';
  let before = null;
  do {
    const r = await get(`${path}${sep}limit=200${before ? `&before=${encodeURIComponent(before)}` : ''}`);
    items.push(...(r[name] || []));
    before = r.nextCursor || null;
  } while (before);
  return { [name]: items };
}

function sentence(s) {
  s = String(s || '').trim();
  if (!s) return '';
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?)]$/.test(s) ? s : `${s}.`;
}

// What went wrong, in plain words, for the person who clicked.
export function plainError(err) {
  if (!(err instanceof ApiError)) {
    return sentence(err && err.message ? err.message : 'Something went wrong in this page');
  }
  const msg = err.serverMessage;
  switch (err.status) {
    case 0:
      return 'Could not reach the keyrelay server. Check your network connection and try again.';
    case 400:
      return sentence(msg || 'The server could not understand the request');
    case 401:
      return msg && /password|email/i.test(msg) ? sentence(msg)
        : 'Your session has ended. Please sign in again.';
    case 403:
      return `You are not allowed to do this${msg && msg !== 'forbidden' ? ` (${msg})` : ''}. Your role in this workspace may not permit it.`;
    case 404:
      return 'Not found: it may have been deleted in the meantime.';
    case 409:
      return sentence(msg || 'This conflicts with the current state; reload and try again');
    case 413:
      return 'Too much data in one request (the limit is 1 MiB).';
    case 415:
      return 'The server refused the request format.';
    case 422:
      return sentence(msg || 'Some of the values are not valid');
    case 429:
      return `Too many attempts${msg ? ` (${msg})` : ''}. Wait a little and try again.`;
    case 501:
      return 'Not available yet: this server does not implement this part of keyrelay yet.';
    case 502:
    case 503:
    case 504:
      return 'keyrelay is temporarily unavailable (a service may be restarting). Try again in a moment.';
    default:
      if (err.status >= 500) {
        return 'The server hit an internal error. Try again; if it keeps happening, an operator should check the server logs.';
      }
      return sentence(msg || `The request failed (HTTP ${err.status})`);
  }
}
