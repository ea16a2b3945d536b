#!/usr/bin/env node
// ONNX Runtime (CPU, npm's onnxruntime-node) running a model of ours
// exported to ONNX (aetrain export-onnx: encoder.onnx, autoencoder.onnx), measured on request in
// turns as bench_core's and torch_ref.py's, so that bench/engines.sh can
// alternate the three seconds apart. Lines on stdin:
//   "ready"                  -> "ready" once both sessions are loaded and warm
//   "OP B SECS"              -> images/s of one turn: batches of B for SECS
//                               seconds (at least 3); OP encode|reconstruct
//   "dump OP B PATH"         -> writes OP's output for the first B images
//                               (float32, little-endian) to PATH; "ok"
// The images are the IDX file's first ones, repeated to the batch.
//
//   node bench/ort/ort_ref.js ONNX_DIR IDX_IMAGES THREADS
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

let ort;
try {
	ort = require('onnxruntime-node');
} catch (e) {
	process.stderr.write('ort_ref: onnxruntime-node is missing: cd bench/ort && npm ci --ignore-scripts\n');
	process.exit(3);
}

const TURN_MIN_BATCHES = 3;
const MAX_BATCH = 256;

function readIdx(file) {
	const b = fs.readFileSync(file);
	if (b.readUInt32BE(0) !== 0x803) throw new Error(`${file}: not an IDX image file`);
	const n = b.readUInt32BE(4), h = b.readUInt32BE(8), w = b.readUInt32BE(12);
	return { n, h, w, pixels: b.subarray(16, 16 + n * h * w) };
}

async function main() {
	const [dir, idxFile, threadsArg] = process.argv.slice(2);
	if (!dir || !idxFile) {
		process.stderr.write('usage: ort_ref.js ONNX_DIR IDX_IMAGES THREADS\n');
		process.exit(2);
	}
	const threads = Number(threadsArg || 2);
	const opts = {
		intraOpNumThreads: threads,
		interOpNumThreads: 1,
		executionMode: 'sequential',
		graphOptimizationLevel: 'all',
		executionProviders: ['cpu'],
	};
	const files = { encode: 'encoder.onnx', reconstruct: 'autoencoder.onnx' };
	const sessions = {};
	for (const op of Object.keys(files))
		sessions[op] = await ort.InferenceSession.create(path.join(dir, files[op]), opts);
	const img = readIdx(idxFile);
	const per = img.h * img.w;
	const x = new Float32Array(MAX_BATCH * per);
	for (let i = 0; i < MAX_BATCH; i++)
		for (let p = 0; p < per; p++) x[i * per + p] = img.pixels[(i % img.n) * per + p] / 255;
	// One input tensor per batch size, made once: the turns time the runs.
	const inputs = new Map();
	const input = (b) => {
		if (!inputs.has(b)) inputs.set(b, new ort.Tensor('float32', x.subarray(0, b * per), [b, 1, img.h, img.w]));
		return inputs.get(b);
	};
	const run = async (op, b) => {
		const s = sessions[op];
		const out = await s.run({ [s.inputNames[0]]: input(b) });
		/* the autoencoder graph gives the code too: the image is its last output */
		return out[s.outputNames[s.outputNames.length - 1]];
	};
	for (const op of Object.keys(sessions)) for (const b of [1, 32, MAX_BATCH]) await run(op, b);

	const rl = readline.createInterface({ input: process.stdin });
	for await (const line of rl) {
		const w = line.trim().split(/\s+/);
		if (w.length === 1 && w[0] === 'ready') {
			console.log('ready');
		} else if (w.length === 3 && sessions[w[0]]) {
			const b = Number(w[1]), secs = Number(w[2]);
			if (!(b >= 1 && b <= MAX_BATCH)) throw new Error(`batch ${w[1]} out of range`);
			let k = 0;
			const t0 = process.hrtime.bigint();
			let t;
			do {
				await run(w[0], b);
				k++;
				t = Number(process.hrtime.bigint() - t0) / 1e9;
			} while (t < secs || k < TURN_MIN_BATCHES);
			console.log(((b * k) / t).toFixed(2));
		} else if (w.length === 4 && w[0] === 'dump' && sessions[w[1]]) {
			const y = await run(w[1], Number(w[2]));
			fs.writeFileSync(w[3], Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
			console.log('ok');
		} else {
			throw new Error(`unknown request ${JSON.stringify(line)}`);
		}
	}
}

main().catch((e) => {
	process.stderr.write(`ort_ref: ${e.message}\n`);
	process.exit(1);
});
