// The admin page (/admin) in headless Chromium against a real wsgate: log in, watch the numbers
// move while clients connect and publish, look at a channel's presence and history, publish to
// it, find a user and disconnect them (their client sees 4003), log out. A screenshot is kept in
// test-artifacts/admin.png. Also: the vendored uPlot is byte for byte the npm package's.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startWsgate, wsgateBinary, waitUntil } from './server.js';
import { newClient, closeAll } from './pubsub-clients.js';
import { launchChromium, openPage, artifacts } from './chromium.js';
import { parseMetrics } from '../../cmd/wsgate/web/admin/admin.js';

const here = dirname(fileURLToPath(import.meta.url));
const timeout = 10_000;

/** @type {Awaited<ReturnType<typeof launchChromium>>} */
let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await closeAll();
});

const dir = mkdtempSync(join(tmpdir(), 'wsgate-admin-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const adminSecret = 'admin-secret-for-the-browser-test';
const adminSecretFile = join(dir, 'admin');
writeFileSync(adminSecretFile, adminSecret + '\n');
const jwtSecretFile = join(dir, 'jwt');
writeFileSync(jwtSecretFile, 'a-test-secret-of-at-least-32-bytes!!');

/** A connection token for user, minted by "wsgate token". */
function mint(/** @type {string} */ user) {
  return execFileSync(wsgateBinary(), ['token', '-jwt-hmac-secret-file', jwtSecretFile, '-user', user], { encoding: 'utf8' }).trim();
}

test('the vendored uPlot is the npm package it names, byte for byte', () => {
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  const installed = JSON.parse(readFileSync(join(here, 'node_modules', 'uplot', 'package.json'), 'utf8'));
  assert.equal(pkg.devDependencies.uplot, installed.version);
  const vendored = join(here, '..', '..', 'cmd', 'wsgate', 'web', 'admin', 'uplot');
  for (const [file, from] of [['uPlot.iife.min.js', 'dist'], ['uPlot.min.css', 'dist'], ['LICENSE', '.']]) {
    assert.ok(readFileSync(join(vendored, file)).equals(readFileSync(join(here, 'node_modules', 'uplot', from, file))),
      `cmd/wsgate/web/admin/uplot/${file} differs from uplot ${installed.version}'s: copy it again`);
  }
});

test('parseMetrics sums a metric over its labels and skips comments', () => {
  const m = parseMetrics([
    '# HELP wsgate_messages_received_total Messages.',
    '# TYPE wsgate_messages_received_total counter',
    'wsgate_messages_received_total{type="text"} 10',
    'wsgate_messages_received_total{type="binary"} 2.5',
    'wsgate_hub_publications_total 7',
    'go_goroutines 12',
    'bad line',
  ].join('\n'));
  assert.equal(m.get('wsgate_messages_received_total'), 12.5);
  assert.equal(m.get('wsgate_hub_publications_total'), 7);
  assert.equal(m.has('bad'), false);
});

/** The text of the element with id. */
async function text(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ id) {
  return (await page.locator(`#${id}`).textContent()) ?? '';
}

/** Waits until the element with id shows text matching re. */
async function waitText(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ id, /** @type {RegExp} */ re) {
  try {
    await page.waitForFunction(([i, src]) => new RegExp(src).test(document.getElementById(i)?.textContent ?? ''), [id, re.source], { timeout, polling: 50 });
  } catch (err) {
    throw new Error(`#${id} never matched ${re}: it reads ${JSON.stringify(await text(page, id))}`, { cause: err });
  }
}

/** The rows of a table's body, as arrays of cell texts. */
function rows(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ id) {
  return page.locator(`#${id} tbody tr`).evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
}

test('admin page: login, live numbers under load, presence, history, publish, find and disconnect a user, logout', async (t) => {
  rmSync(screenshotPath(), { force: true }); // the check below is of this run's
  const srv = await startWsgate(['-admin-secret-file', adminSecretFile, '-jwt-hmac-secret-file', jwtSecretFile]);
  const page = await openPage(browser.context, t, `${srv.pageURL}admin/`);
  /** @type {string[]} */
  const cspViolations = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) {
      cspViolations.push(msg.text());
    }
  });

  // Log in: a wrong secret is refused on the page, the right one shows the views.
  await page.locator('#login').waitFor({ state: 'visible', timeout });
  await page.fill('#secret', 'not-the-admin-secret-at-all');
  await page.click('#login-button');
  await waitText(page, 'login-error', /wrong secret/);
  assert.equal(await page.locator('#app').isVisible(), false);
  await page.fill('#secret', adminSecret);
  await page.click('#login-button');
  await page.locator('#app').waitFor({ state: 'visible', timeout });
  await waitText(page, 'connections', /^0$/);
  await waitText(page, 'node-version', /.+/);
  const cookies = await browser.context.cookies(srv.pageURL + 'admin/');
  const session = cookies.find((c) => c.name === 'wsgate_admin');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is visible to scripts');

  // A load: five users in "room", one of them mallory, and a publisher for a bounded time.
  const users = ['alice', 'bob', 'carol', 'dave', 'mallory'];
  const clients = users.map((u) => newClient(srv.url, { token: mint(u) }));
  /** @type {any[]} */
  const closes = [];
  clients[4].on('close', (ev) => closes.push(ev));
  /** @type {any[]} */
  const received = [];
  clients.forEach((c) => c.connect());
  await Promise.all(clients.map((c, i) => c.subscribe('room', i === 0 ? { onPublication: (p) => received.push(p.data) } : {}).ready));
  await waitText(page, 'connections', /^5$/);
  await waitText(page, 'subscriptions', /^5$/);
  await waitText(page, 'channel-count', /^1$/);
  assert.deepEqual(await rows(page, 'channels'), [['room', '5']]);

  const publisher = clients[1];
  let published = 0;
  const until = Date.now() + 4000;
  const load = (async () => {
    while (Date.now() < until) {
      await publisher.publish('room', { n: ++published });
      await sleep(20);
    }
  })();
  // The message rates move while the load runs: about 40 publications/s in, five times that out.
  await waitText(page, 'rate-in', /^([1-9]\d|\d{3,})/);
  await waitText(page, 'rate-out', /^([1-9]\d{2}|\d{4,}|[5-9]\d)/);
  // The history's latest offset moves too.
  await page.fill('#channel', 'room');
  await page.click('#show-history');
  await waitText(page, 'history-epoch', /epoch/);
  const firstTop = Number((await rows(page, 'history')).at(-1)?.[0] ?? 0);
  await sleep(500);
  await page.click('#show-history');
  await page.waitForFunction((top) => Number([...document.querySelectorAll('#history tbody tr')].at(-1)?.firstElementChild?.textContent ?? 0) > top,
    firstTop, { timeout, polling: 50 });
  await load;
  assert.ok(published > 20, `only ${published} publications in 4 s`);

  // The charts hold points, and the filter narrows the channels.
  assert.ok(await page.locator('#chart-conns canvas').count() > 0, 'no chart drawn');
  await page.fill('#channel-filter', 'zz');
  await page.waitForFunction(() => document.querySelectorAll('#channels tbody tr').length === 0, null, { timeout });
  await page.fill('#channel-filter', 'ro');
  await page.waitForFunction(() => document.querySelectorAll('#channels tbody tr').length === 1, null, { timeout });

  // Presence: a click on the channel lists its five connections with their users.
  await page.click('#channels tbody tr');
  await page.waitForFunction(() => document.querySelectorAll('#presence tbody tr').length === 5, null, { timeout });
  assert.deepEqual((await rows(page, 'presence')).map((r) => r[1]).sort(), users);
  await waitText(page, 'presence-total', /^5 connection/);

  // Publish from the page: the subscribers get it.
  await page.fill('#publish-data', '{"text":"hello from admin"}');
  await page.click('#publish');
  await waitText(page, 'publish-result', /^published at offset \d+/);
  await waitUntil(() => received.some((d) => d?.text === 'hello from admin'), 'the admin publication at alice', timeout);

  // Find mallory, disconnect her: her client sees 4003 and does not come back.
  await page.fill('#user', 'mallory');
  await page.click('#find');
  await waitText(page, 'user-note', /^mallory: 1 connection\(s\) subscribed to 1 channel/);
  assert.deepEqual((await rows(page, 'user-conns')).map((r) => r[1]), ['room']);
  await page.screenshot({ path: screenshotPath(), fullPage: true });
  await page.click('#disconnect');
  await waitText(page, 'disconnect-result', /^closed 1 connection\(s\)$/);
  await waitUntil(() => closes.length === 1, 'mallory\'s close', timeout);
  assert.equal(closes[0].code, 4003);
  assert.equal(closes[0].willReconnect, false);
  await waitText(page, 'connections', /^4$/);

  // Log out: the views are gone, and the API through /admin refuses the old session.
  await page.click('#logout');
  await page.locator('#login').waitFor({ state: 'visible', timeout });
  const status = await page.evaluate(async () => (await fetch('api/info', { method: 'POST', body: '{}' })).status);
  assert.equal(status, 401);
  assert.deepEqual(cspViolations, []);

  const png = readFileSync(screenshotPath());
  assert.ok(png.length > 1000 && png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'test-artifacts/admin.png is not a PNG');
});

function screenshotPath() {
  mkdirSync(artifacts, { recursive: true });
  return join(artifacts, 'admin.png');
}
