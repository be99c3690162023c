// The admin API client. The bearer token lives in sessionStorage (gone when the tab
// closes) and travels only in the Authorization header, never in a URL.

const TOKEN_KEY = 'raftgate.admin_token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return `${this.status} ${this.code}: ${this.message}`;
  }
}

/** Listeners for 401 answers (the app sends the user back to the login page). */
const unauthorized = [];
export function onUnauthorized(fn) {
  unauthorized.push(fn);
}

/**
 * Calls `/admin/v1{path}`; resolves to the parsed JSON answer, or rejects with ApiError
 * carrying the API's `{"error": {"code", "message"}}`.
 */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(`/admin/v1${path}`, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the node did not answer: ${e.message}`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || text || resp.statusText);
    if (resp.status === 401 && t) unauthorized.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The node's Prometheus text (public on the admin port, like /healthz). */
export async function metricsText() {
  const resp = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
  if (!resp.ok) throw new ApiError(resp.status, `http_${resp.status}`, 'cannot read /metrics');
  return resp.text();
}
