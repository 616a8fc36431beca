// routes.js - routes: which requests go to which upstream (every field of the API's Route).

import { api } from '../api.js';
import { entityPages } from '../entity.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'];

const rateLimit = (prefix) => [
  { key: `${prefix}.enabled`, label: 'Enabled', type: 'bool' },
  { key: `${prefix}.max`, label: 'Requests per window (max)', type: 'int' },
  { key: `${prefix}.windowMs`, label: 'Window (ms)', type: 'int' },
  { key: `${prefix}.burst`, label: 'Burst (extra requests)', type: 'int' },
  { key: `${prefix}.message`, label: 'Message of the 429 answer', type: 'text' },
];
export { rateLimit };

const headerOps = (prefix, what) => [
  { key: `${prefix}.add`, label: `Set ${what} headers`, type: 'headers', help: 'One per line: Name: value' },
  { key: `${prefix}.remove`, label: `Remove ${what} headers`, type: 'list', help: 'Header names, one per line' },
];

async function specs() {
  const ups = (await api('GET', '/api/v1/upstreams')).data.items.map((u) => [u.name, u.name]);
  return [
    { key: 'id', label: 'Route id', type: 'text', readonlyOnEdit: true,
      help: 'Letters, digits, . _ -; left empty, the control plane names it route-<n>.' },
    { key: 'path', label: 'Path', type: 'text', required: true,
      help: 'Starts with /; /api/* matches /api and everything under it.' },
    { key: 'upstream', label: 'Upstream', type: 'select', required: true,
      options: [['', '— choose an upstream —'], ...ups] },
    { key: 'methods', label: 'Methods (none checked: any)', type: 'multi', options: METHODS },
    { key: 'hosts', label: 'Hosts', type: 'list', help: 'Host header patterns, one per line (empty: any); *.example.com allowed.' },
    { key: 'auth', label: 'API key required', type: 'select',
      options: [['none', 'none'], ['optional', 'optional'], ['required', 'required']] },
    { key: 'timeout', label: 'Timeout (ms, 0 = the proxy default)', type: 'int', placeholder: 'default 0' },
    { key: 'stripPrefix', label: 'Strip the matched prefix before forwarding', type: 'bool', aliases: ['stripPath'] },
    { key: 'priority', label: 'Priority (higher survives overload longer)', type: 'int', placeholder: 'default 0' },
    { key: 'websocket', label: 'Tunnel WebSocket upgrades', type: 'bool' },
    { group: 'Rate limit', optional: 'rateLimit', fields: rateLimit('rateLimit') },
    { group: 'Request headers (to the upstream)', fields: headerOps('requestHeaders', 'request') },
    { group: 'Response headers (to the client)', fields: headerOps('responseHeaders', 'response') },
  ];
}

export const routes = entityPages({
  title: 'Routes', singular: 'route', hash: 'routes', collection: '/api/v1/routes', idKey: 'id',
  columns: [
    ['Id', (r) => r.id], ['Path', (r) => r.path], ['Upstream', (r) => r.upstream],
    ['Methods', (r) => (r.methods.length ? r.methods.join(' ') : 'any')],
    ['Hosts', (r) => (r.hosts.length ? r.hosts.join(' ') : 'any')], ['Auth', (r) => r.auth],
  ],
  searchText: (r) => [r.id, r.path, r.upstream, ...r.methods, ...r.hosts].join(' '),
  specs,
});
