// The admin page: every view calls the backend API through /admin/api/…, which checks the
// session cookie (and, on POST, the X-Wsgate-Csrf header) and hands the call to the API's
// handler with the admin page's key. Message rates come from the API's info; publications per
// second from /metrics when the server serves it on this listener.

/** uPlot, from uplot/uPlot.iife.min.js (a classic script the page loads first). */
const UPlot = /** @type {any} */ (globalThis).uPlot;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const pollEvery = 1000; // ms between two reads of the numbers
const keep = 120; // points kept in the charts: two minutes
const scanChannels = 200; // channels whose presence a user search looks through

let csrf = '';
/** @type {ReturnType<typeof setInterval> | undefined} */
let poller;

/**
 * Calls the backend API's endpoint with body; resolves with its JSON answer or throws its error.
 * @param {string} endpoint
 * @param {object} [body]
 * @returns {Promise<any>}
 */
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
  if (connChart || !UPlot) {
    return;
  }
  const size = { width: 460, height: 200 };
  connChart = new UPlot({ ...size, series: [{}, { label: 'connections', stroke: '#1a4f9c' }, { label: 'subscriptions', stroke: '#176b1b' }] },
    [t, conns, subs], $('chart-conns'));
  rateChart = new UPlot({ ...size, series: [{}, { label: 'in/s', stroke: '#5c2d91' }, { label: 'out/s', stroke: '#7a5200' }, { label: 'publications/s', stroke: '#b00020' }] },
    [t, rin, rout, rpub], $('chart-rates'));
}

/** The rate per second of counter name between two samples, or null. */
function rate(/** @type {{at: number, m: Map<string, number>} | undefined} */ prev, /** @type {{at: number, m: Map<string, number>}} */ cur, /** @type {string} */ name) {
  if (!prev || !prev.m.has(name) || !cur.m.has(name) || cur.at <= prev.at) {
    return null;
  }
  return Math.max(0, ((cur.m.get(name) ?? 0) - (prev.m.get(name) ?? 0)) / ((cur.at - prev.at) / 1000));
}

/** @type {{at: number, m: Map<string, number>} | undefined} */
let lastInfo;

/** Reads /metrics when the server serves it on this listener: the publications per second. */
async function readPublications() {
  if (metricsMissing > 0) {
    metricsMissing--;
    return null;
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
    $('rates-note').textContent = 'publications/s needs /metrics on this listener';
    return null;
  }
  $('rates-note').textContent = '';
  const prev = lastMetrics;
  lastMetrics = { at: performance.now(), m: parseMetrics(text) };
  return rate(prev, lastMetrics, 'wsgate_hub_publications_total');
}

const fmt = (/** @type {number|null|undefined} */ v) => (v == null ? '–' : v.toFixed(v < 10 ? 1 : 0));

function uptime(/** @type {number} */ s) {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}h ${m}m ${s % 60}s`;
}

async function poll() {
  try {
    const prefix = /** @type {HTMLInputElement} */ ($('channel-filter')).value;
    const [info, all, filtered, pub] = await Promise.all([
      api('info'),
      api('channels', { limit: 1000 }),
      prefix ? api('channels', { prefix, limit: 1000 }) : null,
      readPublications(),
    ]);
    const chans = filtered ?? all;
    const cur = { at: performance.now(), m: new Map([['in', info.messages_received], ['out', info.messages_sent]]) };
    const rates = { in: rate(lastInfo, cur, 'in'), out: rate(lastInfo, cur, 'out'), pub };
    lastInfo = cur;
    $('node-name').textContent = info.name;
    $('node-version').textContent = info.version;
    $('node-uptime').textContent = uptime(info.uptime_seconds);
    $('node-nodes').textContent = info.nodes?.length ? info.nodes.join(', ') : '(one node)';
    const subscriptions = all.channels.reduce((/** @type {number} */ n, /** @type {{subscribers: number}} */ c) => n + c.subscribers, 0);
    $('connections').textContent = String(info.connections);
    $('channel-count').textContent = all.next ? `${all.channels.length}+` : String(all.channels.length);
    $('subscriptions').textContent = all.next ? `${subscriptions}+` : String(subscriptions);
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

/**
 * Fills a table's body with rows of cells; text only, never HTML.
 * @param {string} tableId
 * @param {string[][]} rows
 * @param {(cells: string[]) => void} [onClick]
 */
function fill(tableId, rows, onClick) {
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

/** Shows the channels the filter keeps, at once (poll does it every second). */
async function refreshChannels() {
  const prefix = /** @type {HTMLInputElement} */ ($('channel-filter')).value;
  try {
    renderChannels(await api('channels', { prefix, limit: 1000 }));
  } catch (err) {
    showError(err);
  }
}

const channel = () => /** @type {HTMLInputElement} */ ($('channel')).value.trim();

async function showPresence() {
  try {
    const res = await api('presence', { channel: channel(), limit: 1000 });
    $('presence-total').textContent = `${res.total} connection(s)`;
    fill('presence', res.clients.map((/** @type {{conn: string, user?: string}} */ c) => [c.conn, c.user ?? '']));
  } catch (err) {
    showError(err);
  }
}

async function showHistory() {
  try {
    const res = await api('history', { channel: channel(), limit: 20 });
    $('history-epoch').textContent = res.epoch ? `epoch ${res.epoch}, ${res.publications.length} shown` : 'no history';
    fill('history', res.publications.map((/** @type {{offset: number, data: unknown}} */ p) => [String(p.offset), JSON.stringify(p.data)]));
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
  $('channel-filter').addEventListener('input', refreshChannels);
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
