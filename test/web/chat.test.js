// The chat page (/chat.html, on the pub/sub client) in headless Chromium: two pages in one
// channel. One page reaches the server through a TCP proxy, so that its network can really be cut
// while the other page goes on publishing. (Chromium's offline emulation would not do: it leaves
// an open WebSocket open, only silent, and it applies to every page of the context.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startWsgate, stopAll } from './server.js';
import { startProxy, closeProxies } from './proxy.js';
import { launchChromium, openPage, artifacts } from './chromium.js';

const timeout = 15_000; // a reconnect after a cut of a few seconds waits up to 4 s of backoff

/** @type {Awaited<ReturnType<typeof launchChromium>>} */
let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await closeProxies();
  await stopAll();
});

/**
 * The chat page of base in channel as nick, once it has joined.
 * @param {import('node:test').TestContext} t
 * @param {string} base a page URL ending in /
 * @param {string} channel
 * @param {string} nick
 */
async function openChat(t, base, channel, nick) {
  const page = await openPage(browser.context, t, `${base}chat.html?channel=${channel}&nick=${nick}`);
  await waitFor(page, `you joined #${channel} as ${nick}`);
  await waitForState(page, 'open');
  return page;
}

/**
 * Lines of the message log, as shown: "alice: hi" for messages, the text of system notes.
 * @param {import('playwright-core').Page} page
 * @param {string} [selector] which lines
 */
function lines(page, selector = '#messages .msg, #messages .note') {
  return page.locator(selector).evaluateAll((els) => els.map((el) => [...el.querySelectorAll('span')].map((s) => s.textContent).join(' ')));
}

/**
 * Waits until the message log shows text.
 * @param {import('playwright-core').Page} page
 * @param {string} text
 */
async function waitFor(page, text) {
  try {
    await page.waitForFunction((t) => document.getElementById('messages')?.textContent?.includes(t), text, { timeout, polling: 50 });
  } catch (err) {
    throw new Error(`the chat never showed ${JSON.stringify(text)}; it reads:\n${(await lines(page)).join('\n')}`, { cause: err });
  }
}

/**
 * Waits until the connection state shown is state.
 * @param {import('playwright-core').Page} page
 * @param {string} state
 */
async function waitForState(page, state) {
  await page.waitForFunction((s) => document.getElementById('state')?.textContent === s, state, { timeout, polling: 50 });
}

/**
 * Waits until the page counts n people in the channel.
 * @param {import('playwright-core').Page} page
 * @param {number} n
 */
async function waitForCount(page, n) {
  await page.waitForFunction((want) => document.getElementById('count')?.textContent === want, String(n), { timeout, polling: 50 });
}

/**
 * Sends text from page, as a user would: type it, press Enter.
 * @param {import('playwright-core').Page} page
 * @param {string} text
 */
async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/**
 * Saves both pages side by side as test-artifacts/name.
 * @param {import('playwright-core').Page[]} pages
 * @param {string} name
 */
async function screenshotSideBySide(pages, name) {
  mkdirSync(artifacts, { recursive: true });
  const shots = await Promise.all(pages.map((p) => p.screenshot()));
  const sheet = await browser.context.newPage();
  try {
    await sheet.setViewportSize({ width: 2010, height: 720 });
    await sheet.setContent(`<body style="margin:0;display:flex;gap:10px;background:#333">${
      shots.map((png) => `<img src="data:image/png;base64,${png.toString('base64')}" width="1000">`).join('')}</body>`);
    await sheet.screenshot({ path: join(artifacts, name) });
  } finally {
    await sheet.close();
  }
}

test('two pages in one channel: a message from one shows in the other; the other, cut off, recovers every missed message once, in order', async (t) => {
  const srv = await startWsgate();
  const proxy = await startProxy(srv.port);
  const alice = await openChat(t, srv.pageURL, 'room-1', 'alice');
  const bob = await openChat(t, proxy.pageURL, 'room-1', 'bob');
  await alice.waitForFunction(() => [...document.querySelectorAll('#messages .note.join span')]
    .some((s) => /^connection \d+ joined$/.test(s.textContent ?? '')), null, { timeout, polling: 50 }); // bob
  await waitForCount(alice, 2);
  await waitForCount(bob, 2);

  await say(alice, 'hello bob');
  await waitFor(bob, 'alice: hello bob');
  await say(bob, 'hi alice <b>not bold</b>');
  await waitFor(alice, 'bob: hi alice <b>not bold</b>');
  assert.equal(await alice.locator('#messages b').count(), 0, 'markup became an element');

  // Bob's network goes down: his WebSocket is reset and his reconnect attempts are refused.
  proxy.cut();
  await waitForState(bob, 'reconnecting');
  await waitFor(bob, 'connection lost (code 1006): reconnecting');
  await waitForCount(alice, 1); // the server saw bob's connection go
  const missed = ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5'];
  for (const text of missed) {
    await say(alice, text);
    await waitFor(alice, `alice: ${text}`);
  }
  assert.equal(await bob.textContent('#state'), 'reconnecting');
  assert.ok(!(await lines(bob)).some((l) => l.includes('missed')), 'bob got a message while cut off');
  await screenshotSideBySide([alice, bob], 'chat-offline.png');

  proxy.restore();
  await waitFor(bob, 'reconnected: 5 missed messages recovered');
  await waitForState(bob, 'open');
  await say(alice, 'welcome back');
  await waitFor(bob, 'alice: welcome back');
  await waitFor(alice, 'alice: welcome back'); // her own publication comes back through her subscription

  const want = ['alice: hello bob', 'bob: hi alice <b>not bold</b>', ...missed.map((m) => `alice: ${m}`), 'alice: welcome back'];
  assert.deepEqual(await lines(bob, '#messages .msg'), want, 'bob sees every message once, in order');
  assert.deepEqual(await lines(alice, '#messages .msg'), want);
  assert.deepEqual(await lines(bob, '#messages .msg.recovered'), missed.map((m) => `alice: ${m}`), 'the recovered ones are marked');
  assert.deepEqual(await bob.locator('#messages .msg').evaluateAll((els) => els.map((el) => Number(/** @type {HTMLElement} */ (el).dataset.offset))),
    [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.match(await bob.textContent('#recovery') ?? '', /: 5 recovered$/);
  await waitForCount(bob, 2);
  await screenshotSideBySide([alice, bob], 'chat-pages.png');
});

test('after a server restart the history is gone: the page says the missed messages could not be recovered', async (t) => {
  const srv = await startWsgate();
  const page = await openChat(t, srv.pageURL, 'room-2', 'carol');
  await say(page, 'before the restart');
  await waitFor(page, 'carol: before the restart');

  await srv.stop('SIGTERM');
  await waitForState(page, 'reconnecting');
  await startWsgate([], { port: srv.port });
  await waitFor(page, 'reconnected: messages sent while you were away could not be recovered');
  assert.match(await page.textContent('#recovery') ?? '', /: recovery impossible$/);
  await say(page, 'after the restart');
  await waitFor(page, 'carol: after the restart');
  assert.deepEqual(await lines(page, '#messages .msg'), ['carol: before the restart', 'carol: after the restart']);

  // A newcomer gets the channel's history, then the live messages.
  const dave = await openChat(t, srv.pageURL, 'room-2', 'dave');
  assert.deepEqual(await lines(dave, '#messages .msg.history'), ['carol: after the restart']);
  await say(page, 'hi dave');
  await waitFor(dave, 'carol: hi dave');
  await screenshotSideBySide([page, dave], 'chat-restart.png');
});

test('a channel name the server refuses is reported with its error code', async (t) => {
  const srv = await startWsgate();
  const page = await openChat(t, srv.pageURL, 'room-3', 'erin');
  await page.fill('#channel', 'no spaces');
  await page.click('#join-button');
  await waitFor(page, 'cannot join #no spaces: error 102: channel "no spaces"');
});

test('-demo: alice and bob join under their names, see each other\'s names in presence, and the page says anyone can pick any name', async (t) => {
  const srv = await startWsgate(['-demo']);
  const alice = await openChat(t, srv.pageURL, 'room-4', 'alice');
  const bob = await openChat(t, srv.pageURL, 'room-4', 'bob');
  const names = (/** @type {import('playwright-core').Page} */ page) =>
    page.locator('#people li').evaluateAll((els) => els.map((el) => /** @type {HTMLElement} */ (el).dataset.name).sort());
  for (const page of [alice, bob]) {
    await waitForCount(page, 2);
    assert.deepEqual(await names(page), ['alice', 'bob']);
    assert.ok(await page.locator('#demo-note').isVisible(), 'no demo note');
    assert.match(await page.textContent('#demo-note') ?? '', /anyone can pick any name/i);
  }
  await waitFor(alice, 'bob joined');
  assert.match(await alice.textContent('#me') ?? '', /you are alice/);
  await say(bob, 'hi, I am bob');
  await waitFor(alice, 'bob: hi, I am bob');

  // Alice becomes carol: a token for the new name, a new connection, and bob sees the change.
  await alice.fill('#nick', 'carol');
  await alice.click('#join-button');
  await bob.waitForFunction(() => [...document.querySelectorAll('#people li')].some((li) => /** @type {HTMLElement} */ (li).dataset.name === 'carol'),
    null, { timeout, polling: 50 });
  await waitForCount(bob, 2);
  assert.deepEqual(await names(bob), ['bob', 'carol']);
  await say(alice, 'now carol');
  await waitFor(bob, 'carol: now carol');
  await screenshotSideBySide([alice, bob], 'chat-demo.png');
});

test('without -demo the page connects anonymously and shows no demo note', async (t) => {
  const srv = await startWsgate();
  const page = await openChat(t, srv.pageURL, 'room-5', 'dave');
  assert.equal(await page.locator('#demo-note').isVisible(), false);
  await waitForCount(page, 1);
  assert.match(await page.textContent('#people') ?? '', /^connection \d+$/);
});
