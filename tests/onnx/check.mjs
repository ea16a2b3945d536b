// The exported ONNX files in ONNX Runtime (npm's onnxruntime-node, its CPU
// library), for tests/it_onnx.sh:
//
//   node check.mjs compare TOL LABEL ONNXDIR REFDIR[,REFDIR...] [LABEL ONNXDIR REFDIRS]...
//       runs ONNXDIR/{encoder,decoder,autoencoder}.onnx on each REFDIR's
//       inputs (tests/tools/onnxref run) and prints the largest absolute
//       difference from our engine's answers; fails over TOL
//   node check.mjs triton REPO
//       checks each REPO/NAME/config.pbtxt (protobuf text format, parsed
//       here) against what NAME/1/model.onnx declares to ONNX Runtime, and
//       runs it at batch 1 and at max_batch_size as Triton would
//
// Every session is created with all graph optimisations on (ONNX Runtime's
// "all": basic, extended and layout), one thread.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import ort from "onnxruntime-node";

const OPTS = { graphOptimizationLevel: "all", intraOpNumThreads: 1, interOpNumThreads: 1 };
const PARTS = ["encoder", "decoder", "autoencoder"];
let failed = 0;

function fail(msg) {
  console.error(`FAILED: ${msg}`);
  failed++;
}

function readF32(path) {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

// The largest |a - b| (abs), and that over max(1, max |b|) (scaled): the
// two are one for images, which are in [0, 1]. A code can reach tens,
// where float32's own spacing is a few 1e-6; there our engine's dense
// layer, one FMA chain per output over thousands of inputs (core/dconv.h),
// lands farther from the exact sum than ONNX Runtime's blocked GEMM does
// (docs/onnx.md has the figures), so codes are held to the scaled bound.
function diff(a, b) {
  if (a.length !== b.length) return { abs: Infinity, scaled: Infinity };
  let abs = 0, big = 1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return { abs: Infinity, scaled: Infinity };
    abs = Math.max(abs, d);
    big = Math.max(big, Math.abs(b[i]));
  }
  return { abs, scaled: abs / big };
}

// An item's dims as the model declares them (the batch, symbolic, left out).
function itemDims(meta) {
  if (!meta.isTensor || meta.type !== "float32") throw new Error(`${meta.name} is not a float32 tensor`);
  if (typeof meta.shape[0] !== "string") throw new Error(`${meta.name}: batch dimension is not dynamic`);
  return meta.shape.slice(1);
}

const prod = (d) => d.reduce((a, b) => a * b, 1);

async function run(session, name, data, n) {
  const dims = itemDims(session.inputMetadata[0]);
  const out = await session.run({ [name]: new ort.Tensor("float32", data, [n, ...dims]) });
  for (const meta of session.outputMetadata) {
    const want = [n, ...itemDims(meta)];
    if (JSON.stringify(out[meta.name].dims) !== JSON.stringify(want))
      fail(`${meta.name}: dims ${out[meta.name].dims}, declared ${want}`);
  }
  return out;
}

async function compare(tol, label, dir, refs) {
  const s = {};
  for (const p of PARTS) s[p] = await ort.InferenceSession.create(`${dir}/${p}.onnx`, OPTS);
  for (const ref of refs) {
    const x = readF32(`${ref}/x.f32`), z = readF32(`${ref}/z.f32`);
    const y = readF32(`${ref}/y.f32`), r = readF32(`${ref}/r.f32`);
    const n = x.length / prod(itemDims(s.encoder.inputMetadata[0]));
    const enc = await run(s.encoder, "input", x, n);
    const dec = await run(s.decoder, "latent", z, n);
    const ae = await run(s.autoencoder, "input", x, n);
    const d = {
      "encoder latent": diff(enc.latent.data, z),
      "decoder reconstruction": diff(dec.reconstruction.data, y),
      "autoencoder latent": diff(ae.latent.data, z),
      "autoencoder reconstruction": diff(ae.reconstruction.data, r),
    };
    const worst = Math.max(...Object.values(d).map((v) => v.scaled));
    const zmax = z.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    console.log(
      `${label} batch ${n}: max |ORT - ours| ` +
        Object.entries(d)
          .map(([k, v]) => `${k} ${v.abs.toExponential(2)}`)
          .join(", ") +
        ` (codes up to ${zmax.toPrecision(3)}; scaled ${worst.toExponential(2)})`,
    );
    if (!(worst <= tol)) fail(`${label} batch ${n}: ${worst} > ${tol}`);
  }
}

// ---- protobuf text format (what config.pbtxt is written in), enough of it
// for Triton's ModelConfig: fields, nested messages, lists, strings,
// numbers, enum names, comments. Each field becomes an array of its values.
function tokens(src) {
  const re = /\s+|#[^\n]*|("(?:[^"\\\n]|\\.)*")|(-?[0-9][0-9.eE+-]*)|([A-Za-z_][A-Za-z0-9_]*)|([{}[\]:,;<>])|(.)/gy;
  const out = [];
  for (let m; (m = re.exec(src)); ) {
    if (m[1]) out.push({ t: "str", v: JSON.parse(m[1]) });
    else if (m[2]) out.push({ t: "num", v: Number(m[2]) });
    else if (m[3]) out.push({ t: "id", v: m[3] });
    else if (m[4]) out.push({ t: m[4] });
    else if (m[5]) throw new Error(`unexpected character '${m[5]}'`);
  }
  return out;
}

function parseText(src) {
  const tk = tokens(src);
  let i = 0;
  const peek = (t) => tk[i] && tk[i].t === t;
  const expect = (t) => {
    if (!peek(t)) throw new Error(`expected '${t}' at token ${i} (${JSON.stringify(tk[i])})`);
    return tk[i++];
  };
  function value() {
    if (peek("{") || peek("<")) return message(tk[i++].t === "{" ? "}" : ">");
    const t = tk[i++];
    if (!t || !["str", "num", "id"].includes(t.t)) throw new Error(`expected a value at token ${i - 1}`);
    return t.t === "id" ? { enum: t.v } : t.v;
  }
  function message(end) {
    const o = {};
    while (i < tk.length && !peek(end)) {
      const name = expect("id").v;
      const colon = peek(":") && i++;
      const vals = [];
      if (peek("[")) {
        i++;
        while (!peek("]")) {
          vals.push(value());
          if (peek(",")) i++;
        }
        i++;
      } else {
        if (!colon && !peek("{") && !peek("<")) throw new Error(`field ${name}: expected ':' or '{'`);
        vals.push(value());
      }
      (o[name] ??= []).push(...vals);
      if (peek(",") || peek(";")) i++;
    }
    if (end) expect(end);
    return o;
  }
  return message(null);
}

// The ModelConfig fields Triton knows that a config of ours may hold, and
// those of a tensor: any other name (a typo) Triton would refuse.
const CONFIG_FIELDS = new Set([
  "name", "platform", "backend", "max_batch_size", "input", "output", "dynamic_batching", "parameters",
  "instance_group", "version_policy", "default_model_filename", "optimization",
]);
const TENSOR_FIELDS = new Set(["name", "data_type", "dims", "format", "reshape", "optional"]);

function one(o, key, what) {
  const v = o[key];
  if (!v || v.length !== 1) throw new Error(`${what}: needs exactly one '${key}'`);
  return v[0];
}

async function checkTensors(what, list, metas, maxBatch) {
  const names = metas.map((m) => m.name);
  if (JSON.stringify(list.map((t) => one(t, "name", what))) !== JSON.stringify(names))
    fail(`${what}: config names ${list.map((t) => t.name)}, the ONNX file ${names}`);
  for (const t of list) {
    for (const k of Object.keys(t)) if (!TENSOR_FIELDS.has(k)) fail(`${what}: unknown tensor field '${k}'`);
    const meta = metas.find((m) => m.name === t.name[0]);
    if (!meta) continue;
    if (one(t, "data_type", what).enum !== "TYPE_FP32" || meta.type !== "float32")
      fail(`${what} ${meta.name}: data_type ${JSON.stringify(t.data_type)}, the file's ${meta.type}`);
    // max_batch_size > 0: Triton adds the batch, which the file must leave dynamic
    const dims = t.dims || [];
    if (maxBatch > 0 && typeof meta.shape[0] !== "string")
      fail(`${what} ${meta.name}: max_batch_size ${maxBatch} but the batch dimension is fixed`);
    if (JSON.stringify(dims) !== JSON.stringify(meta.shape.slice(maxBatch > 0 ? 1 : 0)))
      fail(`${what} ${meta.name}: dims [${dims}], the file declares [${meta.shape}]`);
  }
}

async function triton(repo) {
  let models = 0;
  for (const name of readdirSync(repo).sort()) {
    const cfgPath = `${repo}/${name}/config.pbtxt`;
    if (!existsSync(cfgPath)) continue;
    models++;
    const what = `${name}/config.pbtxt`;
    try {
      const cfg = parseText(readFileSync(cfgPath, "utf8"));
      for (const k of Object.keys(cfg)) if (!CONFIG_FIELDS.has(k)) fail(`${what}: unknown field '${k}'`);
      if (one(cfg, "name", what) !== name) fail(`${what}: name '${cfg.name}' is not its folder's`);
      const platform = cfg.platform?.[0], backend = cfg.backend?.[0];
      if (!(platform === "onnxruntime_onnx" || backend === "onnxruntime") ||
          (platform && platform !== "onnxruntime_onnx") || (backend && backend !== "onnxruntime"))
        fail(`${what}: platform '${platform}' / backend '${backend}' are not ONNX Runtime's`);
      const maxBatch = one(cfg, "max_batch_size", what);
      if (!Number.isInteger(maxBatch) || maxBatch < 0) fail(`${what}: max_batch_size ${maxBatch}`);
      const file = `${repo}/${name}/1/${cfg.default_model_filename?.[0] ?? "model.onnx"}`;
      const s = await ort.InferenceSession.create(file, OPTS);
      await checkTensors(`${what} input`, cfg.input || [], s.inputMetadata, maxBatch);
      await checkTensors(`${what} output`, cfg.output || [], s.outputMetadata, maxBatch);
      // As Triton would call it: each input at [batch] + dims, a batch of 1
      // and a full one; run() checks each output's dims against the file's.
      for (const n of new Set([1, maxBatch || 1])) {
        const feeds = {};
        for (const t of cfg.input) {
          const dims = t.dims;
          feeds[t.name[0]] = new ort.Tensor("float32", new Float32Array(n * prod(dims)).fill(0.5), [n, ...dims]);
        }
        const out = await s.run(feeds);
        for (const t of cfg.output) {
          const got = out[t.name[0]]?.dims;
          if (JSON.stringify(got) !== JSON.stringify([n, ...t.dims]))
            fail(`${what} output ${t.name[0]}: batch ${n} gave dims [${got}], config says [${n}, ${t.dims}]`);
        }
      }
      console.log(`${what}: ${platform ?? backend}, max_batch_size ${maxBatch}, ` +
        `inputs ${cfg.input.map((t) => `${t.name[0]} [${t.dims}]`).join(", ")}, ` +
        `outputs ${cfg.output.map((t) => `${t.name[0]} [${t.dims}]`).join(", ")}: agree with ${name}/1/model.onnx`);
    } catch (e) {
      fail(`${what}: ${e.message}`);
    }
  }
  if (models === 0) fail(`${repo}: no model folder with a config.pbtxt`);
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === "compare") {
    const tol = Number(args[0]);
    for (let k = 1; k + 2 < args.length + 1; k += 3) await compare(tol, args[k], args[k + 1], args[k + 2].split(","));
  } else if (mode === "triton") {
    await triton(args[0]);
  } else {
    console.error("usage: node check.mjs compare TOL LABEL ONNXDIR REFDIRS... | triton REPO");
    process.exit(2);
  }
} catch (e) {
  fail(e.stack || e.message);
}
process.exit(failed ? 1 : 0);
