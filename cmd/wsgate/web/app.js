// wsgate demo: a WebSocket client that logs everything it does. Whatever comes from the network or
// the input box is shown with textContent only, never parsed as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const logBox = $('log');
  const input = $('input');
  const binary = $('binary');
  const status = $('status');
  // The endpoint follows the page: same host, wss:// when the page came over https://.
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const decoder = new TextDecoder('utf-8'); // not fatal: invalid bytes show as U+FFFD
  const encoder = new TextEncoder();
  const states = ['connecting', 'open', 'closing', 'closed'];
  let ws = null; // the current connection, null when there is none

  $('url').textContent = url;

  function print(kind, text) {
    const line = document.createElement('div');
    line.className = 'entry ' + kind.toLowerCase();
    line.textContent = new Date().toLocaleTimeString() + ' ' + kind + (text === undefined ? '' : ' ' + text);
    logBox.appendChild(line);
    logBox.scrollTop = logBox.scrollHeight;
  }

  function showStatus() {
    status.textContent = ws ? states[ws.readyState] : 'closed';
  }

  $('open').addEventListener('click', () => {
    if (ws) {
      print('ERROR', 'a connection is already ' + states[ws.readyState] + '; close it first');
      return;
    }
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      print('ERROR', 'cannot connect to ' + url + ': ' + e.message);
      return;
    }
    sock.binaryType = 'arraybuffer';
    let opened = false;
    ws = sock;
    sock.addEventListener('open', () => {
      opened = true;
      print('OPEN', url);
      showStatus();
    });
    sock.addEventListener('message', (ev) => {
      if (typeof ev.data === 'string') {
        print('RECEIVED', '[text] ' + ev.data);
      } else {
        print('RECEIVED', '[binary] ' + decoder.decode(ev.data) + ' (' + ev.data.byteLength + ' bytes)');
      }
    });
    sock.addEventListener('error', () => {
      // Browsers give error events no details on purpose; the close event that follows has the code.
      print('ERROR', opened
        ? 'the connection failed (see the close code below)'
        : 'could not connect to ' + url + ': the server is down, unreachable, or refused the handshake (for instance an origin it does not allow)');
    });
    sock.addEventListener('close', (ev) => {
      print('CLOSE', 'code=' + ev.code + ' reason=' + JSON.stringify(ev.reason) + ' wasClean=' + ev.wasClean);
      if (ws === sock) {
        ws = null;
      }
      showStatus();
    });
    showStatus();
  });

  $('close').addEventListener('click', () => {
    if (!ws) {
      print('ERROR', 'not connected');
      return;
    }
    ws.close(1000, 'bye');
    showStatus();
  });

  // Send is the form's submit button, so Enter in the message box sends too.
  $('form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      print('ERROR', ws ? 'cannot send: the connection is ' + states[ws.readyState] : 'not connected: click Open first');
      return;
    }
    const text = input.value;
    if (binary.checked) {
      ws.send(encoder.encode(text));
      print('SENT', '[binary] ' + text);
    } else {
      ws.send(text);
      print('SENT', '[text] ' + text);
    }
  });
})();
