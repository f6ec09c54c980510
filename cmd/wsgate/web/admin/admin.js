// The admin page: every view calls the backend API through /admin/api/…, which checks the
// session cookie (and, on POST, the X-Wsgate-Csrf header) and hands the call to the API's
// handler with the admin page's key. Message rates come from /metrics when the server serves it.

/* global uPlot */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const pollEvery = 1000; // ms between two reads of the numbers
const keep = 120; // points kept in the charts: two minutes
const scanChannels = 200; // channels whose presence a user search looks through

let csrf = '';
/** @type {ReturnType<typeof setInterval> | undefined} */
let poller;

/** Calls the backend API's endpoint with body; resolves with its JSON answer or throws its error. */
export async function api(endpoint, body = {}) {
  const res = await fetch(`api/${endpoint}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Wsgate-Csrf': csrf },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const answer = await res.json().catch(() => ({}));
  if (res.status === 401) {
    showLogin('session ended: log in again');
  }
  if (!res.ok) {
    throw new Error(`${endpoint}: ${res.status} ${answer?.error?.message ?? ''}`);
  }
  return answer;
}

function showLogin(msg = '') {
  clearInterval(poller);
  poller = undefined;
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg;
  /** @type {HTMLInputElement} */ ($('secret')).focus();
}

function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  if (!poller) {
    poll();
    poller = setInterval(poll, pollEvery);
  }
}

function showError(/** @type {unknown} */ err) {
  $('error').textContent = err instanceof Error ? err.message : String(err);
}

/** Parses the unlabelled samples and the sums of labelled ones of a Prometheus text exposition. */
export function parseMetrics(/** @type {string} */ text) {
  /** @type {Map<string, number>} */
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) {
      const v = Number(m[3]);
      if (Number.isFinite(v)) {
        out.set(m[1], (out.get(m[1]) ?? 0) + v);
      }
    }
  }
  return out;
}

// The series: time, connections, subscriptions; time, in/s, out/s, publications/s.
const t = /** @type {number[]} */ ([]);
const conns = /** @type {number[]} */ ([]);
const subs = /** @type {number[]} */ ([]);
const rin = /** @type {(number|null)[]} */ ([]);
const rout = /** @type {(number|null)[]} */ ([]);
const rpub = /** @type {(number|null)[]} */ ([]);
/** @type {any} */
let connChart;
/** @type {any} */
let rateChart;
/** @type {{at: number, m: Map<string, number>} | undefined} */
let lastMetrics;
let metricsMissing = 0; // polls left before /metrics is tried again

function charts() {
  if (connChart || typeof uPlot === 'undefined') {
    return;
  }
  const size = { width: 460, height: 200 };
  connChart = new uPlot({ ...size, series: [{}, { label: 'connections', stroke: '#1a4f9c' }, { label: 'subscriptions', stroke: '#176b1b' }] },
    [t, conns, subs], $('chart-conns'));
  rateChart = new uPlot({ ...size, series: [{}, { label: 'in/s', stroke: '#5c2d91' }, { label: 'out/s', stroke: '#7a5200' }, { label: 'publications/s', stroke: '#b00020' }] },
    [t, rin, rout, rpub], $('chart-rates'));
}

/** Reads /metrics when the server serves it; the rates per second since the last read. */
async function readRates() {
  if (metricsMissing > 0) {
    metricsMissing--;
    return undefined;
  }
  let text = '';
  try {
    const res = await fetch('/metrics', { credentials: 'omit' });
    if (!res.ok) {
      throw new Error(String(res.status));
    }
    text = await res.text();
  } catch {
    metricsMissing = 30;
    $('rates-note').textContent = 'message rates need /metrics on this listener (not served here)';
    return undefined;
  }
  $('rates-note').textContent = '';
  const now = performance.now();
  const m = parseMetrics(text);
  const prev = lastMetrics;
  lastMetrics = { at: now, m };
  if (!prev) {
    return undefined;
  }
  const secs = (now - prev.at) / 1000;
  const rate = (/** @type {string} */ name) => (m.has(name) && prev.m.has(name) ? Math.max(0, (m.get(name) - prev.m.get(name)) / secs) : null);
  return { in: rate('wsgate_messages_received_total'), out: rate('wsgate_messages_sent_total'), pub: rate('wsgate_hub_publications_total') };
}

const fmt = (/** @type {number|null|undefined} */ v) => (v == null ? '–' : v.toFixed(v < 10 ? 1 : 0));

function uptime(/** @type {number} */ s) {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}h ${m}m ${s % 60}s`;
}

async function poll() {
  try {
    const [info, chans, rates] = await Promise.all([
      api('info'),
      api('channels', { prefix: /** @type {HTMLInputElement} */ ($('channel-filter')).value, limit: 1000 }),
      readRates(),
    ]);
    $('node-name').textContent = info.name;
    $('node-version').textContent = info.version;
    $('node-uptime').textContent = uptime(info.uptime_seconds);
    $('node-nodes').textContent = info.nodes?.length ? info.nodes.join(', ') : '(one node)';
    const subscriptions = chans.channels.reduce((n, c) => n + c.subscribers, 0);
    $('connections').textContent = String(info.connections);
    $('channel-count').textContent = chans.next ? `${chans.channels.length}+` : String(chans.channels.length);
    $('subscriptions').textContent = String(subscriptions);
    $('rate-in').textContent = fmt(rates?.in);
    $('rate-out').textContent = fmt(rates?.out);
    $('rate-pub').textContent = fmt(rates?.pub);
    renderChannels(chans);
    t.push(Date.now() / 1000);
    conns.push(info.connections);
    subs.push(subscriptions);
    rin.push(rates?.in ?? null);
    rout.push(rates?.out ?? null);
    rpub.push(rates?.pub ?? null);
    for (const s of [t, conns, subs, rin, rout, rpub]) {
      s.splice(0, Math.max(0, s.length - keep));
    }
    charts();
    connChart?.setData([t, conns, subs]);
    rateChart?.setData([t, rin, rout, rpub]);
    $('error').textContent = '';
  } catch (err) {
    showError(err);
  }
}

/** Fills tbody with rows of cells; text only, never HTML. */
function fill(/** @type {string} */ tableId, /** @type {string[][]} */ rows, onClick = undefined) {
  const tbody = /** @type {HTMLTableElement} */ ($(tableId)).tBodies[0];
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    if (onClick) {
      tr.addEventListener('click', () => onClick(cells));
    }
    return tr;
  }));
}

function renderChannels(/** @type {{channels: {name: string, subscribers: number}[], next?: string}} */ chans) {
  fill('channels', chans.channels.map((c) => [c.name, String(c.subscribers)]), ([name]) => {
    /** @type {HTMLInputElement} */ ($('channel')).value = name;
    showPresence();
    showHistory();
  });
  $('channels-more').textContent = chans.next ? 'more channels: narrow the filter' : '';
}

const channel = () => /** @type {HTMLInputElement} */ ($('channel')).value.trim();

async function showPresence() {
  try {
    const res = await api('presence', { channel: channel(), limit: 1000 });
    $('presence-total').textContent = `${res.total} connection(s)`;
    fill('presence', res.clients.map((c) => [c.conn, c.user ?? '']));
  } catch (err) {
    showError(err);
  }
}

async function showHistory() {
  try {
    const res = await api('history', { channel: channel(), limit: 50 });
    $('history-epoch').textContent = res.epoch ? `epoch ${res.epoch}, ${res.publications.length} shown` : 'no history';
    fill('history', res.publications.map((p) => [String(p.offset), JSON.stringify(p.data)]));
  } catch (err) {
    showError(err);
  }
}

async function publish(/** @type {Event} */ ev) {
  ev.preventDefault();
  const out = $('publish-result');
  let data;
  try {
    data = JSON.parse(/** @type {HTMLInputElement} */ ($('publish-data')).value);
  } catch {
    out.textContent = 'not JSON';
    return;
  }
  try {
    const pos = await api('publish', { channel: channel(), data });
    out.textContent = `published at offset ${pos.offset}`;
    await showHistory();
  } catch (err) {
    out.textContent = err instanceof Error ? err.message : String(err);
  }
}

const user = () => /** @type {HTMLInputElement} */ ($('user')).value.trim();

/** Looks for user's connections in the presence of the channels listed (up to scanChannels). */
async function findUser(/** @type {Event} */ ev) {
  ev.preventDefault();
  const who = user();
  try {
    const chans = await api('channels', { limit: scanChannels });
    /** @type {string[][]} */
    const rows = [];
    const ids = new Set();
    for (const c of chans.channels) {
      const res = await api('presence', { channel: c.name, limit: 1000 });
      for (const p of res.clients) {
        if (p.user === who) {
          rows.push([p.conn, c.name]);
          ids.add(p.conn);
        }
      }
    }
    fill('user-conns', rows);
    $('user-note').textContent = `${who}: ${ids.size} connection(s) subscribed to ${rows.length} channel(s)` +
      (chans.next ? ` (first ${scanChannels} channels looked at)` : '') + '; Disconnect closes all of them, subscribed or not, on every node';
  } catch (err) {
    showError(err);
  }
}

async function disconnect() {
  try {
    const res = await api('disconnect', { user: user(), reason: 'disconnected by an admin' });
    $('disconnect-result').textContent = `closed ${res.connections} connection(s)`;
  } catch (err) {
    $('disconnect-result').textContent = err instanceof Error ? err.message : String(err);
  }
}

async function login(/** @type {SubmitEvent} */ ev) {
  ev.preventDefault();
  const form = /** @type {HTMLFormElement} */ ($('login-form'));
  const res = await fetch('login', { method: 'POST', body: new URLSearchParams(/** @type {any} */ (new FormData(form))), credentials: 'same-origin' });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    $('login-error').textContent = answer?.error?.message ?? `login: ${res.status}`;
    return;
  }
  form.reset();
  csrf = answer.csrf;
  showApp();
}

async function logout() {
  await fetch('logout', { method: 'POST', headers: { 'X-Wsgate-Csrf': csrf }, credentials: 'same-origin' });
  csrf = '';
  showLogin('logged out');
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('channels-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('channel-filter').addEventListener('input', poll);
  $('show-presence').addEventListener('click', showPresence);
  $('show-history').addEventListener('click', showHistory);
  $('channel-form').addEventListener('submit', (ev) => { ev.preventDefault(); showPresence(); showHistory(); });
  $('publish-form').addEventListener('submit', publish);
  $('user-form').addEventListener('submit', findUser);
  $('disconnect').addEventListener('click', disconnect);
  const res = await fetch('session', { credentials: 'same-origin' });
  if (res.ok) {
    csrf = (await res.json()).csrf;
    showApp();
  } else {
    showLogin();
  }
}

if (typeof document !== 'undefined') {
  start();
}
