// Drives Debian's chromium (headless, through puppeteer-core) against a
// running aeserve and checks what a person would see on the playground page.
//
//   node playground.mjs URL DIGIT.png FASHION.png [SHOTS_DIR]   the page at work
//   node playground.mjs --key URL KEY                            a server with API keys
//
// Prints one line per check ("ok - ..." / "not ok - ..."), then the page's
// weight and time to the first reconstruction as JSON; exits 1 on any
// failure, or on any error in the page's console.
import { readFileSync } from 'node:fs';
import puppeteer from 'puppeteer-core';

let failed = 0;
const check = (what, ok, detail = '') => {
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}${!ok && detail ? ` (${detail})` : ''}`);
  if (!ok) failed++;
};

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});

// A page that records every console error and failed load.
async function open(viewport, allowed = () => false) {
  const page = await browser.newPage();
  await page.setViewport(viewport);
  page.errors = [];
  page.on('console', (m) => m.type() === 'error' && !allowed(m.text()) && page.errors.push(m.text()));
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('requestfailed', (r) => page.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  return page;
}

// A hash of a canvas's pixels: what the person sees there.
const look = (page, id) =>
  page.evaluate((id) => {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261;
    for (const v of d) h = Math.imul(h ^ v, 16777619) >>> 0;
    return h;
  }, id);

const settle = (page) => page.waitForNetworkIdle({ idleTime: 250, timeout: 15000 });

// Drops a PNG file on the drawing as a person dragging it from a file manager would.
async function drop(page, path, name) {
  const b64 = readFileSync(path).toString('base64');
  await page.evaluate(
    (b64, name) => {
      const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: 'image/png' }));
      const target = document.getElementById('draw');
      for (const type of ['dragenter', 'dragover', 'drop'])
        target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    b64,
    name,
  );
  await page.waitForFunction((name) => document.getElementById('cap-input').textContent === name, {}, name);
  await settle(page);
}

// The score and threshold the page shows.
const verdict = (page) =>
  page.evaluate(() => {
    const m = /Score ([-\d.e+]+); threshold ([-\d.e+]+)/.exec(document.getElementById('scale').getAttribute('aria-label'));
    return { verdict: document.getElementById('verdict').textContent, score: Number(m[1]), threshold: Number(m[2]) };
  });

async function atWork(url, digit, fashion, shots) {
  const page = await open({ width: 1280, height: 1000 });
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  const bytes = { page: 0, api: 0 };
  const urls = new Map();
  cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
  cdp.on('Network.loadingFinished', (e) => {
    const path = new URL(urls.get(e.requestId) || url).pathname;
    bytes[path === '/' || path.startsWith('/ui/') ? 'page' : 'api'] += e.encodedDataLength;
  });

  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => performance.getEntriesByName('first-reconstruction').length > 0, { timeout: 20000 });
  const [firstReconstruction, domReady] = await page.evaluate(() => [
    performance.getEntriesByName('first-reconstruction')[0].startTime,
    performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
  ]);
  // The first load ends when the map of codes is drawn (its legend appears).
  await page.waitForFunction(() => document.querySelectorAll('#legend li').length === 10, { timeout: 20000 });
  await settle(page);
  const weight = { ...bytes };
  check('the models are listed', (await page.$$eval('#model option', (o) => o.length)) >= 1);
  check('the model is described', /16-value code/.test(await page.$eval('#model-info', (e) => e.textContent)));
  check('the map shows the codes of test images', (await page.$$eval('#legend li', (l) => l.length)) === 10);
  check('the input is the first test image', /^Test image 0/.test(await page.$eval('#cap-input', (e) => e.textContent)));

  // Draw a stroke on a cleared canvas: the reconstruction changes.
  await page.click('#clear');
  await settle(page);
  const blank = await look(page, 'recon');
  const box = await page.$eval('#draw', (e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; });
  await page.mouse.move(box[0] + box[2] * 0.5, box[1] + box[3] * 0.2);
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) await page.mouse.move(box[0] + box[2] * 0.5, box[1] + box[3] * (0.2 + i * 0.05));
  await page.mouse.up();
  await settle(page);
  check('a stroke changes the reconstruction', (await look(page, 'recon')) !== blank);
  check('the stroke is on the drawing', (await look(page, 'draw')) !== 0);

  // A test digit: normal. A Fashion-MNIST image: the verdict flips.
  await drop(page, digit, 'digit.png');
  const d = await verdict(page);
  check('a dropped test digit scores under the threshold', d.verdict === 'normal' && d.score < d.threshold, JSON.stringify(d));
  const calm = await look(page, 'heat');
  await drop(page, fashion, 'fashion.png');
  const f = await verdict(page);
  check('a dropped Fashion-MNIST image flips the verdict', f.verdict === 'anomaly' && f.score > f.threshold, JSON.stringify(f));
  check('the heatmap shows the new image', (await look(page, 'heat')) !== calm);
  if (shots) await page.screenshot({ path: `${shots}/playground-desktop.png`, fullPage: true });

  // A slider decodes live.
  await page.click('summary');
  const before = await look(page, 'decoded');
  const s = await page.$eval('#z0', (e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; });
  await page.mouse.click(s[0] + s[2] * 0.95, s[1] + s[3] / 2);
  await settle(page);
  check('moving a slider changes the decoded image', (await look(page, 'decoded')) !== before);

  // Keyboard: the controls are reachable and labelled.
  const unlabelled = await page.$$eval('input, select, button', (els) =>
    els.filter((e) => !e.hidden && !e.closest('[hidden]') && !(e.labels?.length || e.textContent.trim() || e.getAttribute('aria-label'))).map((e) => e.id));
  check('every control has a label', unlabelled.length === 0, unlabelled.join(','));
  // A denoising model: noisy, denoised and clean side by side; the noise control corrupts what is sent.
  await page.select('#model', 'mnist-denoise');
  await page.waitForSelector('#fig-noisy:not([hidden])');
  await settle(page);
  const noisy = await look(page, 'noisy');
  await page.$eval('#noise', (e) => e.focus());
  for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowRight');
  await settle(page);
  check('a denoising model shows its noise control, and it changes what is sent', (await look(page, 'noisy')) !== noisy);
  check('the denoised image is labelled so', (await page.$eval('#cap-recon', (e) => e.textContent)) === 'Denoised');
  check('no console errors on the desktop', page.errors.length === 0, page.errors.join(' | '));

  // A phone: 360 px wide, nothing wider than the screen.
  const phone = await open({ width: 360, height: 780, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await phone.goto(`${url}?model=mnist`, { waitUntil: 'load' });
  await phone.waitForFunction(() => performance.getEntriesByName('first-reconstruction').length > 0, { timeout: 20000 });
  await settle(phone);
  const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
  check('readable at 360 px: no sideways scrolling', wide <= 360, `${wide} px`);
  // A finger draws too.
  await phone.click('#clear');
  await settle(phone);
  const pblank = await look(phone, 'recon');
  const pb = await phone.$eval('#draw', (e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; });
  await phone.touchscreen.touchStart(pb[0] + pb[2] * 0.3, pb[1] + pb[3] * 0.5);
  for (let i = 1; i <= 10; i++) await phone.touchscreen.touchMove(pb[0] + pb[2] * (0.3 + i * 0.04), pb[1] + pb[3] * 0.5);
  await phone.touchscreen.touchEnd();
  await settle(phone);
  check('a touch stroke changes the reconstruction', (await look(phone, 'recon')) !== pblank);
  await drop(phone, digit, 'digit.png');
  if (shots) await phone.screenshot({ path: `${shots}/playground-phone.png`, fullPage: true });
  check('no console errors on the phone', phone.errors.length === 0, phone.errors.join(' | '));
  console.log(JSON.stringify({ first_load_bytes: weight, dom_content_loaded_ms: Math.round(domReady),
    first_reconstruction_ms: Math.round(firstReconstruction) }));
}

// With --api-keys: the page loads, asks for the key, and works once given it.
async function withKey(url, key) {
  // The browser logs each 401 it is answered; those are the point here.
  const page = await open({ width: 1024, height: 800 }, (t) => /status of 401/.test(t));
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#key-form:not([hidden])', { timeout: 10000 });
  check('the page asks for the key', true);
  check('the error says why', /API key/.test(await page.$eval('#error', (e) => e.textContent)));
  await page.type('#key', key);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => performance.getEntriesByName('first-reconstruction').length > 0, { timeout: 20000 });
  check('with the key, the page reconstructs', true);
  check('the error is gone', await page.waitForFunction(() => document.getElementById('error').hidden, { timeout: 5000 }).then(() => true, () => false));
  check('no other console errors', page.errors.length === 0, page.errors.join(' | '));
}

try {
  const args = process.argv.slice(2);
  if (args[0] === '--key') await withKey(args[1], args[2]);
  else await atWork(args[0], args[1], args[2], args[3]);
} catch (e) {
  check('the run', false, e.stack);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
