// The peer to beat: seed 002's reference sink (a JavaScript WebSocket server), on Node + `ws`.
//
// What it does is what the seed's sink does, written to be reasonably efficient:
//   GET|POST /      answer XML: <Response><Stream ...>ws://host/stream?call=ID</Stream></Response>
//   WS /stream      per media frame: JSON.parse, base64-decode the payload, byte-swap L16 to
//                   little-endian, append to the call's buffer; on close write it as a mono WAV
//                   (recordings/call-<ISO time>-<n>.wav)
//   POST /webhook   status callbacks, one JSON line each in webhook-events.log
// and, for the bench, the figures vobiz-stream reports the same way:
//   GET /stats      frames handled, open streams, and the per-frame handling latency: from the
//                   frame's due time (its media.timestamp, epoch ms) to the moment the frame has
//                   been decoded and appended, in a histogram of 0.1 ms bins.
//   GET /healthz    {"status": "ok"}
//
// Usage: node index.js --port 3100 --data-dir DIR [--host 127.0.0.1]

'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { WebSocketServer } = require('ws');

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

const host = option('host', '127.0.0.1');
const port = Number(option('port', '3100'));
const dataDir = option('data-dir', 'data-node');
const recordingsDir = path.join(dataDir, 'recordings');
fs.mkdirSync(recordingsDir, { recursive: true });
const webhookLog = fs.createWriteStream(path.join(dataDir, 'webhook-events.log'), { flags: 'a' });

const SAMPLE_RATE = 8000;

// -- handling latency: 0.1 ms bins up to 10 s, the last bin holds everything later ------------

const BIN_MS = 0.1;
const BINS = 100000;
const latencyBins = new Uint32Array(BINS + 1);
let latencyCount = 0;
let latencyMax = 0;

function noteLatency(ms) {
  const clamped = ms < 0 ? 0 : ms;
  const bin = Math.min(BINS, Math.floor(clamped / BIN_MS));
  latencyBins[bin] += 1;
  latencyCount += 1;
  if (clamped > latencyMax) latencyMax = clamped;
}

function percentile(fraction) {
  if (latencyCount === 0) return null;
  const wanted = Math.ceil(fraction * latencyCount);
  let seen = 0;
  for (let bin = 0; bin <= BINS; bin += 1) {
    seen += latencyBins[bin];
    if (seen >= wanted) return bin === BINS ? latencyMax : Math.round((bin + 1) * BIN_MS * 10) / 10;
  }
  return latencyMax;
}

// -- answer XML ------------------------------------------------------------------------------

function escapeXml(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function answerXml(hostHeader, callId) {
  const query = callId ? `?call=${encodeURIComponent(callId)}` : '';
  const streamUrl = `ws://${hostHeader}/stream${query}`;
  const webhookUrl = `http://${hostHeader}/webhook`;
  return '<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n'
    + `  <Stream bidirectional="true" audioTrack="inbound" statusCallbackUrl="${escapeXml(webhookUrl)}"`
    + ` contentType="audio/x-l16;rate=${SAMPLE_RATE}" keepCallAlive="true">`
    + `${escapeXml(streamUrl)}</Stream>\n</Response>\n`;
}

function readBody(request, done) {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => done(Buffer.concat(chunks).toString()));
}

// -- recordings ------------------------------------------------------------------------------

function wavHeader(dataBytes) {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(SAMPLE_RATE, 24);
  header.writeUInt32LE(SAMPLE_RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

let streamsOpened = 0;
let openStreams = 0;
let framesHandled = 0;

function acceptStream(socket) {
  streamsOpened += 1;
  openStreams += 1;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(recordingsDir, `call-${stamp}-${streamsOpened}.wav`);
  const chunks = [];
  let bytes = 0;
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.event !== 'media' || !message.media) return;
    const pcm = Buffer.from(message.media.payload, 'base64');
    if (pcm.length % 2 === 0) pcm.swap16();
    chunks.push(pcm);
    bytes += pcm.length;
    framesHandled += 1;
    const due = Number(message.media.timestamp);
    if (due > 0) noteLatency(performance.timeOrigin + performance.now() - due);
  });
  socket.on('close', () => {
    openStreams -= 1;
    fs.writeFile(file, Buffer.concat([wavHeader(bytes), ...chunks], 44 + bytes), (error) => {
      if (error) console.error(`cannot write ${file}: ${error.message}`);
    });
  });
}

// -- the server ------------------------------------------------------------------------------

function sendJson(response, body) {
  response.writeHead(200, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
}

const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://local');
  if (url.pathname === '/' && (request.method === 'GET' || request.method === 'POST')) {
    readBody(request, (body) => {
      const fields = new URLSearchParams(body);
      const callId = fields.get('CallUUID') || url.searchParams.get('CallUUID');
      response.writeHead(200, { 'Content-Type': 'application/xml' });
      response.end(answerXml(request.headers.host, callId));
    });
  } else if (url.pathname === '/webhook') {
    readBody(request, (body) => {
      const fields = Object.fromEntries(new URLSearchParams(body));
      webhookLog.write(`${JSON.stringify({ receivedAt: new Date().toISOString(), ...fields })}\n`);
      response.writeHead(200, { 'Content-Type': 'text/plain' });
      response.end('OK\n');
    });
  } else if (url.pathname === '/stats') {
    sendJson(response, {
      server: `node ${process.version} + ws`,
      open_streams: openStreams,
      streams: streamsOpened,
      frames: framesHandled,
      handling_latency_ms: {
        count: latencyCount,
        p50: percentile(0.5),
        p99: percentile(0.99),
        max: Math.round(latencyMax * 1000) / 1000,
      },
    });
  } else if (url.pathname === '/healthz') {
    sendJson(response, { status: 'ok', open_streams: openStreams });
  } else {
    response.writeHead(404);
    response.end();
  }
});

const sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (request, socket, head) => {
  if (!request.url.startsWith('/stream')) {
    socket.destroy();
    return;
  }
  sockets.handleUpgrade(request, socket, head, acceptStream);
});

server.listen(port, host, () => {
  console.log(`node sink serving on http://${host}:${port} (data in ${dataDir})`);
});

function stop() {
  for (const client of sockets.clients) client.terminate();
  server.close(() => webhookLog.end(() => process.exit(0)));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
