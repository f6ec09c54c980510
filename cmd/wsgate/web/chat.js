// wsgate chat: one channel at a time on the pub/sub client. Joining loads the latest messages with
// history and subscribes from their position, so no message falls between the two; after a
// reconnect the client recovers what was missed, and the page marks it, or says that it could not
// and reloads what the server still has; messages the server dropped for a slow page are fetched
// in their place, or the page says they are lost. Everything from the network or the inputs is
// shown with textContent only, never parsed as HTML.
//
// When the server runs with -demo (INSECURE: POST /demo/token signs a token for any name), the
// page joins as the nickname typed: presence lists the names (info.name of each connection), and
// changing the nickname reconnects under the new one. Without it (/demo/token answers 404) the
// page connects anonymously, and presence lists connections.
import { PubSubClient, PubSubError, RequestError } from './js/wsgate-pubsub.js';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const channelInput = /** @type {HTMLInputElement} */ ($('channel'));
const nickInput = /** @type {HTMLInputElement} */ ($('nick'));
const textInput = /** @type {HTMLInputElement} */ ($('text'));
const messages = $('messages');
const people = $('people');
const stateOut = $('state');
const recoveryOut = $('recovery');
const historyLimit = 50;

/** @typedef {import('./js/wsgate-pubsub.js').Publication | import('./js/wsgate-pubsub.js').StoredPublication} AnyPublication */

// ?channel=…&nick=… prefill the form, so that a link can open a given room.
const params = new URLSearchParams(location.search);
channelInput.value = params.get('channel') || channelInput.value;
nickInput.value = params.get('nick') || 'guest-' + Math.floor(1000 + Math.random() * 9000);

/**
 * A demo token for name from the server: null when the server has no demo (404). Throws with the
 * server's words when it refuses the name.
 * @param {string} name
 * @returns {Promise<string | null>}
 */
async function demoToken(name) {
  const res = await fetch('/demo/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }),
  });
  if (res.status === 404 || res.status === 405) {
    return null;
  }
  if (!res.ok) {
    throw new Error(`the name ${JSON.stringify(name)} was refused: ${(await res.text()).trim()}`);
  }
  const { token } = await res.json();
  if (typeof token !== 'string') {
    throw new Error('/demo/token answered without a token');
  }
  return token;
}

let demo = false; // the server signs demo tokens: the page connects as the nickname
let renaming = false; // closed to come back under a new name
let connectedAs = nickInput.value; // the name of the demo token in use
/** @type {string | null} */
let firstToken = null;
try {
  firstToken = await demoToken(connectedAs);
  demo = firstToken !== null;
} catch (err) {
  demo = true; // the server has a demo, and refused the name
  connectedAs = ''; // no name yet: any Join renames
  queueMicrotask(() => note('error', String(err instanceof Error ? err.message : err)));
}
const demoNote = /** @type {HTMLElement} */ ($('demo-note'));
demoNote.hidden = !demo;

// A name refused at load (firstToken null) connects without a token, anonymous (the demo lets
// tokenless connections in): the page works, and the next Join with a good name renames.
const client = new PubSubClient('/ws', demo ? {
  token: firstToken,
  getToken: async () => {
    const t = await demoToken(nickInput.value.trim());
    connectedAs = nickInput.value.trim();
    return t;
  },
} : {});
if (demo) {
  client.on('connected', (ev) => {
    connectedAs = ev.user || connectedAs;
    $('me').textContent = ev.user ? `you are ${ev.user}` : '';
  });
  client.on('unauthorized', (ev) => note('error', `the server refused the name (${ev.code}: ${ev.reason})`));
  client.on('error', (ev) => {
    if (ev.message) {
      note('error', ev.message);
    }
  });
}

/** @type {import('./js/wsgate-pubsub.js').Subscription | null} */
let sub = null;
/** @type {Map<string, import('./js/wsgate-pubsub.js').ClientInfo>} by connection id */
let here = new Map();
let wanted = ''; // the channel the last join asked for

/**
 * Appends a line to parent (the log by default) and keeps the log scrolled to the end.
 * @param {string} className
 * @param {string[]} parts texts of the line's spans, in order
 * @param {HTMLElement} [parent]
 */
function line(className, parts, parent = messages) {
  const el = document.createElement('div');
  el.className = className;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  el.append(time);
  for (const text of parts) {
    const span = document.createElement('span');
    span.textContent = text;
    el.append(' ', span);
  }
  parent.append(el);
  messages.scrollTop = messages.scrollHeight;
  return el;
}

/**
 * A system line: joins, leaves, reconnects, errors.
 * @param {string} kind
 * @param {string} text
 * @param {HTMLElement} [parent]
 */
function note(kind, text, parent) {
  return line('note ' + kind, [text], parent);
}

/**
 * A chat message. Data from the network is checked, not trusted: anything but {nick, text} is
 * shown as JSON.
 * @param {AnyPublication} pub
 * @param {string} origin 'live', 'recovered' or 'history'
 * @param {HTMLElement} [parent]
 */
function showMessage(pub, origin, parent) {
  const d = /** @type {any} */ (pub.data);
  const ok = d !== null && typeof d === 'object' && typeof d.nick === 'string' && typeof d.text === 'string';
  const el = line('msg ' + origin, ok ? [d.nick + ':', d.text] : ['?', JSON.stringify(pub.data)], parent);
  el.dataset.offset = String(pub.offset);
}

/**
 * What went wrong with a request, in words.
 * @param {unknown} err
 */
function reason(err) {
  if (err instanceof PubSubError) {
    return `error ${err.code}: ${err.message}`;
  }
  if (err instanceof RequestError) {
    return {
      closed: 'the client is closed',
      disconnected: 'the connection was lost before the server answered: it may or may not have gone out',
      timeout: err.sent ? 'no answer from the server in time' : 'still offline: not sent',
      unsubscribed: 'left the channel first',
    }[err.reason];
  }
  return String(err);
}

/**
 * Who a connection is, in words: its name (info.name, the demo token's), else its user, else
 * its number. Info comes from the network: only a string name is taken.
 * @param {import('./js/wsgate-pubsub.js').ClientInfo} c
 */
function who(c) {
  const info = /** @type {any} */ (c.info);
  if (info && typeof info === 'object' && typeof info.name === 'string' && info.name) {
    return info.name;
  }
  return c.user || `connection ${c.conn}`;
}

function showPeople() {
  people.replaceChildren(...[...here.values()].map((c) => {
    const li = document.createElement('li');
    const name = who(c);
    li.textContent = name.startsWith('connection ') ? name : `${name} (connection ${c.conn})`;
    li.dataset.name = name;
    return li;
  }));
  $('count').textContent = String(here.size);
}

/** @type {Set<[string, import('./js/wsgate-pubsub.js').ClientInfo | null][]>} per presence request in flight, the changes heard meanwhile */
const heard = new Set();

/**
 * A join (client) or a leave (null) of connection conn.
 * @param {string} conn
 * @param {import('./js/wsgate-pubsub.js').ClientInfo | null} client
 */
function presenceChanged(conn, client) {
  if (client) {
    here.set(conn, client);
  } else {
    here.delete(conn);
  }
  heard.forEach((changes) => changes.push([conn, client]));
  showPeople();
}

/**
 * Loads who is in channel. A presence push may pass the reply, so the changes heard while it was
 * on its way are applied again on top of it, in order: the last word on a connection wins.
 * @param {string} channel
 */
async function refreshPresence(channel) {
  /** @type {[string, import('./js/wsgate-pubsub.js').ClientInfo | null][]} */
  const changes = [];
  heard.add(changes);
  try {
    const { clients } = await client.presence(channel);
    if (sub?.channel === channel) {
      here = new Map(clients.map((c) => [c.conn, c]));
      changes.forEach(([conn, c]) => (c ? here.set(conn, c) : here.delete(conn)));
      showPeople();
    }
  } catch (err) {
    note('error', `presence: ${reason(err)}`);
  } finally {
    heard.delete(changes);
  }
}

function showPosition() {
  const pos = sub?.position;
  $('position').textContent = pos ? `${pos.epoch}:${pos.offset}` : '–';
}

/**
 * The server lost what this page missed: show it, and load what the server still has in the
 * current epoch into a slot that keeps those lines ahead of the live ones arriving meanwhile.
 * @param {import('./js/wsgate-pubsub.js').SubscribedInfo} info
 */
async function resync(info) {
  const slot = document.createElement('div');
  messages.append(slot);
  try {
    const h = await client.history(info.channel, { since: { epoch: info.epoch, offset: 0 }, limit: historyLimit });
    const older = h.publications.filter((p) => p.offset <= info.offset);
    if (older.length > 0) {
      note('history', `${older.length} message${older.length === 1 ? '' : 's'} the server still has:`, slot);
    }
    older.forEach((p) => showMessage(p, 'history', slot));
  } catch (err) {
    note('error', `could not reload the history: ${reason(err)}`, slot);
  }
}

/**
 * Joins channel: the latest messages from history, then a subscription from their position.
 * @param {string} channel
 */
async function join(channel) {
  wanted = channel;
  if (sub) {
    const old = sub;
    sub = null;
    note('leave', `you left #${old.channel}`);
    old.unsubscribe().catch((err) => note('error', `leaving #${old.channel}: ${reason(err)}`));
  }
  here = new Map();
  showPeople();
  $('joined').textContent = '–';
  let h;
  try {
    h = await client.history(channel, { limit: historyLimit });
  } catch (err) {
    note('error', `cannot join #${channel}: ${reason(err)}`);
    return;
  }
  if (wanted !== channel) {
    return; // another join came meanwhile
  }
  const n = h.publications.length;
  if (n > 0) {
    note('history', `${n === 1 ? 'the last message' : `the last ${n} messages`} of #${channel}:`);
  }
  h.publications.forEach((p) => showMessage(p, 'history'));
  const joined = client.subscribe(channel, {
    presence: true,
    since: { epoch: h.epoch, offset: h.offset },
    onSubscribed: (info) => {
      showPosition();
      void refreshPresence(channel);
      if (!info.resubscribed) {
        $('joined').textContent = '#' + channel;
        note('join', `you joined #${channel} as ${demo ? connectedAs || 'no one (anonymous)' : nickInput.value}`);
        return;
      }
      const at = new Date().toLocaleTimeString();
      if (info.recovered) {
        const n = info.publications;
        note('recovered', `reconnected: ${n} missed message${n === 1 ? '' : 's'} recovered`);
        recoveryOut.textContent = `${at}: ${n} recovered`;
        recoveryOut.dataset.recovery = 'recovered';
      } else {
        note('lost', 'reconnected: messages sent while you were away could not be recovered (the server lost them)');
        recoveryOut.textContent = `${at}: recovery impossible`;
        recoveryOut.dataset.recovery = 'lost';
        void resync(info);
      }
    },
    onPublication: (pub) => {
      showMessage(pub, pub.recovered ? 'recovered' : 'live');
      showPosition();
    },
    onGap: (gap) => {
      const n = gap.epoch === gap.since.epoch ? gap.offset - gap.since.offset : 0;
      note('lost', `${n > 0 ? n : 'some'} message${n === 1 ? '' : 's'} could not be delivered (the server dropped them and no longer has them)`);
      recoveryOut.textContent = `${new Date().toLocaleTimeString()}: ${n > 0 ? n : 'some'} lost`;
      recoveryOut.dataset.recovery = 'lost';
    },
    onJoin: (c) => {
      presenceChanged(c.conn, c);
      note('join', `${who(c)} joined`);
    },
    onLeave: (c) => {
      const known = here.get(c.conn) ?? c; // a leave carries no info: the join did
      presenceChanged(c.conn, null);
      note('leave', `${who(known)} left`);
    },
    onError: (err) => note('error', `#${channel}: ${reason(err)}${err.temporary ? '; retrying' : ''}`),
  });
  sub = joined;
}

client.on('state', (ev) => {
  stateOut.textContent = ev.state;
  stateOut.dataset.state = ev.state;
});

let online = false; // a connection is open: its loss is news, a failed reconnect attempt is not
client.on('open', () => {
  online = true;
});

client.on('close', (ev) => {
  const was = online;
  online = false;
  if (ev.willReconnect) {
    if (was) {
      note('offline', `connection lost (code ${ev.code}${ev.reason ? ', ' + ev.reason : ''}): reconnecting`);
    }
    here = new Map();
    showPeople();
  } else if (!renaming) {
    note('error', `disconnected (code ${ev.code}${ev.reason ? ', ' + ev.reason : ''}): reload the page to reconnect`);
  }
});

/**
 * In demo mode, a new nickname: a token for it, and a new connection under it (the subscription
 * goes along: it is made again on the new connection).
 * @param {string} nick
 */
async function rename(nick) {
  let token;
  try {
    token = await demoToken(nick);
  } catch (err) {
    note('error', String(err instanceof Error ? err.message : err));
    return;
  }
  connectedAs = nick;
  client.setToken(token);
  if (client.state === 'closed') {
    client.connect();
    return;
  }
  renaming = true;
  client.on('close', function again() {
    client.removeEventListener('close', again);
    renaming = false;
    client.connect();
  });
  client.close(1000, 'new name');
  note('join', `reconnecting as ${nick}`);
}

$('join').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const channel = channelInput.value.trim();
  const nick = nickInput.value.trim();
  if (demo && nick !== connectedAs) {
    void rename(nick);
  }
  if (channel !== wanted) {
    void join(channel);
  }
});

// Send is the form's submit button, so Enter sends too. While offline the message waits (up to the
// client's request timeout) and goes out on reconnect; it shows when it comes back from the channel.
$('say').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = textInput.value;
  if (!sub || !text) {
    return;
  }
  const channel = sub.channel;
  textInput.value = '';
  client.publish(channel, { nick: demo ? connectedAs : nickInput.value, text }).catch((err) => {
    note('error', `not sent to #${channel}: ${JSON.stringify(text)}: ${reason(err)}`);
  });
});

client.connect();
void join(channelInput.value);
