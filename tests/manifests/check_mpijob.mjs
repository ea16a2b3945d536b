// Checks an MPIJob (Kubeflow MPI Operator, kubeflow.org/v2beta1): a custom
// resource, so kubernetes-models has no schema for it. This checks the
// fields the operator's v2beta1 API documents (MPIJobSpec, RunPolicy,
// ReplicaSpec: unknown fields, types and enumerations refused), each pod
// template against the Kubernetes schema (as a PodTemplate), then what
// aetrain-mpi needs of it: mpirun's -np equal to the workers' slots, the
// trainer with checkpoints on a volume the workers share, a resume from
// it, resources on the workers.
//   node check_mpijob.mjs FILE.yaml...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { PodTemplate } from "kubernetes-models/v1/PodTemplate";

let bad = 0, n = 0;
const fail = (f, msg) => { console.error(`${f}: ${msg}`); bad++; };
const isInt = (v) => Number.isInteger(v);

// The documented fields of each object: name -> check (true when valid).
const specFields = {
  slotsPerWorker: (v) => isInt(v) && v >= 1,
  runPolicy: (v) => typeof v === "object",
  sshAuthMountPath: (v) => typeof v === "string" && v.startsWith("/"),
  launcherCreationPolicy: (v) => ["AtStartup", "WaitForWorkersReady"].includes(v),
  mpiImplementation: (v) => ["OpenMPI", "Intel", "MPICH"].includes(v),
  runLauncherAsWorker: (v) => typeof v === "boolean",
  mpiReplicaSpecs: (v) => typeof v === "object",
};
const runPolicyFields = {
  cleanPodPolicy: (v) => ["None", "Running", "All"].includes(v),
  ttlSecondsAfterFinished: (v) => isInt(v) && v >= 0,
  activeDeadlineSeconds: (v) => isInt(v) && v >= 0,
  backoffLimit: (v) => isInt(v) && v >= 0,
  schedulingPolicy: (v) => typeof v === "object",
  suspend: (v) => typeof v === "boolean",
  managedBy: (v) => typeof v === "string",
};
const replicaFields = {
  replicas: (v) => isInt(v) && v >= 0,
  restartPolicy: (v) => ["Always", "OnFailure", "Never", "ExitCode"].includes(v),
  template: (v) => typeof v === "object",
};

function fields(f, where, obj, known) {
  for (const [k, v] of Object.entries(obj ?? {})) {
    if (!known[k]) fail(f, `${where}.${k} is not a field of the v2beta1 API`);
    else if (!known[k](v)) fail(f, `${where}.${k}: ${JSON.stringify(v)} is not a valid value`);
  }
}

function template(f, role, t) {
  try {
    new PodTemplate({ apiVersion: "v1", kind: "PodTemplate", metadata: { name: role.toLowerCase() }, template: t }).validate();
  } catch (e) {
    fail(f, `${role} template: ${e.message}`);
  }
}

for (const f of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(f, "utf8"))) {
    if (doc.errors.length) { fail(f, `YAML: ${doc.errors[0].message}`); continue; }
    const o = doc.toJS();
    if (!o) continue;
    if (o.apiVersion !== "kubeflow.org/v2beta1" || o.kind !== "MPIJob") {
      fail(f, `${o.apiVersion}/${o.kind} is not a kubeflow.org/v2beta1 MPIJob`);
      continue;
    }
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.metadata?.name ?? "")) fail(f, "metadata.name is not a DNS label");
    const s = o.spec ?? {};
    fields(f, "spec", s, specFields);
    fields(f, "spec.runPolicy", s.runPolicy, runPolicyFields);
    const reps = s.mpiReplicaSpecs ?? {};
    for (const role of Object.keys(reps))
      if (!["Launcher", "Worker"].includes(role)) fail(f, `spec.mpiReplicaSpecs.${role}: only Launcher and Worker`);
    const L = reps.Launcher, W = reps.Worker;
    if (!L || !W) { fail(f, "spec.mpiReplicaSpecs needs a Launcher and a Worker"); continue; }
    fields(f, "spec.mpiReplicaSpecs.Launcher", L, replicaFields);
    fields(f, "spec.mpiReplicaSpecs.Worker", W, replicaFields);
    if ((L.replicas ?? 1) !== 1) fail(f, "the Launcher has exactly one replica");
    if (!(W.replicas >= 1)) fail(f, "no Worker replicas");
    template(f, "Launcher", L.template);
    template(f, "Worker", W.template);
    n++;

    // ---- what aetrain-mpi needs ----
    const lc = L.template?.spec?.containers?.[0] ?? {};
    const cmd = [...(lc.command ?? []), ...(lc.args ?? [])].join(" ");
    const np = Number((cmd.match(/mpirun\s+(?:\S+\s+)*?-(?:np|n)\s+(\d+)/) ?? [])[1]);
    const slots = W.replicas * (s.slotsPerWorker ?? 1);
    if (np !== slots) fail(f, `mpirun -np ${np} is not the workers' ${slots} slots (replicas x slotsPerWorker)`);
    if (!/aetrain-mpi\s+train\b/.test(cmd)) fail(f, "the launcher does not run aetrain-mpi train");
    const ckptEvery = cmd.match(/--checkpoint-every\s+(\d+)/);
    if (!ckptEvery) fail(f, "no --checkpoint-every: a worker lost would lose the run");
    const out = (cmd.match(/--out\s+(\S+)/) ?? [])[1] ?? "";
    const outDir = out.replace(/\/[^/]*$/, "");
    if (!/--resume\s/.test(cmd) || !cmd.includes(out.replace(/\.safetensors$/, ".ckpt")))
      fail(f, "the launcher does not resume from the run's checkpoint");
    const wc = W.template?.spec?.containers?.[0] ?? {};
    const mount = (c, dir) => (c.volumeMounts ?? []).find((m) => m.mountPath === dir);
    const wOut = mount(wc, outDir);
    if (!wOut || wOut.readOnly) fail(f, `the workers do not mount ${outDir} writable (rank 0 writes there)`);
    const vol = wOut && W.template.spec.volumes?.find((v) => v.name === wOut.name);
    if (wOut && !vol?.persistentVolumeClaim) fail(f, `${outDir} is not a persistent volume: checkpoints would die with the pod`);
    if (!mount(lc, outDir)) fail(f, `the launcher does not mount ${outDir} to find the checkpoint`);
    for (const k of ["requests", "limits"])
      for (const r of ["cpu", "memory"])
        if (!wc.resources?.[k]?.[r]) fail(f, `the workers have no ${k}.${r}`);
  }
}
if (!bad) console.log(`${n} MPIJob(s) valid against the v2beta1 fields and the Kubernetes schemas, and fit for aetrain-mpi`);
process.exit(bad ? 1 : 0);
