// k8s_validate.mjs - validate Kubernetes manifests offline against the API schemas, with
// the classes of the npm package kubernetes-models (test_deploy.py installs it, pinned,
// into the build tree and runs this script; no cluster is needed).
//
//   node k8s_validate.mjs NODE_MODULES_DIR FILE.yaml...
//
// Every YAML document must have apiVersion and kind naming a class kubernetes-models has;
// `new Class(doc).validate()` checks it against that kind's OpenAPI schema (types, required
// fields, enums, formats). Prints one JSON line per document
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
      out.ok = true;
    } catch (e) {
      out.error = String(e.message ?? e).slice(0, 2000);
      failed++;
    }
    console.log(JSON.stringify(out));
  }
}
process.exit(failed ? 1 : 0);
