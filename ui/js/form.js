// form.js - forms described by field lists, for every resource the API edits.
//
// A form edits a copy of the object the API returned: fields it knows are set or removed,
// everything else (fields added to the API later) is sent back untouched. Values are not
// checked here beyond what a control cannot express (JSON text); the API validates and its
// {"error":{"field"}} is shown beside the control that holds that field.

import { h, newId, alertBox, announce } from './dom.js';

/* ---- paths ("rateLimit.windowMs") ---------------------------------------------------- */

export function getPath(obj, key) {
  return key.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

export function setPath(obj, key, value) {
  const parts = key.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null || Array.isArray(o[p])) {
      if (value === undefined) return; // nothing to remove, and no empty parent to make
      o[p] = {};
    }
    o = o[p];
  }
  if (value === undefined) delete o[parts[parts.length - 1]];
  else o[parts[parts.length - 1]] = value;
}

/* ---- value conversions: text in a control <-> JSON value ----------------------------- */

const numberRe = /^-?\d+(\.\d+)?$/;
/** A number when the text is one; otherwise the text itself, for the API to name. */
function toNumber(text) {
  const t = text.trim();
  if (t === '') return undefined;
  return numberRe.test(t) ? Number(t) : t;
}
function splitList(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

const kinds = {
  text: { from: (v) => (v == null ? '' : String(v)), to: (t) => (t.trim() === '' ? undefined : t.trim()) },
  secret: { from: (v) => (v == null ? '' : String(v)), to: (t) => (t === '' ? undefined : t) },
  int: { from: (v) => (v == null ? '' : String(v)), to: toNumber },
  size: { from: (v) => (v == null ? '' : String(v)), to: toNumber },
  list: { from: (v) => (Array.isArray(v) ? v.join('\n') : ''), to: splitList },
  headers: {
    from: (v) => Object.entries(v || {}).map(([k, x]) => `${k}: ${x}`).join('\n'),
    to: (t) => {
      const out = {};
      for (const line of t.split('\n')) {
        if (!line.trim()) continue;
        const i = line.indexOf(':');
        if (i < 0) out[line.trim()] = '';
        else out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      return out;
    },
  },
  json: {
    from: (v) => (v === undefined ? '' : JSON.stringify(v, null, 2)),
    to: (t) => {
      if (!t.trim()) return undefined;
      try { return JSON.parse(t); } catch (e) { throw new Error(`not valid JSON: ${e.message}`); }
    },
  },
  // RFC 3339 shown, epoch ms or RFC 3339 sent; empty = 0 = never.
  time: {
    from: (v) => (!v ? '' : new Date(v).toISOString()),
    to: (t) => (t.trim() === '' ? 0 : (/^\d+$/.test(t.trim()) ? Number(t.trim()) : t.trim())),
  },
};

/* ---- one control --------------------------------------------------------------------- */

function control(spec, mode) {
  const id = newId(`f-${spec.key.replace(/[^A-Za-z0-9]/g, '-')}`);
  const errId = `${id}-error`;
  const helpId = spec.help ? `${id}-help` : null;
  const describedBy = [helpId, errId].filter(Boolean).join(' ');
  const errEl = h('p', { class: 'field-error', id: errId });
  const help = spec.help ? h('p', { class: 'help', id: helpId }, spec.help) : null;
  const readOnly = mode === 'edit' && spec.readonlyOnEdit;
  const f = { spec, errEl, inputs: [] };

  if (spec.type === 'bool') {
    const input = h('input', { type: 'checkbox', id, name: spec.key, 'aria-describedby': describedBy });
    f.inputs = [input];
    f.get = () => input.checked;
    f.set = (v) => { input.checked = v === undefined ? !!spec.def : !!v; };
    f.el = h('div', { class: 'check' }, input, h('label', { for: id, class: 'inline' }, spec.label), help, errEl);
    return f;
  }
  if (spec.type === 'multi') {
    const boxes = spec.options.map((o) => {
      const bid = `${id}-${o}`;
      const input = h('input', { type: 'checkbox', id: bid, value: o, name: spec.key });
      return h('span', {}, input, h('label', { for: bid, class: 'inline' }, o));
    });
    f.inputs = boxes.map((b) => b.firstChild);
    f.get = () => f.inputs.filter((i) => i.checked).map((i) => i.value);
    f.set = (v) => {
      const want = new Set((v || []).map((x) => String(x).toUpperCase()));
      for (const i of f.inputs) i.checked = want.has(i.value);
    };
    f.el = h('fieldset', { 'aria-describedby': describedBy },
      h('legend', {}, spec.label), h('div', { class: 'multi' }, boxes), help, errEl);
    return f;
  }
  let input;
  if (spec.type === 'select') {
    input = h('select', { id, name: spec.key, 'aria-describedby': describedBy },
      spec.options.map(([v, label]) => h('option', { value: v }, label)));
    f.get = () => (input.value === '' ? undefined : input.value);
    f.set = (v) => {
      const val = v == null ? (spec.def ?? input.options[0]?.value ?? '') : String(v);
      if (![...input.options].some((o) => o.value === val)) input.append(h('option', { value: val }, val));
      input.value = val;
    };
  } else {
    const multiline = ['list', 'headers', 'json', 'textarea'].includes(spec.type);
    const kind = kinds[spec.type] || (spec.type === 'textarea' ? kinds.secret : kinds.text);
    input = multiline
      ? h('textarea', { id, name: spec.key, rows: spec.rows || 3, class: spec.type === 'json' || spec.type === 'textarea' ? 'mono' : '', 'aria-describedby': describedBy, spellcheck: 'false' })
      : h('input', { type: spec.type === 'secret' ? 'password' : 'text', id, name: spec.key,
        inputmode: ['int', 'size'].includes(spec.type) ? (spec.type === 'int' && spec.float ? 'decimal' : 'numeric') : undefined,
        autocomplete: 'off', spellcheck: 'false', placeholder: spec.placeholder,
        'aria-describedby': describedBy, required: spec.required });
    if (readOnly) input.readOnly = true;
    f.get = () => kind.to(input.value);
    f.set = (v) => { input.value = kind.from(v); };
  }
  f.inputs = [input];
  f.el = h('div', { class: 'field' },
    h('label', { for: id }, spec.label, spec.required ? ' (required)' : ''), input, help, errEl);
  return f;
}

/* ---- a whole form -------------------------------------------------------------------- */

/**
 * specs: [{key, label, type, help, required, def, options, readonlyOnEdit, get, put}] and
 * {group, optional, fields: [...]} for a fieldset; `optional` names an object that is left
 * out when none of its controls holds a value (a route without its own rate limit).
 * spec.get(obj) / spec.put(obj, value) replace plain path access (upstream targets).
 * mode: 'create' or 'edit'. Returns {el, fill, read, showError, clearErrors}.
 */
export function buildForm(specs, mode) {
  const fields = [];
  const optionals = [];
  const build = (list) => list.map((s) => {
    if (s.group) {
      const inner = build(s.fields);
      if (s.optional) optionals.push({ key: s.optional, fields: fields.filter((f) => s.fields.includes(f.spec)) });
      return h('fieldset', {}, h('legend', {}, s.group), s.help ? h('p', { class: 'help' }, s.help) : null, inner);
    }
    const f = control(s, mode);
    fields.push(f);
    return f.el;
  });
  const body = build(specs);
  const formAlert = h('div', { class: 'form-alert' });
  const el = h('div', {}, formAlert, body);

  function fill(obj) {
    for (const f of fields) f.set(f.spec.get ? f.spec.get(obj) : getPath(obj, f.spec.key));
  }

  /** A copy of `base` with the form's values; throws {field, message} for JSON text. */
  function read(base) {
    const out = structuredClone(base || {});
    for (const f of fields) {
      let v;
      try { v = f.get(); } catch (e) { throw Object.assign(new Error(e.message), { field: f.spec.key }); }
      if (f.spec.put) f.spec.put(out, v);
      else setPath(out, f.spec.key, v);
    }
    for (const o of optionals) {
      const empty = o.fields.every((f) => {
        const v = f.get();
        return v === undefined || v === false || (Array.isArray(v) && !v.length)
          || (typeof v === 'object' && v && !Array.isArray(v) && !Object.keys(v).length);
      });
      if (empty) setPath(out, o.key, undefined);
    }
    return out;
  }

  function clearErrors() {
    formAlert.replaceChildren();
    for (const f of fields) {
      f.errEl.textContent = '';
      for (const i of f.inputs) i.removeAttribute('aria-invalid');
    }
  }

  /** The field a path from the API ("targets[1].url") belongs to. */
  function fieldFor(path) {
    if (!path) return null;
    let best = null;
    for (const f of fields) {
      const k = f.spec.key;
      const alias = f.spec.aliases || [];
      for (const name of [k, ...alias]) {
        if (path === name || path.startsWith(`${name}.`) || path.startsWith(`${name}[`)) {
          if (!best || name.length > best.len) best = { f, len: name.length };
        }
      }
    }
    if (best) return best.f;
    return fields.find((f) => f.spec.key.startsWith(`${path}.`)) || null;
  }

  /** Show an error (ApiError or {field, message}) beside its control; true if placed. */
  function showError(err, extra) {
    clearErrors();
    const f = fieldFor(err.field);
    if (f) {
      f.errEl.textContent = err.message;
      for (const i of f.inputs) i.setAttribute('aria-invalid', 'true');
      f.inputs[0].focus();
    }
    formAlert.append(alertBox('error',
      h('p', {}, f ? `Not saved: ${err.message}` : `Not saved: ${err.message}${err.field ? ` (${err.field})` : ''}`),
      extra || null));
    if (!f) formAlert.querySelector('.alert').setAttribute('tabindex', '-1');
    if (!f) formAlert.querySelector('.alert').focus();
    return !!f;
  }

  function notice(node) {
    formAlert.replaceChildren(node);
  }

  /** After a 412: the form already shows the stored version; explain, and offer `mine`
   *  (the values the user typed) back with one click. */
  function stale(what, mine) {
    const restore = h('button', { type: 'button', class: 'secondary' }, 'Restore my edits');
    restore.addEventListener('click', () => {
      fill(mine);
      notice(alertBox('warn', h('p', {}, 'Your edits are back in the form, on top of the latest version. Save again to overwrite the other change.')));
      announce('your edits were restored');
    });
    const box = alertBox('warn',
      h('p', {}, `Not saved: ${what} changed by someone else after you opened it (412 Precondition Failed).`),
      h('p', {}, 'The form now shows the current stored version. Your edits are kept: restore them to review and save again.'),
      restore);
    box.setAttribute('tabindex', '-1');
    notice(box);
    box.focus();
  }

  return { el, fill, read, showError, clearErrors, notice, stale };
}
