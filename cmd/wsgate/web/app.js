// wsgate demo: the seed's Open / Close / Send console on wsgate's browser client, with the
// connection state, the reconnect countdown and the round-trip time of each "<msg> done" reply.
// Whatever comes from the network or the input box is shown with textContent only, never parsed
// as HTML.
//
// The round trip shown is the socket's: from the moment a message is handed to the socket to the
// message event of its reply, read before any DOM work. A browser renders what a click or a key
// changed before it runs the next task, so a reply that arrives meanwhile waits for that frame:
// sent from the click's own handler, a local echo that a plain WebSocket in the same page times at
// ~1 ms read 5–15 ms in headless Chromium, a frame rather than the reply. The page therefore sends
// what was submitted once the next frame is rendered (up to two frames, ~33 ms, after the click),
// writes the SENT line before the send, and scrolls the log only in animation frames.
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
let scrollQueued = false;
/**
 * What was submitted and not yet handed to the client, oldest first: it goes out once the next
 * frame is rendered (see the top of this file).
 * @type {{text: string, binary: boolean}[]}
 */
let submitted = [];
/** @type {ReturnType<typeof setInterval> | undefined} */
let countdown;

/**
 * Appends a log line: time, kind, text.
 * @param {string} kind
 * @param {string} [text]
 * @returns {HTMLElement} the line
 */
function print(kind, text) {
  const line = document.createElement('div');
  label(line, kind, text);
  logBox.appendChild(line);
  if (!scrollQueued) {
    // Scrolling reads the log's height, which forces a layout: once per frame, not per line, and
    // never between a send and its reply.
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      logBox.scrollTop = logBox.scrollHeight;
    });
  }
  return line;
}

/**
 * Sets what a log line says, and its time.
 * @param {HTMLElement} line
 * @param {string} kind
 * @param {string} [text]
 */
function label(line, kind, text) {
  line.className = 'entry ' + kind.toLowerCase();
  line.textContent = new Date().toLocaleTimeString() + ' ' + kind + (text === undefined ? '' : ' ' + text);
}

function showOutbox() {
  const { messages, bytes } = client.outbox;
  const text = messages === 0 ? 'empty' : `${messages} message${messages === 1 ? '' : 's'}, ${bytes} bytes`;
  if (outboxOut.textContent !== text) { // an unchanged page has nothing to render
    outboxOut.textContent = text;
  }
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

/**
 * Calls fn in a task after the browser has rendered the next frame (the second animation frame
 * from now has begun, so the first one is done), so that fn starts with nothing left to render.
 * A page that renders nothing (a hidden tab runs no animation frames) gets fn after 100 ms.
 * @param {() => void} fn
 */
function afterNextFrame(fn) {
  let done = false;
  const once = () => {
    if (!done) {
      done = true;
      fn();
    }
  };
  requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(once, 0)));
  setTimeout(once, 100);
}

/**
 * Hands what was submitted to the client, in order. A message that goes out on an open connection
 * is timed from just before its send, and its log line is written before that, so that nothing is
 * left to render while its reply is on the way.
 */
function sendSubmitted() {
  const batch = submitted;
  submitted = [];
  for (const { text, binary: asBinary } of batch) {
    const what = (asBinary ? '[binary] ' : '[text] ') + text;
    const data = asBinary ? encoder.encode(text) : text;
    const line = client.state === 'open' ? print('SENT', what) : null;
    let how;
    const start = performance.now();
    try {
      how = client.send(data);
    } catch (err) {
      // Not connected, or the outbox is full (OutboxFullError): nothing is lost silently.
      const why = err instanceof ClosedError ? 'not sent: not connected, click Open first' : 'not sent: ' + String(err);
      if (line) {
        label(line, 'ERROR', why);
      } else {
        print('ERROR', why);
      }
      continue;
    }
    if (pending.length >= maxPending) {
      pending.shift();
    }
    pending.push({ expect: text + ' done', binary: asBinary, sentAt: how === 'sent' ? start : null });
    if (how !== 'sent') { // not open, or the socket was already closing: it waits in the outbox
      if (line) {
        label(line, 'QUEUED', what);
      } else {
        print('QUEUED', what);
      }
    }
  }
  showOutbox();
}

// Send is the form's submit button, so Enter in the message box sends too.
$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  submitted.push({ text: input.value, binary: binary.checked });
  if (submitted.length === 1) {
    afterNextFrame(sendSubmitted);
  }
});
