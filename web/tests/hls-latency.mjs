// hls.js's live latency on the LL-HLS origin, capture → on screen: wall clock now minus the
// program date-time of the picture shown (hls.playingDate; the origin dates each segment by the
// capture time of its first picture), DIRECT from the element's port and THROUGH an nginx edge
// running packaging/nginx/wsjpeg-hls-edge.conf as committed. hls.js's own figure (hls.latency:
// how far behind the live edge of the playlist it plays, so without capture, encoding and
// packaging) is shown beside it. A benchmark, not a test: run it on a quiet machine through
// `web/tests/run.sh --hls-bench [--rounds N] [--seconds S] [--settle S]`.
//
// One pipeline for the whole run; each round opens a fresh player on each path in turn (the
// order alternating), lets it settle, then samples twice a second. A warm-up player goes first
// and is left out of the table: the first player of the origin's run (its media sequence numbers
// start at 0) starts differently from those joining it (hls.js makes no blocking reloads while
// the newest segment is number 0, and stalls), and the origin keeps a run going for 6 s after
// the last request, so every measured player joins the same run.

import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { HLS_VERSION, hlsStats, routeHlsPage } from './hls-page.mjs';
import {
  CHROMIUM, REPO_ROOT, cliOption, freePort, median, percentile, sleep, startH264Sink, stopAll, waitFor,
} from './helpers.mjs';

const option = (name, fallback) => cliOption(process.argv.slice(2), name, fallback);
const ROUNDS = Number(option('rounds', 3));
const SECONDS = Number(option('seconds', 15));
// The start (the parts already out loaded in a burst, the seek to hls.js's start position) is
// left out: the samples are of the steady state after it.
const SETTLE_SECONDS = Number(option('settle', 5));
const PATHS = ['direct', 'edge'];
const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => {
  try { accessSync(p, constants.X_OK); return true; } catch { return false; }
});
const EDGE_CONF = path.join(REPO_ROOT, 'packaging', 'nginx', 'wsjpeg-hls-edge.conf');

const ms = (value) => `${value.toFixed(0)} ms`;

/**
 * nginx on 127.0.0.1 with the committed edge configuration in front of the origin on
 * `originPort`: its cache, temporary files, pid and log in a directory of its own, one process
 * in the foreground (nothing to switch users for, nothing left behind when it is killed).
 */
async function startEdge(originPort) {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install nginx)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsjpeg-hls-edge-'));
  const port = await freePort();
  let edgeConf = readFileSync(EDGE_CONF, 'utf8');
  // The committed file names a device and a public port; a change there must not go unnoticed.
  for (const [from, to] of [
    ['/var/cache/nginx/wsjpeg-hls', path.join(dir, 'cache')],
    ['192.0.2.10:3003', `127.0.0.1:${originPort}`],
    ['listen 8080;', `listen 127.0.0.1:${port};`],
  ]) {
    if (!edgeConf.includes(from)) throw new Error(`${EDGE_CONF} no longer contains "${from}"`);
    edgeConf = edgeConf.replaceAll(from, to);
  }
  writeFileSync(path.join(dir, 'wsjpeg-hls-edge.conf'), edgeConf);
  writeFileSync(path.join(dir, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${dir}/wsjpeg-hls-edge.conf;
}
`);
  const proc = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000); });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const errorLog = () => { try { return readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
  const edge = {
    port,
    errorLog,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  process.on('exit', () => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  try {
    await waitFor(`nginx on port ${port}`, () => new Promise((resolve, reject) => {
      if (proc.exitCode !== null) reject(new Error(`nginx exited with ${proc.exitCode}: ${stderr}${errorLog()}`));
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    }), { timeout: 10000, interval: 50 });
  } catch (err) {
    await edge.stop();
    throw err;
  }
  return edge;
}

/** Opens a player at `origin`, lets it settle, and reads its figures twice a second. */
async function measure(browser, origin, { seconds = SECONDS, settle = SETTLE_SECONDS } = {}) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  try {
    const page = await context.newPage();
    const cache = {}; // X-Cache-Status → count, for the edge
    const failed = []; // /hls/ answers other than 200
    page.on('response', (res) => {
      if (!new URL(res.url()).pathname.startsWith('/hls/')) return;
      const status = res.headers()['x-cache-status'];
      if (status) cache[status] = (cache[status] || 0) + 1;
      if (res.status() !== 200) failed.push(`${new URL(res.url()).pathname}${new URL(res.url()).search}: ${res.status()}`);
    });
    await page.goto(await routeHlsPage(page, origin), { waitUntil: 'load' });
    await waitFor(`hls.js to play from ${origin}`, async () => {
      const s = await hlsStats(page);
      if (s.fatal) throw new Error(`hls.js gave up: ${s.fatal}`);
      return s.currentTime > 0.5 && s.playingDate !== null;
    }, { timeout: 20000, interval: 200 });
    await sleep(settle * 1000);
    const first = await hlsStats(page);
    const samples = { latency: [], hlsLatency: [], target: [] };
    for (let i = 0; i < seconds * 2; i++) {
      await sleep(500);
      const s = await hlsStats(page);
      if (s.fatal) throw new Error(`hls.js gave up: ${s.fatal}`);
      if (Number.isFinite(s.latencyMs)) samples.latency.push(s.latencyMs);
      if (s.latency !== null) samples.hlsLatency.push(s.latency * 1000);
      if (s.targetLatency !== null) samples.target.push(s.targetLatency * 1000);
    }
    const last = await hlsStats(page);
    return {
      samples,
      stalls: last.stalls - first.stalls,
      startStalls: first.stalls,
      played: (last.currentTime - first.currentTime) / ((last.now - first.now) / 1000),
      cache,
      failed,
      complaints: [...last.errors, ...last.warnings],
    };
  } finally {
    await context.close();
  }
}

async function main() {
  let browser;
  let edge;
  try {
    const sink = await startH264Sink({ port: await freePort() });
    edge = await startEdge(sink.port);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const origins = { direct: `http://127.0.0.1:${sink.port}`, edge: `http://127.0.0.1:${edge.port}` };
    console.log(`hls.js ${HLS_VERSION}, lowLatencyMode; origin on port ${sink.port}, nginx edge on port ${edge.port}; ` +
      `${ROUNDS} rounds, ${SETTLE_SECONDS} s settle + ${SECONDS} s of samples each`);

    const describe = (r) => {
      const cache = Object.entries(r.cache).map(([k, v]) => `${k} ${v}`).join(', ');
      return `latency p50 ${ms(median(r.samples.latency))}, p90 ${ms(percentile(r.samples.latency, 0.9))}; ` +
        `hls.latency p50 ${ms(median(r.samples.hlsLatency))}, target ${ms(median(r.samples.target))}; ` +
        `${r.stalls} stalls (${r.startStalls} while settling), played at ${r.played.toFixed(3)}x${cache ? `; cache: ${cache}` : ''}`;
    };
    const complaints = (r) => {
      for (const line of [...new Set(r.failed)].slice(0, 5)) console.log(`  not 200: ${line}`);
      for (const line of [...new Set(r.complaints)].slice(0, 5)) console.log(`  hls.js: ${line}`);
    };
    const warmUp = await measure(browser, origins.direct, { seconds: 2, settle: 3 });
    console.log(`warm-up, direct, the first player of the run: ${describe(warmUp)}`);
    complaints(warmUp);

    const results = {}; // path → [result]
    for (let round = 1; round <= ROUNDS; round++) {
      // Each round starts with the other path, so neither always runs first.
      const order = round % 2 ? PATHS : [...PATHS].reverse();
      for (const where of order) {
        const r = await measure(browser, origins[where]);
        (results[where] ||= []).push(r);
        console.log(`round ${round}, ${where}: ${describe(r)}`);
        complaints(r);
      }
    }

    console.log(`\n| path | latency p50 (runs) | p90 of all samples | hls.latency p50 (runs) | hls.js target | stalls after settling |`);
    console.log('|---|---|---|---|---|---|');
    for (const where of PATHS) {
      const runs = results[where];
      const all = (key) => runs.flatMap((r) => r.samples[key]);
      const perRun = (key) => runs.map((r) => median(r.samples[key]).toFixed(0)).join(', ');
      console.log(`| ${where === 'direct' ? 'direct' : 'nginx edge'} | ${ms(median(all('latency')))} (${perRun('latency')}) | ` +
        `${ms(percentile(all('latency'), 0.9))} | ${ms(median(all('hlsLatency')))} (${perRun('hlsLatency')}) | ` +
        `${ms(median(all('target')))} | ${runs.map((r) => r.stalls).join(', ')} |`);
    }
    const errors = edge.errorLog().trim();
    if (errors) console.log(`\nnginx error log:\n${errors.split('\n').slice(-10).join('\n')}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (edge) await edge.stop();
    await stopAll();
  }
}

main().catch((err) => {
  console.error(`hls-latency: ${err.stack || err}`);
  process.exit(1);
});
