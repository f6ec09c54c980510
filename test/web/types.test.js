// The hand-written wsgate.d.ts and wsgate-pubsub.d.ts, the JSDoc types of both modules and the
// pages that use them must agree: the TypeScript compiler checks them in strict mode (see
// types/tsconfig.json).

import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

test('the client modules, their .d.ts, app.js, chat.js and admin.js type-check', () => {
  const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(here, 'types', 'tsconfig.json')], { encoding: 'utf8', timeout: 60_000 });
  } catch (err) {
    throw new Error(`tsc found type errors:\n${/** @type {any} */ (err).stdout}`);
  }
});
