// Validates Kubernetes objects offline against the API schemas: `kubectl kustomize k8s | node validate.mjs`.
// Each document's apiVersion/kind picks its kubernetes-models class; validate() throws on any schema violation
// (a string containerPort, an unknown field type, a missing required field). Exit 1 on the first bad object,
// or when a kind is unknown or nothing was read.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const text = readFileSync(process.argv[2] ?? 0, "utf8");
const documents = parseAllDocuments(text).map((d) => d.toJS()).filter((o) => o != null);
if (documents.length === 0) {
  console.error("validate: no Kubernetes objects on input");
  process.exit(1);
}

let failed = 0;
for (const object of documents) {
  const { apiVersion, kind } = object;
  const name = `${kind}/${object.metadata?.name ?? "?"}`;
  // "v1" is the core group; "batch/v1" etc. name their group folder.
  const module = `kubernetes-models/${apiVersion}`;
  let Model;
  try {
    Model = (await import(module))[kind];
  } catch {
    Model = undefined;
  }
  if (typeof Model !== "function") {
    console.error(`FAIL ${name}: no schema for ${apiVersion} ${kind}`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok   ${name} (${apiVersion})`);
  } catch (error) {
    console.error(`FAIL ${name}: ${error.message}`);
    failed++;
  }
}
console.log(`${documents.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
