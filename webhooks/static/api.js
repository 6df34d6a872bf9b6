// The console's one door to the server: /api/v1 with the session cookie, the session's CSRF
// token on every change, and JSON errors turned into ApiError.
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

export class ApiError extends Error {
  constructor(status, code, message, reason, params) {
    super(message);
    this.status = status;
    this.code = code;
    // the case the server named, for the console to say in its language ("error.<reason>")
    this.reason = reason || '';
    this.params = params || {};
    // A route this server does not have (yet): the caller hides the control.
    this.missingRoute = status === 405 ||
      (status === 404 && /requested URL was not found/i.test(message || ''));
  }
}

// Presence: only what the agent does counts as activity. Requests made while nobody has
// touched the page for a minute (reloads after live events) say so, and the server does not
// count them (webhooks/api/__init__.py), so an idle tab turns "away" as configured.
let lastInput = Date.now();
for (const ev of ['keydown', 'pointerdown', 'wheel']) {
  window.addEventListener(ev, () => { lastInput = Date.now(); }, { passive: true, capture: true });
}

export async function api(method, path, body, idempotencyKey) {
  const headers = { Accept: 'application/json' };
  if (Date.now() - lastInput > 60000) headers['X-Tongdai-Background'] = '1';
  if (method !== 'GET') headers['X-CSRF-Token'] = CSRF;
  const form = body instanceof FormData; // files: the browser writes the multipart body
  if (body !== undefined && !form) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined || form ? body : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, 'Network', String(err && err.message || err));
  }
  if (res.status === 401) {
    window.location.assign('/login');
    throw new ApiError(401, 'Unauthorized', 'session ended');
  }
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || '', e.message || res.statusText, e.reason, e.params);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body, key) => api('POST', path, body === undefined ? {} : body, key);
export const upload = (path, form, key) => api('POST', path, form, key);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// Which routes this server has, from its OpenAPI document (generated from the code): the
// console shows a control only when its route exists. Paths use "{}" for every parameter.
let known = null;

export async function loadRoutes() {
  try {
    const res = await fetch('/api/v1/openapi.json', { credentials: 'same-origin' });
    const doc = await res.json();
    known = new Set();
    for (const [path, ops] of Object.entries(doc.paths || {})) {
      const p = path.replace(/^\/api\/v1/, '').replace(/\{[^}]*\}/g, '{}');
      for (const m of Object.keys(ops)) known.add(m.toUpperCase() + ' ' + p);
    }
  } catch {
    known = null; // unknown: assume every route exists and hide on 404 instead
  }
}

export function has(method, path) {
  return known === null || known.has(method + ' ' + path);
}
