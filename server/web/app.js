// The aeserve playground. Plain script, no framework, no network beyond this
// server: every number shown comes from the server's own API (V2 infer for
// the code, reconstruction and score; /v1 anomaly for the heatmap; /v1
// decode for the sliders), so what the page shows is what a client gets.
'use strict';

const $ = (id) => document.getElementById(id);
const CLASS_NAMES = {
  digits: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  fashion: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
};
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const QUANTILES = ['p50', 'p90', 'p95', 'p99', 'p99.9'];
const BRUSH = 0.09; // brush width, as a share of the drawing's side (about MNIST's stroke)

const state = {
  key: sessionStorage.getItem('aeserve-key') || '',
  models: [],
  model: null,     // GET /v1/models/NAME
  x: null,         // the clean input, Float32Array C*H*W in [0, 1]
  sent: null,      // what was sent (x, or x with noise)
  code: null,      // the input's code
  walk: null,      // the code the sliders hold
  a: null, b: null,
  samples: null,   // { set, pix: Float32Array, n, labels, codes, pca }
  noiseSeed: 1,
};

// ---------------------------------------------------------------- errors

class ApiError extends Error {}

function showError(e) {
  const el = $('error');
  el.textContent = e ? String(e.message || e) : '';
  el.hidden = !e;
  // A server's answer is shown, not logged; anything else is a bug in this page.
  if (e && !(e instanceof ApiError)) console.error(e);
}

// Calls the server; a 401 asks for a key, any other failure becomes an
// ApiError carrying the server's own message.
async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (state.key) headers.set('Authorization', 'Bearer ' + state.key);
  let res;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (e) {
    throw new ApiError('The server cannot be reached (' + e.message + ')');
  }
  if (res.ok) return res;
  let msg = res.statusText;
  try {
    const j = await res.json();
    msg = typeof j.error === 'string' ? j.error : j.error.message;
  } catch (_) { /* not JSON: keep the status text */ }
  if (res.status === 401) {
    $('key-form').hidden = false;
    $('key').focus();
    throw new ApiError('This server needs an API key: ' + msg);
  }
  throw new ApiError(`${res.status} from ${path.split('?')[0]}: ${msg}`);
}

const getJSON = async (path) => (await api(path)).json();

// ----------------------------------------------------- one call at a time

// Runs fn when asked, never two at once: a request made while one runs is
// remembered and run once when it ends (the latest state wins). Asking
// returns a promise of the run that will include the request.
function serial(fn, delay = 0) {
  let running = false, pending = false, timer = 0, waiters = [];
  const run = async () => {
    if (running) { pending = true; return; }
    running = true;
    const mine = waiters;
    waiters = [];
    try { await fn(); showError(null); } catch (e) { showError(e); }
    running = false;
    mine.forEach((done) => done());
    if (pending) { pending = false; schedule(0); }
  };
  const schedule = (ms) => { clearTimeout(timer); timer = setTimeout(run, ms); };
  // now: skip the wait (nothing else is about to follow)
  return (now = false) => new Promise((done) => {
    waiters.push(done);
    schedule(now === true ? 0 : delay);
  });
}

// ------------------------------------------------------------ images

function shape() { return state.model.input_shape; } // [C, H, W]

// Float32Array (C, H, W) in [0, 1] -> canvas pixels.
function paint(canvas, x) {
  const [c, h, w] = shape();
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) {
      const v = x[(c === 3 ? k : 0) * h * w + i];
      img.data[4 * i + k] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// Any drawable (canvas, ImageBitmap) -> Float32Array (C, H, W), scaled to the model's size.
function pixelsOf(source) {
  const [c, h, w] = shape();
  const cv = document.createElement('canvas');
  cv.width = w; cv.height = h;
  const ctx = cv.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, w, h);
  ctx.imageSmoothingQuality = 'high'; // average the drawing's pixels, not sample a few
  ctx.drawImage(source, 0, 0, w, h);
  const d = ctx.getImageData(0, 0, w, h).data;
  const x = new Float32Array(c * h * w);
  for (let i = 0; i < h * w; i++) {
    if (c === 3) for (let k = 0; k < 3; k++) x[k * h * w + i] = d[4 * i + k] / 255;
    else x[i] = (0.299 * d[4 * i] + 0.587 * d[4 * i + 1] + 0.114 * d[4 * i + 2]) / 255;
  }
  return x;
}

// A small seeded generator, so that the noise stays put while you draw.
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
}

function gauss(next) {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

function noisy(x) {
  if ($('noise-row').hidden) return x;
  const std = Number($('noise').value), next = rng(state.noiseSeed);
  return x.map((v) => Math.min(1, Math.max(0, v + std * gauss(next))));
}

// ------------------------------------------------------------ inference

// V2 infer: the input as binary FP32 (no number printed and parsed), the
// outputs asked as JSON. Returns { name: data } and the answer's parameters.
async function infer(x, n, outputs, params = {}) {
  const [c, h, w] = shape();
  const head = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: 'input', datatype: 'FP32', shape: [n, c, h, w], parameters: { binary_data_size: x.byteLength } }],
    outputs: outputs.map((name) => ({ name })),
    parameters: params,
  }));
  const body = new Uint8Array(head.length + x.byteLength);
  body.set(head, 0);
  body.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), head.length);
  const res = await api(`/v2/models/${encodeURIComponent(state.model.name)}/infer`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(head.length) },
    body,
  });
  const j = await res.json();
  const out = {};
  for (const o of j.outputs) out[o.name] = o.data;
  return { out, params: j.parameters || {} };
}

async function heatmap(x) {
  const [c, h, w] = shape();
  const q = new URLSearchParams({ scale: '1' });
  if ($('score-kind').value) q.set('score', $('score-kind').value);
  const res = await api(`/v1/models/${encodeURIComponent(state.model.name)}/anomaly?${q}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'image/png' },
    body: JSON.stringify({ shape: [1, c, h, w], data: Array.from(x) }),
  });
  const bmp = await createImageBitmap(await res.blob());
  const cv = $('heat');
  cv.width = bmp.width; cv.height = bmp.height;
  cv.getContext('2d').drawImage(bmp, 0, 0);
}

async function decode(z) {
  const res = await api(`/v1/models/${encodeURIComponent(state.model.name)}/decode`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ shape: [1, z.length], data: Array.from(z) }),
  });
  return Float32Array.from((await res.json()).data);
}

// ------------------------------------------------------------ the update

const update = serial(async () => {
  if (!state.model || !state.x) return;
  const sent = noisy(state.x);
  state.sent = sent;
  paint($('noisy'), sent);
  const params = $('score-kind').value ? { score: $('score-kind').value } : {};
  const { out, params: answer } = await infer(sent, 1, ['latent', 'reconstruction', 'score', 'anomaly'], params);
  paint($('recon'), out.reconstruction);
  state.code = Float32Array.from(out.latent);
  showScore(out.score[0], out.anomaly[0], answer.threshold);
  drawBars(state.code);
  setSliders(state.code);
  paint($('decoded'), out.reconstruction);
  drawMap();
  if (!performance.getEntriesByName('first-reconstruction').length) performance.mark('first-reconstruction');
  await heatmap(sent);
}, 60);

// ------------------------------------------------------------ score

function showScore(score, anomaly, threshold) {
  const kind = $('score-kind').value || state.model.default_score;
  const q = (state.model.score_quantiles || {})[kind] || {};
  $('score').textContent = `${kind} ${score.toPrecision(4)}`;
  const v = $('verdict');
  v.textContent = anomaly ? 'anomaly' : 'normal';
  v.className = anomaly ? 'anomaly' : 'normal';
  const marks = QUANTILES.filter((k) => k in q).map((k) => [k, q[k]]);
  const lo = Math.min(0, score, ...marks.map((m) => m[1]));
  const hi = Math.max(score, threshold, ...marks.map((m) => m[1])) * 1.08 || 1;
  const at = (s) => `${(100 * (s - lo)) / (hi - lo)}%`;
  const scale = $('scale');
  scale.querySelectorAll('.tick').forEach((t) => t.remove());
  // The threshold is often one of the quantiles (p99 by default): one tick, both names.
  const same = marks.find(([, s]) => Math.abs(s - threshold) <= 1e-5 * Math.abs(s));
  const ticks = marks.filter(([k]) => !same || k !== same[0]);
  ticks.push([same ? `${same[0]} threshold` : 'threshold', threshold, 'threshold']);
  ticks.sort((a, b) => a[1] - b[1]).forEach(([label, s, cls], i) => {
    const t = document.createElement('div');
    // every other label below the line, so that close ones do not overlap
    t.className = ['tick', cls, i % 2 ? 'low' : ''].filter(Boolean).join(' ');
    t.style.left = at(s);
    const span = document.createElement('span');
    span.textContent = label;
    t.append(span);
    scale.append(t);
  });
  $('scale-marker').style.left = at(score);
  scale.setAttribute('aria-label', `Score ${score.toPrecision(4)}; threshold ${threshold.toPrecision(4)}; ` +
    marks.map(([k, s]) => `${k} ${s.toPrecision(3)}`).join(', '));
  $('scale-note').textContent = `Ticks: where the ${kind} score falls on the model's held-out images; ` +
    `above the threshold (${threshold.toPrecision(4)}) is an anomaly.`;
}

// ------------------------------------------------------------ the code

function codeRange(i) {
  const s = state.samples && state.samples.codes && state.samples.stats;
  if (s) return [s.mean[i] - 3 * s.std[i], s.mean[i] + 3 * s.std[i]];
  const m = Math.max(1, ...Array.from(state.code || [1], Math.abs)) * 2;
  return [-m, m];
}

function drawBars(z) {
  const bars = $('bars');
  if (bars.children.length !== z.length) {
    bars.replaceChildren(...Array.from(z, () => {
      const b = document.createElement('div');
      b.className = 'bar';
      b.append(document.createElement('div'));
      return b;
    }));
  }
  const m = Math.max(1e-6, ...Array.from(z, Math.abs));
  Array.from(bars.children).forEach((b, i) => {
    const f = (50 * Math.abs(z[i])) / m, bar = b.firstChild;
    bar.style.height = `${f}%`;
    bar.style.top = z[i] >= 0 ? `${50 - f}%` : '50%';
    b.title = `z${i} = ${z[i].toPrecision(4)}`;
  });
  bars.setAttribute('aria-label', 'Latent code: ' + Array.from(z, (v) => v.toFixed(2)).join(', '));
}

function buildSliders(n) {
  $('sliders').replaceChildren(...Array.from({ length: n }, (_, i) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'range';
    input.step = 'any';
    input.id = `z${i}`;
    input.addEventListener('input', () => {
      state.walk[i] = Number(input.value);
      drawBars(state.walk);
      walk();
    });
    label.append(`z${i}`, input);
    return label;
  }));
}

function setSliders(z) {
  state.walk = Float32Array.from(z);
  z.forEach((v, i) => {
    const s = $(`z${i}`);
    if (!s) return;
    const [lo, hi] = codeRange(i);
    s.min = String(Math.min(lo, v));
    s.max = String(Math.max(hi, v));
    s.value = String(v);
  });
}

const walk = serial(async () => paint($('decoded'), await decode(state.walk)), 30);

function randomCode() {
  const n = state.model.latent, next = rng((Math.random() * 2 ** 32) >>> 0);
  const s = state.samples && state.samples.stats;
  const z = Float32Array.from({ length: n }, (_, i) => (s ? s.mean[i] + s.std[i] * gauss(next) : 2 * gauss(next)));
  setSliders(z);
  drawBars(z);
  walk();
}

function mix() {
  if (!state.a || !state.b) return;
  const t = Number($('mix').value);
  const z = state.a.map((a, i) => (1 - t) * a + t * state.b[i]);
  setSliders(z);
  drawBars(z);
  walk();
}

// ------------------------------------------------------------ the map

// The two principal axes of codes (n, d), by power iteration with deflation.
function pca(codes, n, d) {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] += codes[i * d + k] / n;
  const cov = new Float64Array(d * d);
  for (let i = 0; i < n; i++)
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++) cov[a * d + b] += ((codes[i * d + a] - mean[a]) * (codes[i * d + b] - mean[b])) / n;
  const axes = [];
  for (let c = 0; c < 2; c++) {
    let v = Float64Array.from({ length: d }, (_, k) => 1 + k / d);
    for (let it = 0; it < 200; it++) {
      const u = new Float64Array(d);
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) u[a] += cov[a * d + b] * v[b];
      const norm = Math.hypot(...u) || 1;
      v = u.map((x) => x / norm);
    }
    let lambda = 0;
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) lambda += v[a] * cov[a * d + b] * v[b];
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b] -= lambda * v[a] * v[b];
    axes.push(v);
  }
  const std = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) std[k] += (codes[i * d + k] - mean[k]) ** 2 / n;
  return { mean, axes, std: std.map(Math.sqrt) };
}

function project(p, z) {
  return p.axes.map((v) => v.reduce((acc, vk, k) => acc + vk * (z[k] - p.mean[k]), 0));
}

// The chosen set of test images: their pixels (so one can be the input at
// once), then their codes and the map.
async function loadSamples() {
  await fetchSamples();
  await mapSamples();
}

async function fetchSamples() {
  const set = $('sample-set').value;
  state.samples = null;
  $('sample').disabled = true;
  $('legend').replaceChildren();
  drawMap();
  const [c, h, w] = shape();
  if (!set) return;
  const meta = await getJSON(`/ui/samples/${set}.json`);
  if (meta.tile[1] !== h || meta.tile[2] !== w) {
    $('legend').replaceChildren(`The ${set} images are ${meta.tile[1]}×${meta.tile[2]}; this model takes ${h}×${w}.`);
    return;
  }
  const bmp = await createImageBitmap(await (await api(`/ui/samples/${set}.png`)).blob());
  const cv = document.createElement('canvas');
  cv.width = bmp.width; cv.height = bmp.height;
  const ctx = cv.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0);
  const d = ctx.getImageData(0, 0, cv.width, cv.height).data;
  const n = meta.count, per = c * h * w, pix = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    const x0 = (i % meta.columns) * w, y0 = Math.floor(i / meta.columns) * h;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++)
          pix[i * per + k * h * w + y * w + x] = d[4 * ((y0 + y) * cv.width + x0 + x) + (c === 3 ? k : 0)] / 255;
  }
  state.samples = { set, pix, n, per, labels: meta.labels };
  $('sample').disabled = false;
}

async function mapSamples() {
  const s = state.samples;
  if (!s) return;
  const { out } = await infer(s.pix, s.n, ['latent']);
  if (state.samples !== s) return; // another set was chosen meanwhile
  const d = state.model.latent, codes = Float32Array.from(out.latent);
  const p = pca(codes, s.n, d);
  Object.assign(s, { codes, pca: p, stats: { mean: p.mean, std: p.std },
    points: Array.from({ length: s.n }, (_, i) => project(p, codes.subarray(i * d, (i + 1) * d))) });
  const names = CLASS_NAMES[s.set];
  $('legend').replaceChildren(...names.map((name, k) => {
    const li = document.createElement('li'), dot = document.createElement('i');
    dot.style.background = COLOURS[k % COLOURS.length];
    li.append(dot, name);
    return li;
  }));
  if (state.code) setSliders(state.code);
  drawMap();
}

function drawMap() {
  const cv = $('map'), ctx = cv.getContext('2d'), s = state.samples;
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!s || !s.points) {
    ctx.fillStyle = '#5b6470';
    ctx.font = '14px system-ui, sans-serif';
    ctx.fillText('Choose test images to map their codes.', 12, 24);
    return;
  }
  const here = state.code ? project(s.pca, state.code) : null;
  const all = here ? s.points.concat([here]) : s.points;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const px = (p) => [12 + ((p[0] - x0) / (x1 - x0 || 1)) * (cv.width - 24), 12 + ((y1 - p[1]) / (y1 - y0 || 1)) * (cv.height - 24)];
  s.points.forEach((p, i) => {
    const [x, y] = px(p);
    ctx.fillStyle = COLOURS[s.labels[i] % COLOURS.length];
    ctx.beginPath();
    ctx.arc(x, y, 3, 0, 2 * Math.PI);
    ctx.fill();
  });
  if (here) {
    const [x, y] = px(here);
    ctx.strokeStyle = '#000';
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.arc(x, y, 8, 0, 2 * Math.PI);
    ctx.stroke();
  }
}

// ------------------------------------------------------------ input

function setInput(x, caption, now = false) {
  state.x = x;
  state.noiseSeed = (state.noiseSeed * 1103515245 + 12345) >>> 0;
  const [, h, w] = shape();
  const draw = $('draw'), ctx = draw.getContext('2d');
  const cv = document.createElement('canvas');
  paint(cv, x);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(cv, 0, 0, w, h, 0, 0, draw.width, draw.height);
  paint($('noisy'), noisy(x));
  $('cap-input').textContent = caption;
  return update(now);
}

function setupDrawing() {
  const draw = $('draw'), ctx = draw.getContext('2d');
  let last = null;
  const pos = (e) => {
    const r = draw.getBoundingClientRect();
    return [((e.clientX - r.left) * draw.width) / r.width, ((e.clientY - r.top) * draw.height) / r.height];
  };
  draw.addEventListener('pointerdown', (e) => {
    draw.setPointerCapture(e.pointerId);
    last = pos(e);
    stroke(last, last);
  });
  draw.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = pos(e);
    stroke(last, p);
    last = p;
  });
  const end = () => { last = null; };
  draw.addEventListener('pointerup', end);
  draw.addEventListener('pointercancel', end);
  function stroke(a, b) {
    ctx.strokeStyle = '#fff';
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineWidth = BRUSH * draw.width;
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
    state.x = pixelsOf(draw);
    $('cap-input').textContent = 'Your drawing';
    update();
  }
  $('clear').addEventListener('click', () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, draw.width, draw.height);
    state.x = pixelsOf(draw);
    $('cap-input').textContent = 'Draw here or drop a PNG';
    update();
  });
  // Drop or pick a PNG: scaled to the model's size, as the server's ?resize would.
  const take = async (file) => {
    if (!file) return;
    try {
      const bmp = await createImageBitmap(file);
      setInput(pixelsOf(bmp), file.name);
    } catch (e) {
      showError(new ApiError(`${file.name} is not an image this browser can read`));
    }
  };
  draw.addEventListener('dragover', (e) => { e.preventDefault(); draw.classList.add('dragover'); });
  draw.addEventListener('dragleave', () => draw.classList.remove('dragover'));
  draw.addEventListener('drop', (e) => {
    e.preventDefault();
    draw.classList.remove('dragover');
    take(e.dataTransfer.files[0]);
  });
  $('file').addEventListener('change', (e) => take(e.target.files[0]));
}

function randomSample() {
  const s = state.samples;
  const i = Math.floor(Math.random() * s.n);
  setInput(s.pix.slice(i * s.per, (i + 1) * s.per), `Test image ${i} (${CLASS_NAMES[s.set][s.labels[i]]})`);
}

// ------------------------------------------------------------ models

function describe(m) {
  const t = m.training || {};
  const [c, h, w] = m.input_shape;
  const bits = [`${h}×${w}×${c}`, `${m.latent}-value code`, m.task + (m.noise !== 'none' ? ` (${m.noise})` : ''),
    `${m.parameters.toLocaleString()} parameters`];
  if (t.dataset) bits.push(`trained on ${t.dataset}${t.classes ? ` classes ${t.classes}` : ''}, ${t.epochs} epochs`);
  if (t.val_loss >= 0) bits.push(`held-out loss ${t.val_loss.toPrecision(3)}`);
  return bits.join(' · ');
}

async function chooseModel(name) {
  const m = await getJSON(`/v1/models/${encodeURIComponent(name)}`);
  state.model = m;
  $('model-info').textContent = describe(m);
  const kinds = $('score-kind');
  kinds.replaceChildren(...m.scores.map((k) => new Option(k + (k === m.default_score ? ' (default)' : ''), k)));
  kinds.value = m.default_score;
  kinds.disabled = false;
  const denoise = m.task === 'denoise';
  $('noise-row').hidden = !denoise;
  $('fig-noisy').hidden = !denoise;
  $('cap-recon').textContent = denoise ? 'Denoised' : 'Reconstruction';
  const [, h, w] = m.input_shape;
  const side = Math.max(h, w) * 10;
  const draw = $('draw');
  draw.width = Math.round((side * w) / Math.max(h, w));
  draw.height = Math.round((side * h) / Math.max(h, w));
  buildSliders(m.latent);
  const ds = (m.training && m.training.dataset) || '';
  $('sample-set').value = /fashion/i.test(ds) ? 'fashion' : /mnist|digit/i.test(ds) ? 'digits' : '';
  state.a = state.b = null;
  $('mix').disabled = true;
  // Start from a test image, so the page shows the model at work at once;
  // the map follows.
  await fetchSamples();
  const s = state.samples;
  if (s) await setInput(s.pix.slice(0, s.per), `Test image 0 (${CLASS_NAMES[s.set][s.labels[0]]})`, true);
  else await setInput(new Float32Array(m.input_shape.reduce((a, b) => a * b)), 'Draw here or drop a PNG', true);
  await mapSamples();
}

async function start() {
  const list = await getJSON('/v1/models');
  state.models = list.models;
  const sel = $('model');
  sel.replaceChildren(...list.models.map((m) => new Option(m.name + (m.default ? ' (default)' : ''), m.name)));
  const wanted = new URLSearchParams(location.search).get('model');
  sel.value = list.models.some((m) => m.name === wanted) ? wanted : list.default;
  sel.disabled = false;
  await chooseModel(sel.value);
}

function run(p) {
  p.then(() => showError(null), showError);
}

document.addEventListener('DOMContentLoaded', () => {
  setupDrawing();
  $('model').addEventListener('change', (e) => run(chooseModel(e.target.value)));
  $('score-kind').addEventListener('change', () => update());
  $('sample-set').addEventListener('change', () => run(loadSamples()));
  $('sample').addEventListener('click', randomSample);
  $('noise').addEventListener('input', () => {
    $('noise-out').textContent = $('noise').value;
    update();
  });
  $('random-code').addEventListener('click', randomCode);
  $('set-a').addEventListener('click', () => {
    state.a = state.code && Float32Array.from(state.code);
    $('mix').disabled = !(state.a && state.b);
  });
  $('set-b').addEventListener('click', () => {
    state.b = state.code && Float32Array.from(state.code);
    $('mix').disabled = !(state.a && state.b);
  });
  $('mix').addEventListener('input', mix);
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.key = $('key').value.trim();
    sessionStorage.setItem('aeserve-key', state.key);
    $('key-form').hidden = true;
    showError(null); // the 401's message is answered; a new failure will say so
    run(state.model ? chooseModel(state.model.name) : start());
  });
  run(start());
});
