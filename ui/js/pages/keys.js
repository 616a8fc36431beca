// keys.js - API keys: a created key is shown once (with a copy button); revoke deletes it.

import { h, alertBox, announce, pageTitle, fmtTime } from '../dom.js';
import { entityPages } from '../entity.js';

function specs(mode) {
  return [
    { key: 'name', label: 'Name', type: 'text', required: true, readonlyOnEdit: true,
      help: 'A label for people, e.g. "Client A" (up to 64 characters).' },
    { key: 'key', label: mode === 'create' ? 'Existing key to bring over (optional)' : 'New key value (rotation, optional)',
      type: 'secret', help: mode === 'create' ? 'Leave empty and a new key is generated and shown once.' : 'Leave empty to keep the current key.' },
    { key: 'routes', label: 'Routes it may use', type: 'list', help: 'Route ids, one per line; empty: every route.' },
    { key: 'expiresAt', label: 'Expires at', type: 'text', get: (k) => (k.expiresAt ? new Date(k.expiresAt).toISOString() : ''),
      put: (k, v) => { k.expiresAt = v === undefined ? 0 : (/^\d+$/.test(v) ? Number(v) : v); },
      help: 'RFC 3339, e.g. 2030-01-31T00:00:00Z; empty: never.' },
    { key: 'disabled', label: 'Disabled', type: 'bool' },
  ];
}

// The plaintext key exists only in this answer: show it with a copy button until dismissed.
function showCreated(res, main) {
  const key = res.data.key;
  if (!key) return false;
  const input = h('input', { type: 'text', id: 'new-key', readOnly: true, value: key, spellcheck: 'false' });
  const copied = h('span', { role: 'status', 'aria-live': 'polite' });
  const copy = h('button', { type: 'button' }, 'Copy key');
  copy.addEventListener('click', async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(key);
      copied.textContent = 'Copied.';
    } catch {
      copied.textContent = 'Copy blocked by the browser: the key is selected, press Ctrl+C.';
    }
  });
  const done = h('a', { class: 'button secondary', href: '#/keys' }, 'I have stored it');
  main.replaceChildren(pageTitle(`Key "${res.data.name}" created`),
    alertBox('warn', h('p', {}, 'Copy this key now. It is shown only this once: the control plane keeps only its SHA-256.')),
    h('label', { for: 'new-key' }, 'The new API key'),
    h('div', { class: 'secret' }, input, copy), copied,
    h('p', { class: 'help' }, `Fingerprint ${res.data.fingerprint}`),
    h('div', { class: 'actions' }, done));
  main.querySelector('h1').focus();
  announce('key created; copy it now');
  return true;
}

export const keys = entityPages({
  title: 'API keys', singular: 'key', hash: 'keys', collection: '/api/v1/keys', idKey: 'name',
  deleteVerb: 'Revoke', deletedWord: 'revoked',
  columns: [
    ['Name', (k) => k.name], ['Fingerprint', (k) => h('code', {}, k.fingerprint)],
    ['Routes', (k) => (k.routes.length ? k.routes.join(' ') : 'all')],
    ['State', (k) => (k.disabled ? 'disabled' : 'active')],
    ['Expires', (k) => fmtTime(k.expiresAt) || 'never'],
  ],
  searchText: (k) => [k.name, k.fingerprint, ...k.routes].join(' '),
  specs: async (mode) => specs(mode),
  afterCreate: showCreated,
  beforeWrite: (body) => {
    if (body.key) delete body.fingerprint; // a new value has a new fingerprint
    return body;
  },
});
