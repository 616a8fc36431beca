// settings.js - the settings sections (security, rate limits, logging, proxy, metrics), each
// its own form with its own ETag, written with PUT /api/v1/settings/<section>.

import { api } from '../api.js';
import { h, alertBox, announce, pageTitle } from '../dom.js';
import { buildForm } from '../form.js';
import { rateLimit } from './routes.js';

const SECTIONS = [
  ['security', 'Security', [
    { key: 'allowedHosts', label: 'Allowed hosts', type: 'list', help: 'Host patterns, one per line; empty: any.' },
    { key: 'blockedIPs', label: 'Blocked IPs', type: 'list', help: 'Addresses or CIDRs, one per line (10.0.0.0/8).' },
    { key: 'trustedProxies', label: 'Trusted proxies', type: 'list', help: 'Peers whose X-Forwarded-* headers are kept.' },
    { key: 'strict', label: 'Strict (allow-list violations are errors)', type: 'bool' },
    { key: 'auth.type', label: 'API key type', type: 'select', options: [['apiKey', 'apiKey']] },
    { key: 'auth.header', label: 'API key header', type: 'text', help: 'Default X-API-Key. Keys themselves are on the API keys page.' },
  ]],
  ['rateLimit', 'Rate limits', [
    { key: 'enabled', label: 'Rate limiting enabled', type: 'bool' },
    { key: 'backend', label: 'Backend', type: 'select', options: [['local', 'local (per data plane)'], ['redis', 'redis (shared)']] },
    { key: 'redis.url', label: 'Redis URL (for the redis backend)', type: 'text', help: 'redis://host:6379, rediss://… or unix:/path' },
    { group: 'Global limit', optional: 'global', fields: rateLimit('global') },
    { key: 'perRoute', label: 'Per-path limits (JSON list)', type: 'json', rows: 5,
      help: '[{"path": "/api/*", "max": 100, "windowMs": 60000}]' },
  ]],
  ['logging', 'Logging', [
    { key: 'level', label: 'Level', type: 'select', options: [['debug', 'debug'], ['info', 'info'], ['warn', 'warn'], ['error', 'error']] },
    { key: 'format', label: 'Format', type: 'select', options: [['json', 'json']] },
    { key: 'sampling.successRate', label: 'Share of successful requests logged (0–1)', type: 'int', float: true },
    { key: 'sampling.errorRate', label: 'Share of failed requests logged (0–1)', type: 'int', float: true },
  ]],
  ['proxy', 'Proxy', [
    { key: 'port', label: 'Port', type: 'int' },
    { key: 'timeout.request', label: 'Request timeout (ms)', type: 'int' },
    { key: 'timeout.connect', label: 'Connect timeout (ms)', type: 'int' },
    { key: 'timeout.idle', label: 'Idle timeout (ms)', type: 'int' },
    { key: 'timeout.header', label: 'Request head timeout (ms)', type: 'int' },
    { key: 'maxBodySize', label: 'Largest request body', type: 'size', help: 'Bytes, or a size such as 10mb.' },
    { key: 'maxHeaderSize', label: 'Largest request head (bytes)', type: 'int' },
    { key: 'maxHeaders', label: 'Most header fields', type: 'int' },
    { key: 'maxConnections', label: 'Most client connections per process', type: 'int' },
    { key: 'maxPending', label: 'Pending requests where shedding by priority starts (0: never)', type: 'int' },
    { key: 'retryBudget', label: 'Retries at most this share of requests (%)', type: 'int' },
  ]],
  ['metrics', 'Metrics', [
    { key: 'enabled', label: 'Metrics enabled', type: 'bool' },
    { key: 'port', label: 'Port (0: the status listener)', type: 'int' },
    { key: 'path', label: 'Path', type: 'text' },
  ]],
];

async function section(key, title, specs) {
  const form = buildForm(specs, 'edit');
  const save = h('button', { type: 'submit' }, `Save ${title.toLowerCase()}`);
  const el = h('form', { novalidate: true, id: `settings-${key}`, 'aria-labelledby': `h-${key}` },
    h('h2', { id: `h-${key}` }, title), form.el, h('div', { class: 'actions' }, save));
  let current;
  let etag;
  const load = async () => {
    const r = await api('GET', `/api/v1/settings/${key}`);
    current = r.data;
    etag = r.etag;
  };
  await load();
  form.fill(current);
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let body;
    try { body = form.read(current); } catch (e) { form.showError(e); return; }
    save.disabled = true;
    try {
      const r = await api('PUT', `/api/v1/settings/${key}`, { body, etag });
      current = r.data;
      etag = r.etag;
      form.fill(current);
      form.clearErrors();
      form.notice(alertBox('ok', h('p', {}, `${title} saved (config version ${r.version}).`)));
      announce(`${title} saved`);
    } catch (e) {
      if (e.status !== 412) { form.showError(e); return; }
      try { await load(); } catch (e2) { form.showError(e2); return; }
      form.fill(current);
      form.stale(`the ${title.toLowerCase()} settings were`, body);
    } finally {
      save.disabled = false;
    }
  });
  return el;
}

export async function settings(main) {
  main.replaceChildren(pageTitle('Settings'), h('p', {}, 'Loading…'));
  try {
    const forms = await Promise.all(SECTIONS.map(([k, t, s]) => section(k, t, s)));
    main.replaceChildren(pageTitle('Settings'),
      h('p', { class: 'help' }, 'Each section is saved on its own and reaches every data plane as one new configuration version.'),
      ...forms);
  } catch (e) {
    main.replaceChildren(pageTitle('Settings'), alertBox('error', h('p', {}, `Could not load: ${e.message}`)));
  }
}
