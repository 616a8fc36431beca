// app.js - the console's entry point: sign-in with the admin token, and a hash router
// (#/routes/edit/users) that renders one page at a time into <main>.

import { api, session } from './api.js';
import { h, alertBox } from './dom.js';
import { overview } from './pages/overview.js';
import { routes } from './pages/routes.js';
import { upstreams } from './pages/upstreams.js';
import { keys } from './pages/keys.js';
import { settings } from './pages/settings.js';
import { importPage } from './pages/import.js';
import { snapshots } from './pages/snapshots.js';

const $ = (id) => document.getElementById(id);
const main = $('main');
let cleanup = null; // what the current page asks to run when it is left (timers)

// page name -> render(main, ...args) for "#/name/arg1/arg2"
const PAGES = {
  overview: (m) => overview(m),
  routes: (m, sub, id) => (sub === 'new' ? routes.edit(m, null) : sub === 'edit' ? routes.edit(m, id) : routes.list(m)),
  upstreams: (m, sub, id) => (sub === 'new' ? upstreams.edit(m, null) : sub === 'edit' ? upstreams.edit(m, id) : upstreams.list(m)),
  keys: (m, sub, id) => (sub === 'new' ? keys.edit(m, null) : sub === 'edit' ? keys.edit(m, id) : keys.list(m)),
  settings: (m) => settings(m),
  import: (m) => importPage(m),
  snapshots: (m) => snapshots(m),
};

async function render() {
  if (!session.token()) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const parts = (window.location.hash.replace(/^#\/?/, '') || 'overview').split('/').map(decodeURIComponent);
  const name = PAGES[parts[0]] ? parts[0] : 'overview';
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const title = main.querySelector('h1')?.textContent;
  const result = await PAGES[name](main, parts[1], parts[2]);
  if (typeof result === 'function') cleanup = result;
  document.title = `${main.querySelector('h1')?.textContent || 'FlexGate'} · FlexGate console`;
  // Move focus to the new page's heading (not on the first load: the skip link comes first).
  if (title !== undefined) main.querySelector('h1')?.focus();
  refreshVersion();
}

async function refreshVersion() {
  try {
    const r = await api('GET', '/api/v1/dataplanes');
    $('config-version').textContent = `config version ${r.data.config_version}`;
  } catch { /* shown by the page itself */ }
}

function showSignIn(message) {
  if (cleanup) { cleanup(); cleanup = null; }
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  $('config-version').textContent = '';
  $('signin-error').textContent = message || '';
  $('signin-token').focus();
}

// The app element is only hidden, not cleared, so a form being edited when the token
// stopped working is still there, as typed, after signing in again.
function showApp(first) {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  if (first || !main.firstChild) render();
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('signin-token').value.trim();
  if (!token) {
    $('signin-error').textContent = 'Enter the admin token.';
    $('signin-token').setAttribute('aria-invalid', 'true');
    return;
  }
  try {
    await api('GET', '/api/v1/dataplanes', { token });
  } catch (e) {
    $('signin-error').textContent = e.status === 401 ? 'This token was refused.' : e.message;
    $('signin-token').setAttribute('aria-invalid', 'true');
    return;
  }
  $('signin-token').removeAttribute('aria-invalid');
  $('signin-token').value = '';
  session.set(token);
  showApp(!main.firstChild);
});

$('sign-out').addEventListener('click', () => {
  session.clear();
  main.replaceChildren();
  showSignIn('Signed out.');
});

session.onUnauthorized(() => {
  session.clear();
  showSignIn('The control plane refused the token (it may have changed): sign in again. Your unsaved form is kept.');
});

window.addEventListener('hashchange', render);
window.addEventListener('unhandledrejection', (ev) => {
  main.prepend(alertBox('error', h('p', {}, `Unexpected error: ${ev.reason?.message || ev.reason}`)));
});

if (session.token()) showApp(true);
else showSignIn();
