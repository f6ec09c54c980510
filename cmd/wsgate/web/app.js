// wsgate demo: the seed's Open / Close / Send console on wsgate's browser client, with the
// connection state, the reconnect countdown and the round-trip time of each "<msg> done" reply.
// Whatever comes from the network or the input box is shown with textContent only, never parsed
// as HTML.
import { WsgateClient, CloseCode, ClosedError, shouldReconnect } from './js/wsgate.js';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const logBox = $('log');
const input = /** @type {HTMLInputElement} */ ($('input'));
const binary = /** @type {HTMLInputElement} */ ($('binary'));
const stateOut = $('state');
const countdownOut = $('countdown');
const rttOut = $('rtt');
const outboxOut = $('outbox');
const decoder = new TextDecoder('utf-8'); // not fatal: invalid bytes show as U+FFFD
const encoder = new TextEncoder();

// '/ws' resolves against the page: same host, wss:// when the page came over https://.
const client = new WsgateClient('/ws');
$('url').textContent = client.url;

/** @type {Map<number, string>} close code → "policy violation" */
const codeNames = new Map(Object.entries(CloseCode).map(([name, code]) => [code, name.toLowerCase().replaceAll('_', ' ')]));

/**
 * "1008 (policy violation)" for a code the client knows, the bare number otherwise.
 * @param {number} code
 */
function describeCode(code) {
  const name = codeNames.get(code);
  return name ? `${code} (${name})` : String(code);
}

/**
 * Messages sent and not answered yet, oldest first; sentAt is null while a message waits in the
 * outbox. The server answers in order, so a reply belongs to the oldest entry it matches.
 * @type {{expect: string, binary: boolean, sentAt: number | null}[]}
 */
let pending = [];
const maxPending = 1000;
let closeClicked = false;
/** @type {ReturnType<typeof setInterval> | undefined} */
let countdown;

/**
 * Appends a log line: time, kind, text.
 * @param {string} kind
 * @param {string} [text]
 */
function print(kind, text) {
  const line = document.createElement('div');
  line.className = 'entry ' + kind.toLowerCase();
  line.textContent = new Date().toLocaleTimeString() + ' ' + kind + (text === undefined ? '' : ' ' + text);
  logBox.appendChild(line);
  logBox.scrollTop = logBox.scrollHeight;
}

function showOutbox() {
  const { messages, bytes } = client.outbox;
  outboxOut.textContent = messages === 0 ? 'empty' : `${messages} message${messages === 1 ? '' : 's'}, ${bytes} bytes`;
}

function stopCountdown() {
  clearInterval(countdown);
  countdown = undefined;
  countdownOut.textContent = '–';
}

client.addEventListener('state', (ev) => {
  stateOut.textContent = ev.state;
  stateOut.dataset.state = ev.state;
  if (ev.state !== 'reconnecting') {
    stopCountdown();
  }
  showOutbox();
});

client.addEventListener('open', (ev) => {
  const now = performance.now();
  for (const p of pending) {
    p.sentAt ??= now; // the outbox was flushed just before this event
  }
  const flushed = ev.flushed ? `; ${ev.flushed} queued message${ev.flushed === 1 ? '' : 's'} sent` : '';
  print('OPEN', client.url + (ev.reconnected ? ' (reconnected)' : '') + flushed);
});

client.addEventListener('message', (ev) => {
  const text = ev.binary ? decoder.decode(/** @type {ArrayBuffer} */ (ev.data)) : /** @type {string} */ (ev.data);
  let rtt = '';
  const i = pending.findIndex((p) => p.sentAt !== null && p.binary === ev.binary && p.expect === text);
  if (i >= 0) {
    const ms = performance.now() - /** @type {number} */ (pending[i].sentAt);
    pending.splice(0, i + 1);
    rttOut.textContent = ms.toFixed(1) + ' ms';
    rtt = ` (round trip ${ms.toFixed(1)} ms)`;
  }
  if (ev.binary) {
    print('RECEIVED', `[binary] ${text} (${/** @type {ArrayBuffer} */ (ev.data).byteLength} bytes)${rtt}`);
  } else {
    print('RECEIVED', `[text] ${text}${rtt}`);
  }
});

client.addEventListener('error', (ev) => {
  if (client.state === 'reconnecting') {
    return; // a failed reconnect attempt: its CLOSE and RECONNECT lines tell the story
  }
  // Browsers give error events no details on purpose; the close event that follows has the code.
  print('ERROR', ev.message || (client.state === 'open' || client.state === 'closing'
    ? 'the connection failed (see the close code below)'
    : 'could not connect to ' + client.url + ': the server is down, unreachable, or refused the handshake (for instance an origin it does not allow)'));
});

client.addEventListener('close', (ev) => {
  let next;
  if (ev.willReconnect) {
    next = 'reconnecting';
  } else if (closeClicked) {
    next = 'closed';
  } else if (shouldReconnect(ev.code)) {
    next = 'closed: gave up reconnecting';
  } else {
    next = `closed: ${ev.code} is terminal, not reconnecting`;
  }
  print('CLOSE', `code ${describeCode(ev.code)}, reason ${JSON.stringify(ev.reason)}, ${ev.wasClean ? 'clean' : 'not clean'}; ${next}`);
  // Replies to what was on the wire will not come; what waits in the outbox is sent after a reconnect.
  pending = ev.willReconnect ? pending.filter((p) => p.sentAt === null) : [];
  if (ev.unsent.length > 0) {
    print('ERROR', `${ev.unsent.length} queued message${ev.unsent.length === 1 ? ' was' : 's were'} never sent`);
  }
  showOutbox();
});

client.addEventListener('reconnecting', (ev) => {
  print('RECONNECT', `attempt ${ev.attempt} in ${(ev.delay / 1000).toFixed(1)} s`);
  const deadline = performance.now() + ev.delay;
  const tick = () => {
    const left = deadline - performance.now();
    if (left > 0) {
      countdownOut.textContent = `attempt ${ev.attempt} in ${(left / 1000).toFixed(1)} s`;
      return;
    }
    clearInterval(countdown);
    countdownOut.textContent = `attempt ${ev.attempt}: connecting…`;
  };
  clearInterval(countdown);
  countdown = setInterval(tick, 100);
  tick();
});

$('open').addEventListener('click', () => {
  if (client.state !== 'closed') {
    print('ERROR', `the connection is ${client.state}; close it first`);
    return;
  }
  closeClicked = false;
  client.connect();
});

$('close').addEventListener('click', () => {
  if (client.state === 'closed' || client.state === 'closing') {
    print('ERROR', client.state === 'closed' ? 'not connected' : 'already closing');
    return;
  }
  closeClicked = true;
  client.close(CloseCode.NORMAL, 'bye');
});

// Send is the form's submit button, so Enter in the message box sends too.
$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = input.value;
  const asBinary = binary.checked;
  let how;
  try {
    how = client.send(asBinary ? encoder.encode(text) : text);
  } catch (err) {
    // Not connected, or the outbox is full (OutboxFullError): nothing is lost silently.
    print('ERROR', err instanceof ClosedError ? 'not sent: not connected, click Open first' : 'not sent: ' + String(err));
    return;
  }
  if (pending.length >= maxPending) {
    pending.shift();
  }
  pending.push({ expect: text + ' done', binary: asBinary, sentAt: how === 'sent' ? performance.now() : null });
  print(how === 'sent' ? 'SENT' : 'QUEUED', (asBinary ? '[binary] ' : '[text] ') + text);
  showOutbox();
});
