// Headless Chromium for the browser tests: Debian's chromium driven by playwright-core, in a
// throwaway profile. No browser is ever downloaded; without chromium these tests fail.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

/** Where tests save screenshots: test-artifacts/ at the repository root. */
export const artifacts = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-artifacts');

/**
 * Launches chromium; close() ends it and every process it left behind, by PID.
 * @returns {Promise<{context: import('playwright-core').BrowserContext, close: () => Promise<void>}>}
 */
export async function launchChromium() {
  assert.ok(existsSync(executablePath), `${executablePath} is missing: scripts/test-web installs it (apt-get install chromium)`);
  const profile = mkdtempSync(join(tmpdir(), 'wsgate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1000, height: 720 },
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await Promise.race([context.close(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
      killProfileProcesses(profile); // whatever close() left behind, found by its unique profile folder
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * SIGKILLs, by PID, every process whose command line names dir (chromium and its helpers).
 * @param {string} dir
 */
function killProfileProcesses(dir) {
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) {
        process.kill(Number(pid), 'SIGKILL');
      }
    } catch {
      // the process ended meanwhile
    }
  }
}

/**
 * A fresh page on url whose uncaught errors fail the test; closed at the end of the test.
 * @param {import('playwright-core').BrowserContext} context
 * @param {import('node:test').TestContext} t
 * @param {string} url
 */
export async function openPage(context, t, url) {
  const page = await context.newPage();
  /** @type {string[]} */
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors, [], 'uncaught errors in the page');
  });
  await page.goto(url);
  return page;
}
