// overview.js - the configuration version, counts, the request rate, and every data plane
// with the version it runs, its sync status and its own rate (GET /api/v1/dataplanes; each
// data plane reports its request count every few seconds), refreshed while the page is open.

import { api } from '../api.js';
import { h, alertBox, pageTitle, table, fmtTime } from '../dom.js';

const REFRESH_MS = 5000; // how often the data plane list is re-read while shown

// A data plane's rate, or an en dash until it has reported twice.
const fmtRate = (r) => (r === null || r === undefined ? '–' : r.toLocaleString('en-US', { maximumFractionDigits: 1 }));

function card(label, value, id) {
  return h('div', { class: 'card' }, h('div', { class: 'n', id }, String(value)), h('div', {}, label));
}

export async function overview(main) {
  const body = h('div', {}, h('p', {}, 'Loading…'));
  main.replaceChildren(pageTitle('Overview'), body);
  const draw = async () => {
    try {
      const [dps, ups, routes, keys] = await Promise.all(['dataplanes', 'upstreams', 'routes', 'keys']
        .map((c) => api('GET', `/api/v1/${c}`).then((r) => r.data)));
      const items = dps.items;
      const synced = items.filter((d) => d.status === 'in_sync').length;
      const rates = items.map((d) => d.requests_per_second).filter((r) => r !== null && r !== undefined);
      const total = rates.length ? rates.reduce((a, b) => a + b, 0) : null;
      body.replaceChildren(
        h('div', { class: 'cards' },
          card('configuration version', dps.config_version, 'ov-version'),
          card(`data planes in sync (of ${items.length})`, synced, 'ov-synced'),
          card('requests per second (all data planes)', fmtRate(total), 'ov-rps'),
          card('routes', routes.items.length, 'ov-routes'),
          card('upstreams', ups.items.length, 'ov-upstreams'),
          card('API keys', keys.items.length, 'ov-keys')),
        h('h2', {}, 'Data planes'),
        items.length
          ? table('Data planes', ['Id', 'Status', 'Applied version', 'Behind by', 'Requests/s', 'Host', 'Last seen', 'Software', 'Last error'],
            items.map((d) => h('tr', { 'data-dp': d.id },
              h('td', {}, d.id),
              h('td', {}, h('span', { class: `badge ${d.status}` }, d.status.replace('_', ' '))),
              h('td', {}, String(d.applied_version)),
              h('td', {}, String(d.lag)),
              h('td', { class: 'rps' }, fmtRate(d.requests_per_second)),
              h('td', {}, `${d.hostname} (pid ${d.pid})`),
              h('td', {}, fmtTime(d.last_seen)),
              h('td', {}, d.software_version),
              h('td', {}, d.last_error || ''))))
          : h('p', {}, 'No data plane has connected yet. Start one with flexgate-dp --control …'),
        h('p', { class: 'help' }, 'Each data plane reports how many requests it finished every few seconds; the rates are between its last two reports. Per route and status, see each data plane\'s /metrics (Prometheus). This page refreshes every 5 seconds.'));
    } catch (e) {
      body.replaceChildren(alertBox('error', h('p', {}, `Could not load: ${e.message}`)));
    }
  };
  await draw();
  const timer = setInterval(draw, REFRESH_MS);
  return () => clearInterval(timer);
}
