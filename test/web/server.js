// Test helpers: a real wsgate process on a loopback port, and bounded waits.
//
// WSGATE_BIN names the binary (scripts/test-web builds it once); without it the binary is built here
// into a temporary folder. Every process started is stopped by PID in stopAll, which each test file
// registers with after().

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let builtBinary = '';

/** The wsgate binary the tests run: WSGATE_BIN, or one built here once. */
export function wsgateBinary() {
  if (process.env.WSGATE_BIN) {
    return process.env.WSGATE_BIN;
  }
  if (!builtBinary) {
    const dir = mkdtempSync(join(tmpdir(), 'wsgate-bin-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    builtBinary = join(dir, 'wsgate');
    execFileSync('go', ['build', '-o', builtBinary, './cmd/wsgate'], { cwd: repoRoot, stdio: 'inherit' });
  }
  return builtBinary;
}

/** @type {Set<Wsgate>} */
const running = new Set();
// Last resort if a test file ends without its after() hooks: no wsgate outlives the test process.
process.on('exit', () => running.forEach((s) => s.proc.kill('SIGKILL')));

/** A wsgate process listening on 127.0.0.1:port. */
export class Wsgate {
  /**
   * @param {import('node:child_process').ChildProcess} proc
   * @param {number} port
   * @param {() => string} logs
   */
  constructor(proc, port, logs) {
    this.proc = proc;
    this.port = port;
    this.logs = logs;
    this.url = `ws://127.0.0.1:${port}/ws`;
    this.pageURL = `http://127.0.0.1:${port}/`;
    /** @type {Promise<number | null>} resolves with the exit code when the process ends */
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  /**
   * Stops the process: SIGTERM (graceful: clients get 1001) or SIGKILL (clients see the TCP
   * connection drop: 1006). Waits for the exit, with SIGKILL after 10 s.
   * @param {'SIGTERM' | 'SIGKILL'} [signal]
   */
  async stop(signal = 'SIGTERM') {
    running.delete(this);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill(signal);
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/**
 * Starts wsgate with extra flags on port (0: any free port) and resolves once it listens. A port
 * just freed by a stopped server is retried for up to 5 s.
 * @param {string[]} [args]
 * @param {{port?: number, timeout?: number}} [opts] timeout: ms to wait for it to listen
 * @returns {Promise<Wsgate>}
 */
export async function startWsgate(args = [], { port = 0, timeout = 10_000 } = {}) {
  for (let tries = 0; ; tries++) {
    try {
      return await startOnce(args, port, timeout);
    } catch (err) {
      if (tries >= 50 || !String(err).includes('address already in use')) {
        throw err;
      }
      await sleep(100);
    }
  }
}

/**
 * Starts n wsgate nodes that embed a NATS server and form one cluster on loopback route ports
 * (-cluster-listen, -cluster-peers), named n1, n2, … (-node), each with its own -data-dir in a
 * temporary folder removed at exit; args go to every node. Resolves once all of them listen: a
 * node listens only when the cluster has formed.
 * @param {number} n
 * @param {string[]} [args]
 * @returns {Promise<Wsgate[]>}
 */
export async function startCluster(n, args = []) {
  const routes = await freeAddrs(n);
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-cluster-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return Promise.all(routes.map((route, i) => startWsgate([
    '-cluster-listen', route, '-cluster-peers', routes.filter((r) => r !== route).join(','),
    '-cluster-name', 'test', '-data-dir', join(dir, `n${i + 1}`), '-node', `n${i + 1}`, ...args,
  ], { timeout: 60_000 })));
}

/**
 * n distinct loopback host:port addresses free a moment ago.
 * @param {number} n
 * @returns {Promise<string[]>}
 */
export async function freeAddrs(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise(/** @param {(s: import('node:net').Server) => void} resolve */ (resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  })));
  const addrs = servers.map((srv) => `127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (srv.address()).port}`);
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  return addrs;
}

/**
 * @param {string[]} args
 * @param {number} port
 * @param {number} timeout
 * @returns {Promise<Wsgate>}
 */
function startOnce(args, port, timeout) {
  const proc = spawn(wsgateBinary(), ['-addr', `127.0.0.1:${port}`, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let logs = '';
  let listening = false;
  return new Promise((resolve, reject) => {
    const fail = (/** @type {string} */ why) => {
      clearTimeout(timer);
      if (listening) {
        return;
      }
      proc.kill('SIGKILL');
      reject(new Error(`wsgate ${args.join(' ')}: ${why}\n${logs}`));
    };
    const timer = setTimeout(() => fail(`no "listening" log within ${timeout} ms`), timeout);
    proc.once('error', (err) => fail(err.message));
    proc.once('exit', (code) => fail(`exited with ${code}`));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      logs += chunk;
      const m = /msg=listening addr=127\.0\.0\.1:(\d+)/.exec(logs);
      if (m && !listening) {
        listening = true;
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        const server = new Wsgate(proc, Number(m[1]), () => logs);
        running.add(server);
        resolve(server);
      }
    });
  });
}

/** Stops every wsgate still running; register with after(stopAll) in each test file. */
export async function stopAll() {
  await Promise.all([...running].map((s) => s.stop('SIGKILL')));
}

/**
 * Resolves with the next event of type on target (an EventTarget), or rejects after ms.
 * @template {Event} E
 * @param {EventTarget} target
 * @param {string} type
 * @param {number} [ms]
 * @returns {Promise<E>}
 */
export function nextEvent(target, type, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(type, listener);
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    const listener = (/** @type {Event} */ ev) => {
      clearTimeout(timer);
      target.removeEventListener(type, listener);
      resolve(/** @type {E} */ (ev));
    };
    target.addEventListener(type, listener);
  });
}

/**
 * Polls cond every 20 ms until it is true, or rejects after ms.
 * @param {() => boolean} cond
 * @param {string} what
 * @param {number} [ms]
 */
export async function waitUntil(cond, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(20);
  }
}
