// upstreams.js - upstreams: targets, balancing, TLS, keep-alive, breaker and health check.

import { api } from '../api.js';
import { entityPages } from '../entity.js';

// Targets are lines "URL [weight]"; one line without a weight is the seed's `url` form.
const targetsSpec = {
  key: 'targets', label: 'Targets', type: 'list', required: true, aliases: ['url'], rows: 3,
  help: 'One URL per line, optionally followed by a weight (1–1000): http://10.0.0.1:8080 3',
  get: (u) => (u.url ? [u.url] : (u.targets || []).map((t) => (t.weight && t.weight !== 1 ? `${t.url} ${t.weight}` : t.url))),
  put: (u, lines) => {
    const parsed = (lines || []).map((l) => {
      const [url, w] = l.split(/\s+/);
      return w === undefined ? { url } : { url, weight: /^\d+$/.test(w) ? Number(w) : w };
    });
    delete u.url;
    delete u.targets;
    if (parsed.length === 1 && parsed[0].weight === undefined) u.url = parsed[0].url;
    else if (parsed.length) u.targets = parsed;
  },
};

async function specs(mode, original) {
  const others = (await api('GET', '/api/v1/upstreams')).data.items
    .map((u) => u.name).filter((n) => n !== original.name);
  return [
    { key: 'name', label: 'Name', type: 'text', required: true, readonlyOnEdit: true,
      help: 'Letters, digits, . _ - (up to 64).' },
    targetsSpec,
    { key: 'loadBalancing', label: 'Load balancing', type: 'select',
      options: [['round-robin', 'round-robin (weighted)'], ['least-conn', 'least connections'],
        ['random-two-choices', 'random, two choices'], ['consistent-hash', 'consistent hash']] },
    { key: 'hashOn', label: 'Hash on (consistent hash)', type: 'text', help: 'ip, header:NAME or cookie:NAME; empty: client IP.' },
    { key: 'timeout', label: 'Timeout (ms)', type: 'int', help: 'Response head, and the longest silence between body bytes.', placeholder: 'default 30000' },
    { key: 'retries', label: 'Retries (0–10)', type: 'int', placeholder: 'default 0' },
    { key: 'fallback', label: 'Fallback upstream', type: 'select', options: [['', '— none —'], ...others.map((n) => [n, n])] },
    { group: 'TLS to https targets', fields: [
      { key: 'tlsVerify', label: 'Verify certificates', type: 'bool', def: true },
      { key: 'caFile', label: 'CA bundle file (empty: system CAs)', type: 'text' },
      { key: 'clientCert', label: 'Client certificate (PEM, mutual TLS)', type: 'textarea' },
      { key: 'clientKey', label: 'Client key (PEM)', type: 'textarea' },
    ] },
    { group: 'Keep-alive', fields: [
      { key: 'keepalive.maxIdle', label: 'Idle connections kept per target', type: 'int', placeholder: 'default 256' },
      { key: 'keepalive.idleTimeout', label: 'Idle timeout (ms)', type: 'int', placeholder: 'default 60000' },
    ] },
    { group: 'Circuit breaker', fields: [
      { key: 'circuitBreaker.enabled', label: 'Enabled', type: 'bool' },
      { key: 'circuitBreaker.failureThreshold', label: 'Failure threshold (%)', type: 'int', placeholder: 'default 50' },
      { key: 'circuitBreaker.successThreshold', label: 'Successes to close', type: 'int', placeholder: 'default 1' },
      { key: 'circuitBreaker.openDuration', label: 'Open duration (ms)', type: 'int', aliases: ['circuitBreaker.timeout'], placeholder: 'default 30000' },
      { key: 'circuitBreaker.halfOpenRequests', label: 'Half-open trial requests', type: 'int', placeholder: 'default 1' },
      { key: 'circuitBreaker.minRequests', label: 'Minimum requests in a window', type: 'int', placeholder: 'default 10' },
      { key: 'circuitBreaker.windowMs', label: 'Window (ms)', type: 'int', placeholder: 'default 10000' },
    ] },
    { group: 'Health check', fields: [
      { key: 'healthCheck.enabled', label: 'Enabled', type: 'bool' },
      { key: 'healthCheck.path', label: 'Path', type: 'text', placeholder: 'default /health' },
      { key: 'healthCheck.interval', label: 'Interval (ms)', type: 'int', placeholder: 'default 10000' },
      { key: 'healthCheck.timeout', label: 'Timeout (ms)', type: 'int', placeholder: 'default 2000' },
      { key: 'healthCheck.unhealthyThreshold', label: 'Failures to mark unhealthy', type: 'int', placeholder: 'default 3' },
      { key: 'healthCheck.healthyThreshold', label: 'Successes to mark healthy', type: 'int', placeholder: 'default 2' },
      { key: 'healthCheck.consecutiveFailures', label: 'Failed requests in a row that eject a target (0: never)', type: 'int', placeholder: 'default 5' },
      { key: 'healthCheck.ejectDuration', label: 'First ejection (ms)', type: 'int', placeholder: 'default 10000' },
    ] },
  ];
}

export const upstreams = entityPages({
  title: 'Upstreams', singular: 'upstream', hash: 'upstreams', collection: '/api/v1/upstreams', idKey: 'name',
  columns: [
    ['Name', (u) => u.name],
    ['Targets', (u) => (u.url ? u.url : u.targets.map((t) => `${t.url} ×${t.weight}`).join(', '))],
    ['Balancing', (u) => u.loadBalancing],
    ['Breaker', (u) => (u.circuitBreaker.enabled ? 'on' : 'off')],
    ['Health check', (u) => (u.healthCheck.enabled ? u.healthCheck.path : 'off')],
  ],
  searchText: (u) => [u.name, u.url || '', ...(u.targets || []).map((t) => t.url)].join(' '),
  specs,
});
