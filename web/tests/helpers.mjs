// Test plumbing: free ports, wsjpegsink pipelines (with wsh264sink too) under gst-launch, a
// plain JPEG-only WebSocket server, and small polling helpers. Everything started here is
// stopped by stopAll().

import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';

export const TESTS_DIR = path.dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = path.resolve(TESTS_DIR, '..');
export const REPO_ROOT = path.resolve(WEB_DIR, '..');
export const PLUGIN_DIR = process.env.WSJPEG_PLUGIN_DIR || path.join(REPO_ROOT, 'target', 'debug');
export const ARTIFACTS_DIR = process.env.WSJPEG_ARTIFACTS_DIR || path.join(REPO_ROOT, 'artifacts');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/**
 * Answers a request for the viewer page (`/`) or one of its files (viewer.css, js/*.js) from
 * web/ as it is, as document-root does; false for any other path.
 */
function serveViewer(req, res) {
  const pathname = new URL(req.url, 'http://x').pathname;
  const name = pathname === '/' ? 'index.html' : pathname.slice(1);
  if (!['GET', 'HEAD'].includes(req.method) || !/^(index\.html|viewer\.css|js\/[a-z0-9]+\.js)$/.test(name)) {
    return false;
  }
  const type = { html: 'text/html', css: 'text/css', js: 'text/javascript' }[name.split('.').pop()];
  res.writeHead(200, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : readFileSync(path.join(WEB_DIR, name)));
  return true;
}

/** The median of `values` (NaN for none). */
export function median(values) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The `p` quantile of `values` (0 < p < 1; NaN for none), the nearest sample below. */
export function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** The value after `--name` among a script's arguments, or `fallback`. */
export function cliOption(args, name, fallback) {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeout` ms. */
export async function waitFor(what, fn, { timeout = 10000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${describe(last)})`);
    }
    await sleep(interval);
  }
}

function describe(value) {
  if (value instanceof Error) return value.message;
  try { return JSON.stringify(value); } catch { return String(value); }
}

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set();

/**
 * Starts `videotestsrc ! jpegenc ! wsjpegsink` on `port` and waits until it serves.
 * `sinkProps` are extra `name=value` properties for wsjpegsink, `sourceProps` the picture
 * videotestsrc makes (a moving test pattern unless told otherwise).
 */
export async function startSink({
  port, sinkProps = [], sourceProps = ['pattern=smpte', 'horizontal-speed=4'], width = 640, height = 480, fps = 30,
  address = '127.0.0.1',
}) {
  return launchPipeline(port, sinkProps, [
    'videotestsrc', 'is-live=true', ...sourceProps,
    '!', `video/x-raw,width=${width},height=${height},framerate=${fps}/1`,
    '!', 'jpegenc', 'quality=80',
    '!', 'wsjpegsink', `address=${address}`, `port=${port}`, ...sinkProps,
  ], address);
}

/**
 * Starts a camera served both ways on `port`, as README's example: the test pattern split by a
 * tee into `jpegenc ! wsjpegsink` and `x264enc (zero latency, Constrained Baseline, a keyframe a
 * second, 1 Mbit/s) ! h264parse ! wsh264sink`, and waits until it serves. Options as for
 * startSink.
 */
export async function startH264Sink({
  port, sinkProps = [], sourceProps = ['pattern=smpte', 'horizontal-speed=4'], width = 640, height = 480, fps = 30,
  address = '127.0.0.1',
}) {
  return launchPipeline(port, sinkProps, [
    'videotestsrc', 'is-live=true', ...sourceProps,
    '!', `video/x-raw,width=${width},height=${height},framerate=${fps}/1`,
    '!', 'tee', 'name=t',
    't.', '!', 'queue', '!', 'jpegenc', 'quality=80',
    '!', 'wsjpegsink', 'name=sink', `address=${address}`, `port=${port}`, ...sinkProps,
    't.', '!', 'queue', '!', 'videoconvert',
    '!', 'x264enc', 'tune=zerolatency', 'speed-preset=ultrafast', 'bframes=0', 'key-int-max=30', 'bitrate=1000',
    '!', 'video/x-h264,profile=constrained-baseline',
    '!', 'h264parse', 'config-interval=-1',
    '!', 'video/x-h264,stream-format=byte-stream,alignment=au',
    '!', 'wsh264sink', 'sink=sink',
  ], address);
}

/** Runs gst-launch-1.0 with `pipeline`, its wsjpegsink on `port`, until /status counts frames. */
async function launchPipeline(port, sinkProps, pipeline, address = '127.0.0.1') {
  const proc = spawn('gst-launch-1.0', ['-q', ...pipeline], {
    env: { ...process.env, GST_PLUGIN_PATH: PLUGIN_DIR },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => { output = (output + chunk).slice(-4000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const sink = {
    port,
    proc,
    exited,
    output: () => output,
    async stop() {
      running.delete(sink);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(sink);
  const token = sinkProps.find((p) => p.startsWith('auth-token='));
  const query = token ? `?token=${encodeURIComponent(token.slice('auth-token='.length))}` : '';
  try {
    await waitFor(`wsjpegsink on port ${port} to stream`, async () => {
      if (proc.exitCode !== null) throw new Error(`gst-launch exited with ${proc.exitCode}: ${output}`);
      const status = await fetchJson(`http://${address}:${port}/status${query}`);
      return status.frames && status.frames.in > 0;
    }, { timeout: 15000, interval: 150 });
  } catch (err) {
    await sink.stop();
    throw err;
  }
  return sink;
}

export async function fetchJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

export async function fetchBytes(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * A server that knows nothing of the wsjpeg extensions: `/` is the viewer page, `/stream` a
 * WebSocket that sends bare JPEGs (cycling through `frames`) and ignores whatever it is told.
 */
export async function startPlainServer({ port, frames, fps = 30 }) {
  const server = http.createServer((req, res) => {
    if (!serveViewer(req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  const wss = new WebSocketServer({ server, path: '/stream' });
  const textReceived = [];
  wss.on('connection', (socket) => {
    let i = 0;
    const timer = setInterval(() => {
      if (socket.readyState !== socket.OPEN || socket.bufferedAmount > 1 << 20) return;
      socket.send(frames[i++ % frames.length], { binary: true });
    }, 1000 / fps);
    socket.on('message', (data, isBinary) => {
      if (!isBinary && textReceived.length < 100) textReceived.push(data.toString());
    });
    socket.on('close', () => clearInterval(timer));
    socket.on('error', () => clearInterval(timer));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const plain = {
    port,
    textReceived,
    async stop() {
      running.delete(plain);
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  running.add(plain);
  return plain;
}

/**
 * A scripted server speaking the full wsjpeg protocol, for what a healthy pipeline never shows:
 * camera states, pings, sequence gaps, and a clock `clockSkewMs` away from ours. Frames carry
 * the 24-byte "WSJ1" header with a capture time `captureAgeMs` before they are sent, and a
 * sequence number that advances by `sequenceStep`. `POST /api/record/start|stop` are logged in
 * `recordRequests` and answered 202 (or 409 when `recordAccept` is false).
 */
export async function startProtocolServer({
  port, frames, fps = 30, clockSkewMs = 0, captureAgeMs = 40, sequenceStep = 1, camera = 'streaming',
  recordAccept = true,
}) {
  const serverNowUs = () => Math.round((Date.now() + clockSkewMs) * 1000);
  const recordRequests = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && /^\/api\/record\/(start|stop)(\?|$)/.test(req.url)) {
      recordRequests.push({ url: req.url, origin: req.headers.origin || null });
      res.writeHead(recordAccept ? 202 : 409, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(recordAccept ? { ok: true } : { error: 'recording control is not available' }));
      return;
    }
    if (!serveViewer(req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  const wss = new WebSocketServer({ server, path: '/stream' });
  const received = [];
  const state = { camera, sequence: 0, frozen: false };
  wss.on('connection', (socket, req) => {
    const meta = new URL(req.url, 'http://x').searchParams.get('meta') === '1';
    socket.send(JSON.stringify({
      type: 'hello', server: 'scripted', version: '0.0.0', width: 640, height: 480, framerate: fps,
      meta, camera: state.camera,
    }));
    let i = 0;
    let paused = false;
    const timer = setInterval(() => {
      if (paused || state.frozen || state.camera !== 'streaming' || socket.readyState !== socket.OPEN) return;
      state.sequence += sequenceStep;
      const jpeg = frames[i++ % frames.length];
      if (!meta) { socket.send(jpeg, { binary: true }); return; }
      const header = Buffer.alloc(24);
      header.write('WSJ1', 0, 'latin1');
      header.writeUInt32BE(24, 4);
      header.writeBigUInt64BE(BigInt(state.sequence), 8);
      header.writeBigUInt64BE(BigInt(serverNowUs() - captureAgeMs * 1000), 16);
      socket.send(Buffer.concat([header, jpeg]), { binary: true });
    }, 1000 / fps);
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let msg;
      try { msg = JSON.parse(data.toString()); } catch { return; }
      if (received.length < 1000) received.push(msg);
      if (msg.type === 'time') socket.send(JSON.stringify({ type: 'time', client: msg.client, server: serverNowUs() }));
      if (msg.type === 'pause') paused = true;
      if (msg.type === 'resume') paused = false;
    });
    socket.on('close', () => clearInterval(timer));
    socket.on('error', () => clearInterval(timer));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const scripted = {
    port,
    received,
    recordRequests,
    /** Stops (true) or restarts (false) the frames while the camera stays "streaming". */
    freeze(frozen) {
      state.frozen = frozen;
    },
    /** Sends a JSON message to every connected viewer. */
    broadcast(message) {
      if (message.type === 'status') state.camera = message.camera;
      for (const client of wss.clients) client.send(JSON.stringify(message));
    },
    async stop() {
      running.delete(scripted);
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  running.add(scripted);
  return scripted;
}

/**
 * A detector: a WebSocket client of `/stream?meta=1` on `port` with the detector token, that
 * reads the "WSJ1" header of every frame and, `delayMs` later (its inference time), pushes
 * `{"type":"detections","frame":SEQ,"objects":objects(SEQ, n)}` for it (n counts the frames
 * it saw, from 0; null from `objects` pushes nothing) while `pushing` is true. Records the
 * sequence numbers it pushed for, when it last pushed (Date.now()) and any `error` the server
 * answers.
 */
export async function startDetector({ port, token, objects, delayMs = 0, host = '127.0.0.1' }) {
  const url = `ws://${host}:${port}/stream?meta=1&detector_token=${encodeURIComponent(token)}`;
  const socket = new WebSocket(url);
  const detector = {
    pushing: true,
    pushed: [],
    lastPushAt: 0,
    errors: [],
    async stop() {
      running.delete(detector);
      if (socket.readyState === WebSocket.CLOSED) return;
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.terminate();
      await closed;
    },
  };
  let seen = 0;
  socket.on('message', (data, isBinary) => {
    if (!isBinary) {
      let msg;
      try { msg = JSON.parse(data.toString()); } catch { return; }
      if (msg.type === 'error') detector.errors.push(msg.message);
      if (msg.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
      return;
    }
    if (data.length < 24 || data.toString('latin1', 0, 4) !== 'WSJ1' || data.readUInt32BE(4) < 24) return;
    const sequence = Number(data.readBigUInt64BE(8));
    const found = objects(sequence, seen++);
    if (!found) return;
    setTimeout(() => {
      if (!detector.pushing || socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: 'detections', frame: sequence, objects: found }));
      detector.pushed.push(sequence);
      detector.lastPushAt = Date.now();
    }, delayMs);
  });
  running.add(detector);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return detector;
}

/** The `hello` a viewer of `/stream?meta=1` on `port` gets first (`query`: more parameters). */
export async function readHello(port, query = '') {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/stream?meta=1${query}`);
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no hello from port ${port}`)), 5000);
      socket.on('message', (data, isBinary) => {
        if (isBinary) return;
        clearTimeout(timer);
        try { resolve(JSON.parse(data.toString())); } catch (err) { reject(err); }
      });
      socket.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
  } finally {
    socket.terminate();
  }
}

export async function stopAll() {
  await Promise.allSettled([...running].map((s) => s.stop()));
}

// Last resort if the test process is torn down abruptly: no gst-launch outlives us.
process.on('exit', () => {
  for (const s of running) {
    if (s.proc && s.proc.exitCode === null) {
      try { s.proc.kill('SIGKILL'); } catch { /* gone */ }
    }
    if (s.namespace) {
      spawnSync('ip', ['netns', 'del', s.namespace], { stdio: 'ignore' });
    }
  }
});

/** Installed in every page before its scripts run: counts bitmaps and object URLs. */
export function leakTracker() {
  const counts = { bitmaps: 0, closed: 0, urls: 0, revoked: 0 };
  Object.defineProperty(window, '__leaks', { value: counts });
  const create = window.createImageBitmap;
  window.createImageBitmap = function (...args) {
    return create.apply(this, args).then((bitmap) => { counts.bitmaps++; return bitmap; });
  };
  const close = ImageBitmap.prototype.close;
  ImageBitmap.prototype.close = function () { counts.closed++; return close.call(this); };
  const createUrl = URL.createObjectURL;
  const revokeUrl = URL.revokeObjectURL;
  URL.createObjectURL = function (obj) { counts.urls++; return createUrl.call(URL, obj); };
  URL.revokeObjectURL = function (url) { counts.revoked++; return revokeUrl.call(URL, url); };
}

/**
 * Installed in a page before its scripts run: counts the pictures every VideoDecoder gives
 * (`__videoFrames.out`) and the VideoFrames closed (`__videoFrames.closed`).
 */
export function videoFrameTracker() {
  const counts = { out: 0, closed: 0 };
  Object.defineProperty(window, '__videoFrames', { value: counts });
  if (typeof VideoDecoder !== 'function') return;
  const Native = VideoDecoder;
  window.VideoDecoder = class extends Native {
    constructor(init) {
      super({ ...init, output: (frame) => { counts.out++; init.output(frame); } });
    }
  };
  const close = VideoFrame.prototype.close;
  VideoFrame.prototype.close = function () { counts.closed++; return close.call(this); };
}

/** Makes every decode take `delayMs` longer, as on a slow phone. */
export function slowDecoder(delayMs) {
  const create = window.createImageBitmap;
  window.createImageBitmap = function (...args) {
    return new Promise((resolve) => setTimeout(resolve, delayMs)).then(() => create.apply(this, args));
  };
}

/**
 * A LAN in a box: a network namespace with a veth pair to this one, `hostIp` on this side and
 * `viewerIp` in the namespace. A page from `http://hostIp:…/` is not a secure context, as a
 * camera on the LAN is not (127.0.0.1 and localhost are). `chromium` is a script that starts
 * Chromium inside the namespace, for playwright's `executablePath`. Needs root: without it,
 * returns { skip: why } — unless WSJPEG_REQUIRE_NETNS or CI is set, where it throws.
 */
export function createLanLink() {
  const id = `${process.pid % 10000}`;
  const namespace = `wsjpeg-lan-${id}`;
  const hostSide = `wsjlh${id}`;
  const viewerSide = `wsjlv${id}`;
  const subnet = 40 + (process.pid % 200);
  const hostIp = `10.214.${subnet}.1`;
  const viewerIp = `10.214.${subnet}.2`;
  const run = (...args) => spawnSync(args[0], args.slice(1), { stdio: 'ignore' }).status === 0;
  const cannot = (why) => {
    if (process.env.WSJPEG_REQUIRE_NETNS || process.env.CI) throw new Error(`the LAN tests must run here, but: ${why}`);
    if (process.env.WSJPEG_SKIP_LOG) appendFileSync(process.env.WSJPEG_SKIP_LOG, `viewer LAN (MSE) tests: ${why}\n`);
    return { skip: why };
  };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return cannot('a network namespace needs root');
  if (!run('ip', 'netns', 'add', namespace)) return cannot('cannot make a network namespace (ip netns add failed)');
  const netns = `/var/run/netns/${namespace}`;
  // nsenter, not `ip netns exec`: that remounts /sys, which fails where / is not a mount point.
  const inside = (...args) => run('nsenter', `--net=${netns}`, ...args);
  const ok = run('ip', 'link', 'add', hostSide, 'type', 'veth', 'peer', 'name', viewerSide)
    && run('ip', 'link', 'set', viewerSide, 'netns', namespace)
    && run('ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostSide)
    && run('ip', 'link', 'set', hostSide, 'up')
    && inside('ip', 'addr', 'add', `${viewerIp}/30`, 'dev', viewerSide)
    && inside('ip', 'link', 'set', viewerSide, 'up')
    && inside('ip', 'link', 'set', 'lo', 'up');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsjpeg-lan-'));
  const link = {
    namespace,
    hostIp,
    viewerIp,
    chromium: path.join(dir, 'chromium-in-namespace'),
    /** Sends from the camera's side at `rate` (tc's words: '10mbit'), with a home router's 50 ms queue; null: at full speed. */
    shape(rate) {
      const ok = rate === null
        ? run('tc', 'qdisc', 'del', 'dev', hostSide, 'root')
        : run('tc', 'qdisc', 'replace', 'dev', hostSide, 'root', 'tbf', 'rate', rate, 'burst', '32kbit', 'latency', '50ms');
      if (!ok) throw new Error(`tc could not ${rate === null ? 'unshape' : `shape to ${rate}`} ${hostSide}`);
    },
    async stop() {
      running.delete(link);
      run('ip', 'link', 'del', hostSide);
      run('ip', 'netns', 'del', namespace);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(link);
  // A namespace outlives a killed process: one stopped by a signal (run.sh's timeout, Ctrl-C)
  // removes it first.
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      run('ip', 'link', 'del', hostSide);
      run('ip', 'netns', 'del', namespace);
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
  if (!ok) {
    link.stop();
    throw new Error('setting up the veth pair failed');
  }
  writeFileSync(link.chromium, `#!/bin/sh\nexec nsenter --net=${netns} -- ${CHROMIUM} "$@"\n`);
  chmodSync(link.chromium, 0o755);
  return link;
}
