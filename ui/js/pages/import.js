// import.js - a whole configuration file (YAML or JSON, pasted or uploaded): a dry run shows
// what would change, and only that previewed text can then be applied.

import { api } from '../api.js';
import { h, alertBox, announce, pageTitle } from '../dom.js';

function diffList(diff) {
  const rows = [];
  for (const kind of ['upstreams', 'routes', 'keys']) {
    const d = diff[kind];
    for (const [op, names] of [['added', d.added], ['changed', d.changed], ['removed', d.removed]]) {
      if (names.length) rows.push(h('li', { class: op === 'removed' ? 'del' : op === 'added' ? 'add' : '' }, `${kind} ${op}: ${names.join(', ')}`));
    }
    if (d.reordered) rows.push(h('li', {}, `${kind} reordered`));
  }
  if (diff.settings.changed.length) rows.push(h('li', {}, `settings changed: ${diff.settings.changed.join(', ')}`));
  return rows.length ? h('ul', { class: 'plain', id: 'import-diff' }, rows) : h('p', { id: 'import-diff' }, 'No changes: the file equals the stored configuration.');
}

export function importPage(main) {
  const text = h('textarea', { id: 'import-text', class: 'mono', rows: 14, spellcheck: 'false', 'aria-describedby': 'import-help' });
  const file = h('input', { type: 'file', id: 'import-file', accept: '.yaml,.yml,.json,application/yaml,application/json,text/yaml' });
  const mode = h('select', { id: 'import-mode' },
    h('option', { value: 'replace' }, 'replace: the file is the whole configuration'),
    h('option', { value: 'merge' }, 'merge: add and replace what the file names, keep the rest'));
  const preview = h('button', { type: 'submit' }, 'Preview changes (dry run)');
  const apply = h('button', { type: 'button', disabled: true }, 'Apply');
  const result = h('div', { id: 'import-result' });
  let previewed = null; // {text, mode} of the last successful dry run

  const invalidate = () => {
    if (previewed && (previewed.text !== text.value || previewed.mode !== mode.value)) {
      previewed = null;
      apply.disabled = true;
      result.replaceChildren(alertBox('warn', h('p', {}, 'The file or mode changed: preview again before applying.')));
    }
  };
  text.addEventListener('input', invalidate);
  mode.addEventListener('change', invalidate);
  file.addEventListener('change', async () => {
    if (!file.files.length) return;
    text.value = await file.files[0].text();
    invalidate();
    announce(`${file.files[0].name} loaded`);
  });

  const contentType = (t) => (/^\s*[{[]/.test(t) ? 'application/json' : 'application/yaml');
  const showError = (e) => {
    const where = e.line ? ` (line ${e.line}, column ${e.column})` : '';
    result.replaceChildren(alertBox('error', h('p', {}, `${e.message}${where}`),
      e.field ? h('p', {}, `Field: ${e.field}`) : null));
  };

  const form = h('form', { novalidate: true, 'aria-labelledby': 'page-title' },
    h('p', { id: 'import-help', class: 'help' }, 'The seed project\'s YAML format (docs/configuration.md). Nothing changes until you apply a previewed file; it is applied all or nothing as one new version.'),
    h('label', { for: 'import-file' }, 'Upload a file'), file,
    h('label', { for: 'import-text' }, 'Configuration (YAML or JSON)'), text,
    h('label', { for: 'import-mode' }, 'Mode'), mode,
    h('div', { class: 'actions' }, preview, apply), result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    previewed = null;
    apply.disabled = true;
    const snapshot = { text: text.value, mode: mode.value };
    try {
      const r = await api('POST', `/api/v1/import?mode=${snapshot.mode}&dry_run=true`, { body: snapshot.text, contentType: contentType(snapshot.text) });
      previewed = { ...snapshot, from: r.data.from_version };
      apply.disabled = r.data.changes === 0;
      result.replaceChildren(h('h2', {}, `Dry run: ${r.data.changes} change(s) against version ${r.data.from_version}`),
        diffList(r.data.diff), h('p', { class: 'help' }, `Resulting checksum ${r.data.checksum}`));
      announce(`dry run: ${r.data.changes} changes`);
    } catch (e) {
      showError(e);
    }
  });
  apply.addEventListener('click', async () => {
    if (!previewed) return;
    apply.disabled = true;
    try {
      const r = await api('POST', `/api/v1/import?mode=${previewed.mode}`, { body: previewed.text, contentType: contentType(previewed.text) });
      result.replaceChildren(alertBox('ok', h('p', {}, `Applied: configuration version ${r.data.version} (${r.data.changes} change(s)).`),
        r.data.from_version !== previewed.from
          ? h('p', {}, `Note: the configuration changed between the preview (version ${previewed.from}) and now (version ${r.data.from_version}); the file was applied to the newer one.`)
          : null));
      announce(`imported as version ${r.data.version}`);
      previewed = null;
    } catch (e) {
      showError(e);
      apply.disabled = false;
    }
  });
  main.replaceChildren(pageTitle('Import a configuration'), form);
}
