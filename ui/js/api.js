// api.js - the admin REST API as the console uses it: the token (sessionStorage, sent as a
// bearer header), JSON in and out, and errors as ApiError carrying the API's
// {"error":{"code","message","field"}} so forms can place them next to the right control.

const TOKEN_KEY = 'flexgate.adminToken';
let onUnauthorized = () => {};

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
  /** fn() runs when the API refuses the token (401). */
  onUnauthorized: (fn) => { onUnauthorized = fn; },
};

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const e = (body && body.error) || {};
    super(e.message || fallback || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status ? `http_${status}` : 'network');
    this.field = e.field || null;
    this.line = e.line || null;
    this.column = e.column || null;
  }
}

/**
 * One API call. opts: body (object -> JSON, string -> sent as is with opts.contentType),
 * etag (sent as If-Match), token (instead of the stored one). Resolves to
 * {status, data, text, etag, version}; rejects with ApiError.
 */
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json' };
  const token = opts.token ?? session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (typeof opts.body === 'string') {
    body = opts.body;
    headers['Content-Type'] = opts.contentType || 'application/yaml';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  if (opts.etag) headers['If-Match'] = opts.etag;
  let r;
  try {
    r = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, null, `The control plane could not be reached (${e.message}).`);
  }
  const text = await r.text();
  let data = null;
  if ((r.headers.get('Content-Type') || '').startsWith('application/json') && text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data);
    if (r.status === 401 && !opts.token) onUnauthorized(err);
    throw err;
  }
  return { status: r.status, data, text, etag: r.headers.get('ETag'),
           version: r.headers.get('X-Config-Version') };
}

/** Path of one item of a collection ("/api/v1/keys/Client%20A"). */
export function itemPath(collection, name) {
  return `${collection}/${encodeURIComponent(name)}`;
}
