// ui.test.mjs - the admin console end to end in headless Chromium (playwright-core).
//
// Run by tests/integration/test_ui.py, which starts the origin, flexgate-ctl (serving ui/)
// and a data plane, installs playwright-core into the build tree and passes:
//   FG_UI_URL      http://127.0.0.1:<admin port>     FG_TOKEN   the admin token
//   FG_DP_URL      http://127.0.0.1:<data plane>     FG_ORIGIN_URL  the test origin
//   FG_SHOTS       where screenshots go              FG_PLAYWRIGHT  playwright-core's index.mjs
//   FG_CHROMIUM    the browser (/usr/bin/chromium)
// Every step drives the browser as a person would (labels, buttons, keyboard) and checks
// the outcome through the REST API or the data plane, not only on screen.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const UI = env('FG_UI_URL');
const TOKEN = env('FG_TOKEN');
const DP = env('FG_DP_URL');
const ORIGIN = env('FG_ORIGIN_URL');
const SHOTS = env('FG_SHOTS');
const { chromium } = await import(env('FG_PLAYWRIGHT'));

const STEP_TIMEOUT_MS = 10000;  // one UI expectation (ASan builds answer slower)
const RATE_TIMEOUT_MS = 30000;  // two request-count reports (every 5 s) and a page refresh (5 s)
const PROPAGATE_MS = 15000;     // a change reaches the data plane
const TOTAL_MS = 150000;        // the whole run, whatever happens
const PHONE = { width: 390, height: 844 };
const EXPECTED_REFUSAL = /^Failed to load resource: the server responded with a status of (400|401|412|422) /;

const killer = setTimeout(() => { console.error('ui.test: overall time limit hit'); process.exit(2); }, TOTAL_MS);
fs.mkdirSync(SHOTS, { recursive: true });

/* ---- the API and the data plane, directly ------------------------------------------ */

async function rest(method, p, body, headers = {}) {
  const r = await fetch(UI + p, {
    method, headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, etag: r.headers.get('ETag'), json: text ? JSON.parse(text) : null };
}

/** Poll fn() until it returns truthy; fail naming `what` after `ms`. Bounded in time. */
async function until(fn, what, ms = PROPAGATE_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (let i = 0; i < 2000; i += 1) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e.message; }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

async function served(p, wantStatus) {
  return until(async () => {
    const r = await fetch(DP + p);
    const body = await r.text();
    return r.status === wantStatus ? { status: r.status, body } : null;
  }, `GET ${p} on the data plane to answer ${wantStatus}`);
}

/* ---- browser helpers --------------------------------------------------------------- */

const problems = []; // console errors, CSP violations, uncaught exceptions
let shotCount = 0;

async function openPage(browser, viewport) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  // The refusals this test provokes on purpose log "Failed to load resource" (4xx); anything
  // else at error level -- a CSP violation, a script error, a 5xx -- fails the run.
  page.on('console', (m) => {
    if (m.type() === 'error' && !EXPECTED_REFUSAL.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  return page;
}

async function shot(page, name) {
  shotCount += 1;
  const t0 = Date.now();
  try {
  await page.screenshot({ path: path.join(SHOTS, `${String(shotCount).padStart(2, '0')}-${name}.png`), fullPage: true });
  } finally {
    if (process.env.FG_UI_TRACE) console.log(`  shot ${name} ${Date.now() - t0} ms`);
  }
}

async function signIn(page) {
  await page.goto(`${UI}/ui/`);
  await page.getByLabel('Admin token').waitFor();
  // keyboard only: the token field has focus on arrival, Enter submits
  assert.equal(await page.evaluate(() => document.activeElement.id), 'signin-token', 'focus starts in the token field');
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  await page.locator('#ov-version').waitFor();
}

async function go(page, nav) {
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: nav, exact: true }).click();
}

/** Every visible control has a label; every button and link has a name. */
async function checkLabels(page, where) {
  const bad = await page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.closest('[hidden]') || el.type === 'hidden') continue;
      const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) out.push(`${el.tagName} ${el.id || el.name}`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (el.closest('[hidden]')) continue;
      if (!(el.textContent.trim() || el.getAttribute('aria-label'))) out.push(`${el.tagName} without a name`);
    }
    return out;
  });
  assert.deepEqual(bad, [], `unlabelled controls on ${where}`);
}

async function fieldError(page, label) {
  const input = page.getByLabel(label, { exact: true });
  await until(async () => (await input.getAttribute('aria-invalid')) === 'true', `${label} marked invalid`, STEP_TIMEOUT_MS);
  const id = (await input.getAttribute('aria-describedby')).split(' ').pop();
  return page.locator(`#${id}`).textContent();
}

/* ---- the flows --------------------------------------------------------------------- */

const steps = [];
function step(name, fn) { steps.push([name, fn]); }
const ctx = {};

step('sign in (wrong token refused, then keyboard only)', async ({ page }) => {
  await page.goto(`${UI}/ui/`);
  await shot(page, 'signin');
  await page.getByLabel('Admin token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await until(async () => /refused/.test(await page.locator('#signin-error').textContent()), 'the refusal message', STEP_TIMEOUT_MS);
  const sent = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/')) sent.push(r.headers().authorization); });
  await signIn(page);
  assert.ok(sent.length && sent.every((a) => a === `Bearer ${TOKEN}`), 'API calls carry the bearer token');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('flexgate.adminToken')), TOKEN);
});

step('overview shows the version and the data plane in sync', async ({ page }) => {
  const v = (await rest('GET', '/api/v1/dataplanes')).json.config_version;
  await until(async () => (await page.locator('#ov-version').textContent()) === String(v), 'config version on the overview', STEP_TIMEOUT_MS);
  const row = page.locator('tr[data-dp="dp-a"]');
  await until(async () => /in sync/.test(await row.textContent()), 'dp-a in sync', STEP_TIMEOUT_MS);
  await checkLabels(page, 'overview');
  await shot(page, 'overview');
});

step('create an upstream (a refused URL is explained inline, typed data kept)', async ({ page }) => {
  await go(page, 'Upstreams');
  await page.getByRole('link', { name: 'New upstream' }).click();
  await page.getByLabel('Name (required)').fill('shop');
  await page.getByLabel('Targets (required)').fill('ftp://nowhere.example');
  await page.getByLabel('Retries (0–10)').fill('2');
  await page.getByRole('button', { name: 'Create upstream' }).click();
  const msg = await fieldError(page, 'Targets (required)');
  assert.match(msg, /url/i, 'the API message is shown at the targets field');
  assert.equal(await page.getByLabel('Name (required)').inputValue(), 'shop', 'typed name kept');
  assert.equal(await page.getByLabel('Retries (0–10)').inputValue(), '2', 'typed retries kept');
  await checkLabels(page, 'upstream form');
  await shot(page, 'upstream-invalid');
  await page.getByLabel('Targets (required)').fill(ORIGIN);
  await page.getByLabel('Enabled').first().check(); // circuit breaker
  await page.getByRole('button', { name: 'Create upstream' }).click();
  await page.locator('tr[data-name="shop"]').waitFor();
  const u = (await rest('GET', '/api/v1/upstreams/shop')).json;
  assert.equal(u.url, ORIGIN);
  assert.equal(u.retries, 2);
  assert.equal(u.circuitBreaker.enabled, true);
  await shot(page, 'upstreams');
});

step('create a route and see the data plane serve it', async ({ page }) => {
  await go(page, 'Routes');
  await page.getByRole('link', { name: 'New route' }).click();
  await page.getByLabel('Route id').fill('shop');
  await page.getByLabel('Path (required)').fill('/shop/*');
  await page.getByLabel('Upstream (required)').selectOption('shop');
  await page.getByLabel('GET', { exact: true }).check();
  await page.getByLabel('Timeout (ms, 0 = the proxy default)').fill('soon');
  await page.getByLabel('Set request headers').fill('X-Gateway: console');
  await page.getByRole('button', { name: 'Create route' }).click();
  const msg = await fieldError(page, 'Timeout (ms, 0 = the proxy default)');
  assert.match(msg, /timeout/i);
  assert.equal(await page.getByLabel('Path (required)').inputValue(), '/shop/*', 'typed path kept');
  assert.equal(await page.getByLabel('Set request headers').inputValue(), 'X-Gateway: console');
  await shot(page, 'route-invalid');
  await page.getByLabel('Timeout (ms, 0 = the proxy default)').fill('5000');
  await page.getByRole('button', { name: 'Create route' }).click();
  await page.locator('tr[data-name="shop"]').waitFor();
  const r = (await rest('GET', '/api/v1/routes/shop')).json;
  assert.deepEqual([r.path, r.upstream, r.methods, r.timeout], ['/shop/*', 'shop', ['GET'], 5000]);
  assert.deepEqual(r.requestHeaders.add, { 'X-Gateway': 'console' });
  const got = await served('/shop/items', 200);
  assert.equal(JSON.parse(got.body).path, '/shop/items');
  await shot(page, 'routes');
});

step('edit the route; the data plane follows', async ({ page }) => {
  await page.getByRole('link', { name: 'Edit route shop' }).click();
  assert.equal(await page.getByLabel('Path (required)').inputValue(), '/shop/*');
  await page.getByLabel('Path (required)').fill('/store/*');
  await page.getByLabel('Strip the matched prefix before forwarding').check();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('tr[data-name="shop"]', { hasText: '/store/*' }).waitFor();
  const got = await served('/store/items', 200);
  assert.equal(JSON.parse(got.body).path, '/items', 'prefix stripped');
  await served('/shop/items', 404);
});

step('a save without edits stores exactly what was read (every field round-trips)', async ({ page }) => {
  // give the upstream non-default values everywhere, then open and save it unchanged
  const u = await rest('GET', '/api/v1/upstreams/shop');
  const rich = {
    ...u.json, url: undefined, targets: [{ url: ORIGIN, weight: 3 }, { url: `${ORIGIN}/b`, weight: 1 }],
    loadBalancing: 'consistent-hash', hashOn: 'header:X-User', timeout: 4000, retries: 1,
    keepalive: { maxIdle: 8, idleTimeout: 9000 },
    circuitBreaker: { ...u.json.circuitBreaker, failureThreshold: 40, openDuration: 1234 },
    healthCheck: { ...u.json.healthCheck, enabled: true, path: '/hc', interval: 700 },
  };
  assert.equal((await rest('PUT', '/api/v1/upstreams/shop', rich)).status, 200);
  const r = await rest('GET', '/api/v1/routes/shop');
  const richRoute = { ...r.json, hosts: ['a.example', '*.b.example'], auth: 'optional', priority: 3, websocket: true,
    rateLimit: { enabled: true, max: 5, windowMs: 1000, burst: 2, message: 'slow down' },
    responseHeaders: { add: { 'X-A': '1', 'X-B': 'two words' }, remove: ['Server'] } };
  assert.equal((await rest('PUT', '/api/v1/routes/shop', richRoute)).status, 200);
  for (const [kind, p] of [['upstream', '/api/v1/upstreams/shop'], ['route', '/api/v1/routes/shop']]) {
    const before = (await rest('GET', p)).json;
    await page.goto(`${UI}/ui/#/${kind}s/edit/shop`);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('tr[data-name="shop"]').waitFor();
    assert.deepEqual((await rest('GET', p)).json, before, `${kind} changed by a save without edits`);
  }
  await go(page, 'Settings');
  for (const sec of ['security', 'rateLimit', 'logging', 'proxy', 'metrics']) {
    const before = (await rest('GET', `/api/v1/settings/${sec}`)).json;
    const form = page.locator(`#settings-${sec}`);
    await form.getByRole('button', { name: /^Save / }).click();
    await form.locator('.alert.ok').waitFor();
    assert.deepEqual((await rest('GET', `/api/v1/settings/${sec}`)).json, before, `settings ${sec} changed by a save without edits`);
  }
  // back to the simple route the next steps expect (strip /store, GET only)
  assert.equal((await rest('PUT', '/api/v1/routes/shop', { ...r.json })).status, 200);
  await go(page, 'Routes');
});

step('search the route list', async ({ page }) => {
  await rest('POST', '/api/v1/routes', { id: 'other', path: '/other', upstream: 'shop' });
  await page.reload();
  await page.locator('tr[data-name="other"]').waitFor();
  await page.getByLabel('Search routes').fill('store');
  assert.equal(await page.locator('tbody tr').count(), 1);
  await page.getByLabel('Search routes').fill('no-such-thing');
  assert.equal(await page.locator('tbody tr').count(), 0);
  await page.getByLabel('Search routes').fill('');
  assert.equal(await page.locator('tbody tr').count(), 2);
});

step('a stale write (412) is explained, the form refreshed, the edits restorable', async ({ page }) => {
  await page.getByRole('link', { name: 'Edit route shop' }).click();
  await page.getByLabel('Priority (higher survives overload longer)').waitFor();
  // someone else saves the route meanwhile
  const cur = await rest('GET', '/api/v1/routes/shop');
  const theirs = { ...cur.json, priority: 42 };
  assert.equal((await rest('PUT', '/api/v1/routes/shop', theirs, { 'If-Match': cur.etag })).status, 200);
  await page.getByLabel('Priority (higher survives overload longer)').fill('7');
  await page.getByRole('button', { name: 'Save changes' }).click();
  const warn = page.locator('.alert.warn', { hasText: '412' });
  await warn.waitFor();
  assert.match(await warn.textContent(), /changed by someone else/);
  assert.equal(await page.getByLabel('Priority (higher survives overload longer)').inputValue(), '42', 'form shows the stored version');
  await shot(page, 'route-stale-412');
  await page.getByRole('button', { name: 'Restore my edits' }).click();
  assert.equal(await page.getByLabel('Priority (higher survives overload longer)').inputValue(), '7', 'typed value restored');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('tr[data-name="shop"]').waitFor();
  assert.equal((await rest('GET', '/api/v1/routes/shop')).json.priority, 7);
});

step('a refused token mid-edit: sign in again, the typed form is still there', async ({ page }) => {
  await page.getByRole('link', { name: 'Edit route shop' }).click();
  await page.getByLabel('Hosts').fill('shop.example.com');
  await page.evaluate(() => sessionStorage.setItem('flexgate.adminToken', 'revoked-token'));
  await page.getByRole('button', { name: 'Save changes' }).click();
  await until(async () => /refused the token/.test(await page.locator('#signin-error').textContent()), 'the sign-in form after a 401', STEP_TIMEOUT_MS);
  assert.equal(await page.locator('#app').isHidden(), true);
  await page.getByLabel('Admin token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  assert.equal(await page.getByLabel('Hosts').inputValue(), 'shop.example.com', 'typed value kept across sign-in');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('tr[data-name="shop"]', { hasText: 'shop.example.com' }).waitFor();
  assert.deepEqual((await rest('GET', '/api/v1/routes/shop')).json.hosts, ['shop.example.com']);
});

step('create an API key: shown once with a copy button; then revoke it', async ({ page }) => {
  await go(page, 'API keys');
  await page.getByRole('link', { name: 'New key' }).click();
  await page.getByLabel('Name (required)').fill('Client A');
  await page.getByLabel('Routes it may use').fill('shop');
  await page.getByRole('button', { name: 'Create key' }).click();
  const keyField = page.getByLabel('The new API key');
  await keyField.waitFor();
  const key = await keyField.inputValue();
  assert.match(key, /^fgk_[A-Za-z0-9_-]{43}$/);
  await page.getByRole('button', { name: 'Copy key' }).click();
  await until(async () => (await page.locator('.secret + [role=status]').textContent()) !== '', 'copy feedback', STEP_TIMEOUT_MS);
  await shot(page, 'key-created');
  const listed = await rest('GET', '/api/v1/keys');
  assert.ok(!JSON.stringify(listed.json).includes(key), 'the key is not readable afterwards');
  await page.getByRole('link', { name: 'I have stored it' }).click();
  await page.locator('tr[data-name="Client A"]').waitFor();
  await shot(page, 'keys');
  await page.getByRole('button', { name: 'Revoke key Client A' }).click();
  await page.locator('.alert.ok', { hasText: 'revoked' }).waitFor();
  assert.equal(await page.locator('tr[data-name="Client A"]').count(), 0);
  assert.equal((await rest('GET', `/api/v1/keys/${encodeURIComponent('Client A')}`)).status, 404);
});

step('settings: save logging and security, a refused value at its field, a stale write', async ({ page }) => {
  await go(page, 'Settings');
  const logging = page.locator('#settings-logging');
  await logging.getByLabel('Level').selectOption('debug');
  await logging.getByLabel('Share of successful requests logged (0–1)').fill('2');
  await logging.getByRole('button', { name: 'Save logging' }).click();
  const msg = await fieldError(logging, 'Share of successful requests logged (0–1)');
  assert.match(msg, /successRate/);
  await logging.getByLabel('Share of successful requests logged (0–1)').fill('0.5');
  await logging.getByRole('button', { name: 'Save logging' }).click();
  await logging.locator('.alert.ok').waitFor();
  const l = (await rest('GET', '/api/v1/settings/logging')).json;
  assert.deepEqual([l.level, l.sampling.successRate], ['debug', 0.5]);
  const sec = page.locator('#settings-security');
  await sec.getByLabel('Blocked IPs').fill('192.0.2.0/24');
  await sec.getByRole('button', { name: 'Save security' }).click();
  await sec.locator('.alert.ok').waitFor();
  assert.deepEqual((await rest('GET', '/api/v1/settings/security')).json.blockedIPs, ['192.0.2.0/24']);
  const rl = page.locator('#settings-rateLimit');
  const globalLimit = rl.getByRole('group', { name: 'Global limit' });
  await globalLimit.getByLabel('Enabled').check();
  await globalLimit.getByLabel('Requests per window (max)').fill('100');
  await globalLimit.getByLabel('Window (ms)').fill('60000');
  await rl.getByRole('button', { name: 'Save rate limits' }).click();
  await rl.locator('.alert.ok').waitFor();
  const saved = (await rest('GET', '/api/v1/settings/rateLimit')).json;
  assert.deepEqual([saved.global.max, saved.global.windowMs, saved.backend, saved.redis], [100, 60000, 'local', undefined]);
  // a stale settings write: another client saved metrics since the page loaded
  const m = await rest('GET', '/api/v1/settings/metrics');
  assert.equal((await rest('PUT', '/api/v1/settings/metrics', { ...m.json, path: '/other-metrics' }, { 'If-Match': m.etag })).status, 200);
  const metrics = page.locator('#settings-metrics');
  await metrics.getByLabel('Path').fill('/stats');
  await metrics.getByRole('button', { name: 'Save metrics' }).click();
  await metrics.locator('.alert.warn', { hasText: '412' }).waitFor();
  assert.equal(await metrics.getByLabel('Path').inputValue(), '/other-metrics', 'the form shows the stored value');
  await metrics.getByRole('button', { name: 'Restore my edits' }).click();
  assert.equal(await metrics.getByLabel('Path').inputValue(), '/stats');
  await metrics.getByRole('button', { name: 'Save metrics' }).click();
  await metrics.locator('.alert.ok').waitFor();
  assert.equal((await rest('GET', '/api/v1/settings/metrics')).json.path, '/stats');
  await checkLabels(page, 'settings');
  await shot(page, 'settings');
});

step('import an uploaded YAML file: dry-run diff first, then apply', async ({ page }) => {
  ctx.beforeImport = (await rest('GET', '/api/v1/dataplanes')).json.config_version;
  await go(page, 'Import');
  const yaml = `upstreams:\n  - name: imported\n    url: ${ORIGIN}\nroutes:\n  - id: imported\n    path: /imported/*\n    upstream: imported\n`;
  await page.getByLabel('Upload a file').setInputFiles({ name: 'gateway.yaml', mimeType: 'application/yaml', buffer: Buffer.from(yaml) });
  await until(async () => (await page.getByLabel('Configuration (YAML or JSON)').inputValue()) === yaml, 'the file in the text area', STEP_TIMEOUT_MS);
  await page.getByLabel('Mode').selectOption('merge');
  const apply = page.getByRole('button', { name: 'Apply' });
  assert.equal(await apply.isDisabled(), true, 'nothing to apply before a preview');
  await page.getByRole('button', { name: 'Preview changes (dry run)' }).click();
  const diff = page.locator('#import-diff');
  await diff.waitFor();
  assert.match(await diff.textContent(), /upstreams added: imported/);
  assert.match(await diff.textContent(), /routes added: imported/);
  assert.equal((await rest('GET', '/api/v1/dataplanes')).json.config_version, ctx.beforeImport, 'a dry run changes nothing');
  await shot(page, 'import-dry-run');
  // editing the text after the preview requires a new preview
  await page.getByLabel('Configuration (YAML or JSON)').press('End');
  await page.getByLabel('Configuration (YAML or JSON)').type('\n');
  assert.equal(await apply.isDisabled(), true, 'changed text must be previewed again');
  await page.getByRole('button', { name: 'Preview changes (dry run)' }).click();
  await until(async () => !(await apply.isDisabled()), 'Apply enabled after the new preview', STEP_TIMEOUT_MS);
  await apply.click();
  await page.locator('.alert.ok', { hasText: 'Applied' }).waitFor();
  assert.equal((await rest('GET', '/api/v1/upstreams/imported')).status, 200);
  await served('/imported/x', 200);
  // a broken file: the YAML error with its line is shown, nothing changes
  await page.getByLabel('Configuration (YAML or JSON)').fill('routes:\n  - path: [\n');
  await page.getByRole('button', { name: 'Preview changes (dry run)' }).click();
  await page.locator('#import-result .alert.error', { hasText: 'line' }).waitFor();
});

step('history: diff of a version, then roll back the import', async ({ page }) => {
  await go(page, 'History');
  const current = (await rest('GET', '/api/v1/dataplanes')).json.config_version;
  await page.locator(`tr[data-version="${current}"]`).waitFor();
  await page.getByRole('button', { name: `Diff of version ${current}`, exact: true }).click();
  const detail = page.locator('#snapshot-detail');
  await detail.locator('h3', { hasText: 'upstream imported added' }).waitFor();
  await shot(page, 'history-diff');
  await page.getByRole('button', { name: `Roll back to version ${ctx.beforeImport}`, exact: true }).click();
  await detail.locator('.alert.ok', { hasText: `Rolled back to version ${ctx.beforeImport}` }).waitFor();
  assert.equal((await rest('GET', '/api/v1/upstreams/imported')).status, 404, 'the imported upstream is gone');
  await served('/imported/x', 404);
  await page.locator(`tr[data-version="${current + 1}"]`).waitFor();
  await shot(page, 'history');
});

step('overview: the request rate the data plane reports, in total and on its row', async ({ page }) => {
  await go(page, 'Overview');
  await page.locator('#ov-rps').waitFor();
  // Traffic while waiting: the data plane reports its count every few seconds, and the rate
  // is between two reports. Any request counts, so a path no route matches will do.
  const rate = async (sel) => {
    const t = (await page.locator(sel).textContent()).replace(/,/g, '');
    return /^\d+(\.\d)?$/.test(t) && Number(t) > 0 ? t : null;
  };
  await until(async () => {
    await Promise.all(Array.from({ length: 10 }, () => fetch(`${DP}/ui-rate-probe`).then((r) => r.arrayBuffer(), () => null)));
    return rate('#ov-rps');
  }, 'a request rate on the overview', RATE_TIMEOUT_MS);
  const own = await until(() => rate('tr[data-dp="dp-a"] td.rps'), 'dp-a\'s own rate', STEP_TIMEOUT_MS);
  assert.ok(Number(own) > 0, `dp-a row shows ${own}`);
  await shot(page, 'overview-rates');
});

step('delete a route', async ({ page }) => {
  await go(page, 'Routes');
  await page.getByRole('button', { name: 'Delete route other' }).click();
  await page.locator('.alert.ok', { hasText: 'deleted' }).waitFor();
  assert.equal((await rest('GET', '/api/v1/routes/other')).status, 404);
});

step('keyboard only: skip link, navigation, focus visible, a form submitted', async ({ page }) => {
  await page.goto(`${UI}/ui/#/overview`);
  await page.locator('#ov-version').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  const visible = () => page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  });
  assert.ok(await visible(), 'focus is visible on the skip link');
  let reached = false;
  for (let i = 0; i < 12 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.textContent === 'Upstreams');
  }
  assert.ok(reached, 'Tab reaches the navigation');
  assert.ok(await visible(), 'focus is visible on a navigation link');
  await page.keyboard.press('Enter');
  await until(() => page.evaluate(() => document.activeElement.id === 'page-title' && document.activeElement.textContent === 'Upstreams'), 'focus on the new page title', STEP_TIMEOUT_MS);
  // to "New upstream", then fill the form without the mouse
  for (let i = 0; i < 5; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(() => document.activeElement.textContent === 'New upstream')) break;
  }
  await page.keyboard.press('Enter');
  await page.getByLabel('Name (required)').waitFor();
  await page.keyboard.press('Tab');
  await page.keyboard.type('kbd');
  await page.keyboard.press('Tab');
  await page.keyboard.type(ORIGIN);
  await page.keyboard.press('Tab'); // load balancing
  await page.keyboard.press('Tab'); // hash on: a text field, where Enter submits the form
  assert.equal(await page.evaluate(() => document.activeElement.name), 'hashOn');
  await page.keyboard.press('Enter');
  await page.locator('tr[data-name="kbd"]').waitFor();
  assert.equal((await rest('GET', '/api/v1/upstreams/kbd')).json.url, ORIGIN);
});

step('phone width: no horizontal scrolling, every page usable', async ({ browser }) => {
  const page = await openPage(browser, PHONE);
  await signIn(page);
  for (const [nav, name] of [['Overview', 'overview'], ['Routes', 'routes'], ['Upstreams', 'upstreams'], ['API keys', 'keys'], ['Settings', 'settings'], ['Import', 'import'], ['History', 'history']]) {
    await go(page, nav);
    await page.locator('#page-title', { hasText: nav }).waitFor();
    await until(async () => !(await page.locator('main').textContent()).includes('Loading…'), `${name} loaded`, STEP_TIMEOUT_MS);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `${name} overflows the phone width by ${overflow}px`);
    await checkLabels(page, `${name} (phone)`);
    await shot(page, `phone-${name}`);
  }
  await go(page, 'Routes');
  await page.getByRole('link', { name: 'Edit route shop' }).click();
  await page.getByLabel('Path (required)').waitFor();
  await shot(page, 'phone-route-form');
  await page.context().close();
});

/* ---- run ----------------------------------------------------------------------------- */

const browser = await chromium.launch({
  executablePath: process.env.FG_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
let failed = 0;
let passed = 0;
try {
  const page = await openPage(browser, { width: 1280, height: 900 });
  for (const [name, fn] of steps) {
    const t0 = Date.now();
    try {
      await fn({ page, browser });
      passed += 1;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${e.stack || e.message}`);
      await shot(page, 'failure').catch(() => {});
      break; // later steps build on this one
    }
  }
  if (!failed && problems.length) {
    failed += 1;
    console.log(`FAIL the browser reported errors:\n${problems.join('\n')}`);
  }
} finally {
  await browser.close();
  clearTimeout(killer);
}
console.log(`ui.test: ${passed} passed, ${failed} failed, screenshots in ${SHOTS}`);
process.exit(failed ? 1 : 0);
