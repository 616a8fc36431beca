// snapshots.js - the history of configuration versions (newest first, paged), the diff of
// any version against the one before it, and rollback (a new version equal to an old one).

import { api } from '../api.js';
import { h, alertBox, announce, pageTitle, table, fmtTime } from '../dom.js';

const PAGE = 20;               // versions per page
const LINE_DIFF_MAX = 250000;  // lines(a) x lines(b) above which a change is shown whole

/* Entities of a configuration by kind and name, so two versions compare item by item. */
function entities(cfg) {
  const out = new Map();
  const put = (kind, name, v) => out.set(`${kind} ${name}`, JSON.stringify(v, null, 2));
  for (const u of cfg.upstreams || []) put('upstream', u.name, u);
  for (const r of cfg.routes || []) put('route', r.id, r);
  for (const k of cfg.security?.auth?.keys || []) put('key', k.name, k);
  for (const s of ['proxy', 'security', 'rateLimit', 'logging', 'metrics']) {
    const v = structuredClone(cfg[s] ?? null);
    if (s === 'security' && v?.auth) delete v.auth.keys;
    put('settings', s, v);
  }
  return out;
}

/* Line diff by longest common subsequence: [[' '|'-'|'+', line], ...]. */
function lineDiff(a, b) {
  const x = a === '' ? [] : a.split('\n');
  const y = b === '' ? [] : b.split('\n');
  if (x.length * y.length > LINE_DIFF_MAX) return [...x.map((l) => ['-', l]), ...y.map((l) => ['+', l])];
  const n = x.length;
  const m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push([' ', x[i]]); i += 1; j += 1; }
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { out.push(['+', y[j]]); j += 1; }
    else { out.push(['-', x[i]]); i += 1; }
  }
  return out;
}

function renderDiff(before, after) {
  const a = entities(before);
  const b = entities(after);
  const names = [...new Set([...a.keys(), ...b.keys()])];
  const blocks = [];
  for (const name of names) {
    const x = a.get(name);
    const y = b.get(name);
    if (x === y) continue;
    const what = x === undefined ? 'added' : y === undefined ? 'removed' : 'changed';
    blocks.push(h('h3', {}, `${name} ${what}`),
      h('pre', { class: 'diff', tabindex: '0', 'aria-label': `diff of ${name}` },
        lineDiff(x ?? '', y ?? '').map(([op, line]) => h('span', { class: op === '+' ? 'add' : op === '-' ? 'del' : '' }, `${op} ${line}`))));
  }
  return blocks.length ? blocks : [h('p', {}, 'No differences.')];
}

export async function snapshots(main) {
  const list = h('div', {}, h('p', {}, 'Loading…'));
  const detail = h('section', { id: 'snapshot-detail', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older versions');
  main.replaceChildren(pageTitle('History'),
    h('p', { class: 'help' }, 'Every change is a version. Rolling back commits a new version equal to the chosen one.'),
    list, h('div', { class: 'actions' }, more), detail);
  let rows = [];
  let current = 0;
  let before = null;

  const showDiff = async (v) => {
    detail.replaceChildren(h('p', {}, 'Loading…'));
    try {
      const after = (await api('GET', `/api/v1/snapshots/${v}`)).data;
      const prev = v > 1 ? (await api('GET', `/api/v1/snapshots/${v - 1}`).catch(() => null))?.data : null;
      detail.replaceChildren(h('h2', { tabindex: '-1', id: 'diff-title' }, `Version ${v} against ${prev ? `version ${v - 1}` : 'an empty configuration'}`),
        h('p', {}, after.summary), ...renderDiff(prev ? prev.config : {}, after.config));
      detail.querySelector('h2').focus();
    } catch (e) {
      detail.replaceChildren(alertBox('error', h('p', {}, `Could not load the diff: ${e.message}`)));
    }
  };

  const rollback = async (v) => {
    // eslint-disable-next-line no-alert
    if (!window.confirm(`Roll back to version ${v}? A new version with that configuration is created and sent to every data plane.`)) return;
    try {
      const r = await api('POST', `/api/v1/snapshots/${v}/rollback`);
      detail.replaceChildren(alertBox('ok', h('p', {}, `Rolled back to version ${v}: the configuration is now version ${r.data.version}.`)));
      announce(`rolled back to version ${v}, now version ${r.data.version}`);
      rows = [];
      before = null;
      await page();
      detail.querySelector('.alert').setAttribute('tabindex', '-1');
      detail.querySelector('.alert').focus();
    } catch (e) {
      detail.replaceChildren(alertBox('error', h('p', {}, `Rollback refused: ${e.message}`)));
    }
  };

  const draw = () => {
    list.replaceChildren(table('Configuration versions', ['Version', 'When', 'Summary', 'By', 'Actions'],
      rows.map((s) => h('tr', { 'data-version': s.version },
        h('td', {}, String(s.version), s.version === current ? ' (current)' : ''),
        h('td', {}, fmtTime(s.created_at)),
        h('td', {}, s.summary),
        h('td', {}, s.actor),
        h('td', {}, h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Diff of version ${s.version}`, onclick: () => showDiff(s.version) }, 'Diff'),
          s.version === current ? null
            : h('button', { type: 'button', class: 'danger', 'aria-label': `Roll back to version ${s.version}`, onclick: () => rollback(s.version) }, 'Roll back')))))));
  };

  const page = async () => {
    try {
      const r = (await api('GET', `/api/v1/snapshots?limit=${PAGE}${before ? `&before=${before}` : ''}`)).data;
      current = r.config_version;
      rows = rows.concat(r.items);
      before = r.next_before;
      more.hidden = !before;
      draw();
    } catch (e) {
      list.replaceChildren(alertBox('error', h('p', {}, `Could not load: ${e.message}`)));
    }
  };
  more.addEventListener('click', page);
  await page();
}
