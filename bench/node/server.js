// An echo server on the ws package, for wsgate's side-by-side benchmark. It keeps the contract of
// the Go yardsticks (internal/echoserver.Serve): it prints the address it listens on as its first
// line, echoes every message at /ws in the frame type it came in (read limit 1 MiB, no
// compression, no origin check), answers GET /stats with its figures as JSON (?gc=1 collects
// garbage first, when node runs with --expose-gc), and exits on SIGTERM or after --lifetime.
//
//   node --expose-gc server.js [--addr 127.0.0.1:0] [--lifetime 3600s]
import http from 'node:http';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const [host, port] = flag('addr', '127.0.0.1:0').split(':');
const lifetime = parseFloat(flag('lifetime', '3600s')) * 1000;

const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // a peer that goes away is not the server's failure
});

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && url.pathname === '/stats') {
    if (url.searchParams.get('gc') === '1' && typeof globalThis.gc === 'function') globalThis.gc();
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({
      impl: 'ws', heap_inuse: mem.heapUsed + mem.external + mem.arrayBuffers, stack_inuse: 0,
      sys: mem.heapTotal, vmrss: mem.rss, goroutines: 0, num_gc: 0, cpu_ns: (cpu.user + cpu.system) * 1000,
    }));
    return;
  }
  res.writeHead(404).end();
});
server.on('upgrade', (req, socket, head) => {
  if (new URL(req.url, 'http://x').pathname !== '/ws') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(Number(port), host, () => {
  const a = server.address();
  process.stdout.write(`${a.address}:${a.port}\n`);
});
const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, lifetime).unref();
