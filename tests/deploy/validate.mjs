// Validates rendered Kubernetes manifests (a YAML stream on stdin) against
// the Kubernetes API's schemas, with the npm package kubernetes-models
// (generated from Kubernetes' OpenAPI documents: types, required fields,
// enumerations). VolumeSnapshotClass is a CRD that package does not carry:
// it is checked against the external-snapshotter's v1 CRD schema, written
// out below (driver and deletionPolicy required, no other fields).
// Prints one line per object; exits 1 if any is invalid.
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const crds = {
  "snapshot.storage.k8s.io/v1/VolumeSnapshotClass": (o) => {
    const errs = [];
    if (typeof o.driver !== "string" || !o.driver) errs.push("driver is required");
    if (!["Delete", "Retain"].includes(o.deletionPolicy))
      errs.push("deletionPolicy must be Delete or Retain");
    for (const k of Object.keys(o))
      if (!["apiVersion", "kind", "metadata", "driver", "deletionPolicy", "parameters"].includes(k))
        errs.push(`unknown field ${k}`);
    if (o.parameters && Object.values(o.parameters).some((v) => typeof v !== "string"))
      errs.push("parameters must be strings");
    if (errs.length) throw new Error(errs.join(", "));
  },
};

// --json FILE: also writes the objects as a JSON array (for jq checks).
const jsonOut = process.argv[2] === "--json" ? process.argv[3] : null;
const all = [];
let bad = 0;
let n = 0;
for (const doc of parseAllDocuments(readFileSync(0, "utf8"))) {
  if (doc.errors.length) {
    console.log(`YAML error: ${doc.errors[0].message}`);
    bad++;
    continue;
  }
  const o = doc.toJSON();
  // kustomize 2 (kubectl 1.20) leaves {} where a patch deleted an object.
  if (!o || Object.keys(o).length === 0) continue;
  n++;
  all.push(o);
  const name = `${o.kind}/${o.metadata?.name ?? "?"}`;
  try {
    const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
    const crd = crds[`${o.apiVersion}/${o.kind}`];
    if (crd) {
      crd(o);
    } else {
      const mod = await import(`kubernetes-models/${group ? group + "/" : ""}${version}/${o.kind}`);
      new mod[o.kind](o).validate();
    }
    console.log(`ok  ${o.apiVersion} ${name}`);
  } catch (e) {
    bad++;
    console.log(`BAD ${o.apiVersion} ${name}: ${e.message}`);
  }
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(all));
if (n === 0) {
  console.log("no objects on stdin");
  process.exit(1);
}
process.exit(bad ? 1 : 0);
