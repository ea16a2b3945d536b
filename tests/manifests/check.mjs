// Validates Kubernetes manifests against the API's own schemas (the
// kubernetes-models package carries them, generated from the Kubernetes
// OpenAPI spec), then checks what aeserve needs of them: probes on /livez
// and /readyz, a grace period longer than the drain, resources, the API
// key from a Secret, the models read-only.
//   node check.mjs FILE.yaml...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const kinds = {
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment",
  "v1/Service": "kubernetes-models/v1/Service",
  "v1/Secret": "kubernetes-models/v1/Secret",
  "v1/PersistentVolumeClaim": "kubernetes-models/v1/PersistentVolumeClaim",
  "autoscaling/v2/HorizontalPodAutoscaler": "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
  "policy/v1/PodDisruptionBudget": "kubernetes-models/policy/v1/PodDisruptionBudget",
};

let bad = 0, n = 0;
const fail = (f, msg) => { console.error(`${f}: ${msg}`); bad++; };
const arg = (args, name) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.split("=")[1]) : 0;
};

for (const f of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(f, "utf8"))) {
    if (doc.errors.length) { fail(f, `YAML: ${doc.errors[0].message}`); continue; }
    const o = doc.toJS();
    if (!o) continue;
    const key = `${o.apiVersion}/${o.kind}`;
    if (!kinds[key]) { fail(f, `${key} is not a kind this check knows`); continue; }
    const mod = await import(kinds[key]);
    const Cls = mod[o.kind] || mod.default;
    try { new Cls(o).validate(); } catch (e) { fail(f, `${key} ${o.metadata?.name}: ${e.message}`); continue; }
    n++;
    if (o.kind !== "Deployment") continue;
    const pod = o.spec.template.spec, c = pod.containers.find((x) => x.name === "aeserve");
    if (!c) { fail(f, "no container named aeserve"); continue; }
    const args = c.args || [];
    if (c.livenessProbe?.httpGet?.path !== "/livez") fail(f, "liveness is not on /livez");
    if (c.readinessProbe?.httpGet?.path !== "/readyz") fail(f, "readiness is not on /readyz");
    const drain = arg(args, "drain-delay") + (arg(args, "drain-timeout") || 10);
    if (!(pod.terminationGracePeriodSeconds > drain))
      fail(f, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} is not longer than the drain (${drain} s)`);
    for (const k of ["requests", "limits"])
      for (const r of ["cpu", "memory"])
        if (!c.resources?.[k]?.[r]) fail(f, `no ${k}.${r}`);
    const keyArg = args.find((x) => x.startsWith("--api-keys="));
    const keyDir = keyArg && keyArg.split("=")[1].replace(/\/[^/]*$/, "");
    const keyMount = c.volumeMounts?.find((m) => m.mountPath === keyDir);
    const keyVol = keyMount && pod.volumes.find((v) => v.name === keyMount.name);
    if (!keyVol?.secret) fail(f, "the API key does not come from a Secret");
    const modelsMount = c.volumeMounts?.find((m) => args.includes(m.mountPath));
    if (!modelsMount?.readOnly) fail(f, "the models are not a read-only volume");
  }
}
if (!bad) console.log(`${n} manifests valid against the Kubernetes API schemas, and fit for aeserve`);
process.exit(bad ? 1 : 0);
