// k8s_validate.mjs - validate Kubernetes manifests offline against the API schemas, with
// the classes of the npm package kubernetes-models (test_deploy.py installs it, pinned,
// into the build tree and runs this script; no cluster is needed).
//
//   node k8s_validate.mjs NODE_MODULES_DIR FILE.yaml...
//
// Every YAML document must have apiVersion and kind naming a class kubernetes-models has;
// `new Class(doc).validate()` checks it against that kind's OpenAPI schema (types, required
// fields, enums, formats), and no key may be one the kind's declarations do not have
// (below). Prints one JSON line per document
// ({"file","index","kind","name","ok","error"}) and exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modulesDir, ...files] = process.argv.slice(2);
if (!modulesDir || files.length === 0) {
  console.error("usage: node k8s_validate.mjs NODE_MODULES_DIR FILE.yaml...");
  process.exit(2);
}
const load = (spec) => import(pathToFileURL(path.join(modulesDir, spec)).href);
const YAML = await load("yaml/dist/index.js");

// "apps/v1" -> kubernetes-models/apps/v1/index.js; core "v1" -> kubernetes-models/v1/index.js
async function classFor(apiVersion, kind) {
  // 4.x ships ES modules as index.mjs (index.js is CommonJS); 5.x only index.js (ESM).
  let mod = null;
  for (const entry of ["index.mjs", "index.js"]) {
    try {
      mod = await load(`kubernetes-models/${apiVersion}/${entry}`);
      break;
    } catch (e) {
      if (e.code !== "ERR_MODULE_NOT_FOUND") throw e;
    }
  }
  if (!mod) throw new Error(`no schema for apiVersion ${apiVersion}`);
  if (typeof mod[kind] !== "function") throw new Error(`no kind ${kind} in ${apiVersion}`);
  return mod[kind];
}

// The schemas kubernetes-models validates with allow unknown fields (the API server would
// drop them silently), so a misspelt key ("livenessprobe") would pass. Its TypeScript
// declarations list every field of every type: walk the document along them and refuse any
// key they do not declare.
const dtsCache = new Map();
function readDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const text = readFileSync(file, "utf8");
  const imports = {};
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const spec = m[2].startsWith(".")
      ? path.resolve(path.dirname(file), m[2])
      : path.join(modulesDir, m[2]);
    imports[m[1]] = spec + ".d.ts";
  }
  const body = text.match(/^export interface \w+[^{]*\{\n([\s\S]*?)^\}/m);
  if (!body) throw new Error(`no interface in ${file}`);
  const props = {};
  // A property's type is on its line ("IFoo;", "Array<IFoo>;"), or spans lines (an inline
  // object or map: "{" ... "};"), which is not walked further.
  for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (.+)$/gm))
    props[m[1]] = m[2].endsWith(";") ? m[2].slice(0, -1) : "";
  const out = { imports, props };
  dtsCache.set(file, out);
  return out;
}

function unknownFields(value, file, where, errors) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const { imports, props } = readDts(file);
  for (const [key, child] of Object.entries(value)) {
    if (!(key in props)) {
      errors.push(`${where}.${key}: unknown field`);
      continue;
    }
    const t = props[key].match(/^(?:Array<(\w+)>|(\w+))$/);
    const type = t && (t[1] || t[2]);
    if (!type || !imports[type]) continue; // a scalar, a map or a union: nothing to walk
    const items = Array.isArray(child) ? child : [child];
    items.forEach((item, i) =>
      unknownFields(item, imports[type], Array.isArray(child) ? `${where}.${key}[${i}]` : `${where}.${key}`, errors));
  }
}

let failed = 0;
for (const file of files) {
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  for (let i = 0; i < docs.length; i++) {
    const out = { file: path.basename(file), index: i, kind: null, name: null, ok: false };
    try {
      if (docs[i].errors.length) throw new Error(`YAML: ${docs[i].errors[0].message}`);
      const obj = docs[i].toJS();
      if (obj === null || typeof obj !== "object") throw new Error("document is not a mapping");
      out.kind = obj.kind ?? null;
      out.name = obj.metadata?.name ?? null;
      if (!obj.apiVersion || !obj.kind) throw new Error("apiVersion and kind are required");
      const Cls = await classFor(obj.apiVersion, obj.kind);
      new Cls(obj).validate();
      const errors = [];
      unknownFields(obj, path.join(modulesDir, "kubernetes-models", obj.apiVersion, `${obj.kind}.d.ts`),
                    obj.kind, errors);
      if (errors.length) throw new Error(errors.join("; "));
      out.ok = true;
    } catch (e) {
      out.error = String(e.message ?? e).slice(0, 2000);
      failed++;
    }
    console.log(JSON.stringify(out));
  }
}
process.exit(failed ? 1 : 0);
