// entity.js - the list, search, create, edit and delete views shared by routes, upstreams
// and API keys: each is a collection (/api/v1/<plural>) of items named by one key.
//
// Writes send the ETag read with the item as If-Match. A 412 (someone changed the item
// meanwhile) reloads the form with the stored version and offers the user's typed values
// back; any other refusal leaves the form exactly as typed, with the API's message next to
// the offending control.

import { api, itemPath } from './api.js';
import { h, alertBox, announce, pageTitle, table } from './dom.js';
import { buildForm } from './form.js';

let flash = null; // a message for the next list view (after a save)

export function setFlash(node) { flash = node; }

/**
 * cfg: {title, singular, hash, collection, idKey, columns: [[label, fn(item)]],
 *       searchText(item), specs(mode, item) -> Promise<spec list>,
 *       afterCreate(res, main) -> true when it rendered something itself,
 *       beforeWrite(body, mode, original) -> body}
 */
export function entityPages(cfg) {
  async function list(main) {
    const title = pageTitle(cfg.title);
    const status = h('p', { class: 'help', role: 'status', 'aria-live': 'polite' });
    const search = h('input', { type: 'search', id: `${cfg.hash}-search`, autocomplete: 'off' });
    const region = h('div', {}, h('p', {}, 'Loading…'));
    main.replaceChildren(title, flash || '',
      h('div', { class: 'actions' },
        h('a', { class: 'button', href: `#/${cfg.hash}/new` }, `New ${cfg.singular}`)),
      h('label', { for: search.id }, `Search ${cfg.title.toLowerCase()}`), search, status, region);
    flash = null;
    let items = [];
    const draw = () => {
      const q = search.value.trim().toLowerCase();
      const shown = items.filter((it) => !q || cfg.searchText(it).toLowerCase().includes(q));
      status.textContent = `${shown.length} of ${items.length} ${cfg.title.toLowerCase()}`;
      if (!items.length) {
        region.replaceChildren(h('p', {}, `No ${cfg.title.toLowerCase()} yet.`));
        return;
      }
      region.replaceChildren(table(cfg.title, [...cfg.columns.map((c) => c[0]), 'Actions'],
        shown.map((it) => {
          const name = it[cfg.idKey];
          return h('tr', { 'data-name': name },
            cfg.columns.map(([, fn]) => h('td', {}, fn(it))),
            h('td', {}, h('div', { class: 'actions' },
              h('a', { class: 'button secondary', href: `#/${cfg.hash}/edit/${encodeURIComponent(name)}`,
                'aria-label': `Edit ${cfg.singular} ${name}` }, 'Edit'),
              h('button', { type: 'button', class: 'danger', 'aria-label': `${cfg.deleteVerb || 'Delete'} ${cfg.singular} ${name}`,
                onclick: () => remove(name, main) }, cfg.deleteVerb || 'Delete'))));
        })));
    };
    search.addEventListener('input', draw);
    try {
      items = (await api('GET', cfg.collection)).data.items;
      draw();
    } catch (e) {
      region.replaceChildren(alertBox('error', h('p', {}, `Could not load: ${e.message}`)));
    }
  }

  async function remove(name, main) {
    // eslint-disable-next-line no-alert
    if (!window.confirm(`${cfg.deleteVerb || 'Delete'} ${cfg.singular} "${name}"? This takes effect on every data plane at once.`)) return;
    try {
      const r = await api('DELETE', itemPath(cfg.collection, name));
      setFlash(alertBox('ok', h('p', {}, `${cfg.singular} "${name}" ${cfg.deletedWord || 'deleted'} (config version ${r.version}).`)));
      announce(`${cfg.singular} ${name} ${cfg.deletedWord || 'deleted'}`);
    } catch (e) {
      setFlash(alertBox('error', h('p', {}, `Could not ${(cfg.deleteVerb || 'delete').toLowerCase()} "${name}": ${e.message}`)));
    }
    await list(main);
    main.querySelector('.alert')?.setAttribute('tabindex', '-1');
    main.querySelector('.alert')?.focus();
  }

  async function edit(main, name) {
    const mode = name == null ? 'create' : 'edit';
    const heading = mode === 'create' ? `New ${cfg.singular}` : `Edit ${cfg.singular} ${name}`;
    main.replaceChildren(pageTitle(heading), h('p', {}, 'Loading…'));
    let original = {};
    let etag = null;
    let specs;
    try {
      if (mode === 'edit') {
        const r = await api('GET', itemPath(cfg.collection, name));
        original = r.data;
        etag = r.etag;
      }
      specs = await cfg.specs(mode, original);
    } catch (e) {
      main.replaceChildren(pageTitle(heading), alertBox('error', h('p', {}, `Could not load: ${e.message}`)),
        h('a', { href: `#/${cfg.hash}` }, `Back to ${cfg.title.toLowerCase()}`));
      return;
    }
    const form = buildForm(specs, mode);
    form.fill(original);
    const save = h('button', { type: 'submit' }, mode === 'create' ? `Create ${cfg.singular}` : 'Save changes');
    const formEl = h('form', { novalidate: true, 'aria-labelledby': 'page-title' }, form.el,
      h('div', { class: 'actions' }, save,
        h('a', { class: 'button secondary', href: `#/${cfg.hash}` }, 'Cancel')));
    main.replaceChildren(pageTitle(heading), formEl);

    formEl.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let body;
      try {
        body = form.read(original);
        if (cfg.beforeWrite) body = cfg.beforeWrite(body, mode, original);
      } catch (e) {
        form.showError(e);
        return;
      }
      save.disabled = true;
      try {
        const r = mode === 'create'
          ? await api('POST', cfg.collection, { body })
          : await api('PUT', itemPath(cfg.collection, name), { body, etag });
        const saved = r.data[cfg.idKey];
        announce(`${cfg.singular} ${saved} saved`);
        if (mode === 'create' && cfg.afterCreate && cfg.afterCreate(r, main)) return;
        setFlash(alertBox('ok', h('p', {}, `${cfg.singular} "${saved}" ${mode === 'create' ? 'created' : 'saved'} (config version ${r.version}).`)));
        window.location.hash = `#/${cfg.hash}`;
      } catch (e) {
        if (e.status === 412) await stale(body);
        else form.showError(e);
      } finally {
        save.disabled = false;
      }
    });

    // Someone saved this item after we read it: show theirs, keep ours one click away.
    async function stale(mine) {
      try {
        const r = await api('GET', itemPath(cfg.collection, name));
        original = r.data;
        etag = r.etag;
      } catch (e) {
        form.showError(e);
        return;
      }
      form.fill(original);
      form.stale(`this ${cfg.singular} was`, mine);
    }
  }

  return { list, edit };
}
