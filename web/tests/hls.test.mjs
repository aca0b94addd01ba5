// The LL-HLS origin (/hls/ on the element's port) played by hls.js in headless Chromium, as a
// third-party player would: a page of our own at the server's origin (see hls-page.mjs) that
// plays /hls/index.m3u8 in low-latency mode, against real wsjpegsink + wsh264sink pipelines.
// Run through ./run.sh with the other tests.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

import { HLS_VERSION, hlsStats, routeHlsPage } from './hls-page.mjs';
import { CHROMIUM, freePort, sleep, startH264Sink, stopAll, waitFor } from './helpers.mjs';

const TOKEN = 'hls-s3cret';

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}, { timeout: 30000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stopAll();
});

/**
 * Opens the player page at `http://127.0.0.1:port`, recording page errors and every /hls/
 * request with its answer's status.
 */
async function openPlayer(port, { token = null } = {}) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await context.newPage();
  const errors = [];
  const hlsRequests = []; // { url, status }
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('response', (res) => {
    if (new URL(res.url()).pathname.startsWith('/hls/')) hlsRequests.push({ url: res.url(), status: res.status() });
  });
  page.on('requestfailed', (req) => {
    if (new URL(req.url()).pathname.startsWith('/hls/')) hlsRequests.push({ url: req.url(), status: req.failure()?.errorText });
  });
  const url = await routeHlsPage(page, `http://127.0.0.1:${port}`, { token });
  await page.goto(url, { waitUntil: 'load' });
  return { context, page, errors, hlsRequests };
}

/** Waits until the player shows pictures, failing at once on a fatal hls.js error. */
async function waitForPlayback(page, timeout = 20000) {
  return waitFor('hls.js to play', async () => {
    const s = await hlsStats(page);
    if (s.fatal) throw new Error(`hls.js gave up: ${s.fatal}`);
    return s.currentTime > 0.5 && s.readyState >= 3 && s.playingDate !== null && s;
  }, { timeout, interval: 200 });
}

async function assertMoving(page, label) {
  const first = await page.evaluate(() => window.hlsTest.picture());
  assert.ok(first.lit > 0.3, `${label}: the video looks blank (${(first.lit * 100).toFixed(1)}% lit)`);
  await sleep(400);
  const second = await page.evaluate(() => window.hlsTest.picture());
  assert.notEqual(first.sum, second.sum, `${label}: the picture did not change over 400 ms`);
}

/** What the run showed that is no failure but worth reading: hls.js's complaints, odd answers. */
function report(t, s, hlsRequests) {
  for (const line of [...s.errors, ...s.warnings]) t.diagnostic(`hls.js: ${line}`);
  for (const r of hlsRequests.filter((r) => r.status !== 200)) t.diagnostic(`${r.url}: ${r.status}`);
}

describe(`LL-HLS played by hls.js ${HLS_VERSION}`, () => {
  it('plays the camera at 640x480, moving, about a second behind the capture', { timeout: 45000 }, async (t) => {
    const sink = await startH264Sink({ port: await freePort() });
    const { context, page, errors, hlsRequests } = await openPlayer(sink.port);
    try {
      const start = await waitForPlayback(page);
      assert.equal(start.width, 640);
      assert.equal(start.height, 480);
      assert.equal(start.lowLatency, true, 'hls.js did not take the playlist as low-latency (blocking reloads and parts)');
      await assertMoving(page, 'hls.js');

      // Playback goes on past what was buffered at the start. With some slack: as the first
      // player of the origin's run, hls.js may stall early on (media sequence numbers start at 0,
      // and while its newest segment is number 0 hls.js polls once a target duration instead of
      // making blocking reloads).
      const later = await waitFor('currentTime to advance by 2 s', async () => {
        const s = await hlsStats(page);
        if (s.fatal) throw new Error(`hls.js gave up: ${s.fatal}`);
        return s.currentTime - start.currentTime >= 2 && s;
      }, { timeout: 6000, interval: 200 });
      assert.ok(later.playingDate > start.playingDate, 'the program date-time on screen did not advance');
      // A plausibility bound, loose for a loaded machine: hls.js holds back PART-HOLD-BACK
      // (0.63 s) plus a part or two; hls-latency.mjs measures the real figure.
      assert.ok(later.latencyMs > 0 && later.latencyMs < 2500,
        `live latency ${later.latencyMs} ms (now - playingDate); hls.latency ${later.latency} s`);
      t.diagnostic(`latency ${later.latencyMs} ms behind capture, hls.latency ${later.latency?.toFixed(3)} s, ` +
        `target ${later.targetLatency?.toFixed(3)} s, ${later.stalls} stalls`);

      // Blocking reloads: the player asks for the next part's playlist, not the same one over.
      assert.ok(hlsRequests.some((r) => /[?&]_HLS_msn=\d+/.test(r.url)), 'no blocking playlist reload was asked for');
      assert.ok(hlsRequests.some((r) => /\/part-[^/]+\.m4s/.test(r.url) && r.status === 200), 'no part was fetched');
      report(t, later, hlsRequests);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await sink.stop();
    }
  });

  it('plays with ?token= from a pipeline with auth-token, the token on every request', { timeout: 45000 }, async (t) => {
    const sink = await startH264Sink({ port: await freePort(), sinkProps: [`auth-token=${TOKEN}`] });
    try {
      // Without the token the origin refuses the playlist, so the token is what lets the player in.
      const refused = await fetch(`http://127.0.0.1:${sink.port}/hls/index.m3u8`, { signal: AbortSignal.timeout(5000) });
      assert.equal(refused.status, 401);

      const { context, page, errors, hlsRequests } = await openPlayer(sink.port, { token: TOKEN });
      try {
        assert.equal(await page.evaluate(() => window.hlsTest.source), `/hls/index.m3u8?token=${TOKEN}`);
        const start = await waitForPlayback(page);
        assert.equal(start.width, 640);
        assert.equal(start.height, 480);
        await assertMoving(page, 'hls.js with a token');
        const later = await waitFor('currentTime to advance by 1 s', async () => {
          const s = await hlsStats(page);
          if (s.fatal) throw new Error(`hls.js gave up: ${s.fatal}`);
          return s.currentTime - start.currentTime >= 1 && s;
        }, { timeout: 5000, interval: 200 });
        assert.ok(later.latencyMs > 0 && later.latencyMs < 2500, `live latency ${later.latencyMs} ms`);

        // The playlist, init segment, parts and segments: each fetched with the token, since the
        // origin wrote it on every URI.
        assert.ok(hlsRequests.some((r) => /\/init-[^/]+\.mp4/.test(r.url)), 'no init segment fetched');
        const without = hlsRequests.filter((r) => new URL(r.url).searchParams.get('token') !== TOKEN);
        assert.deepEqual(without, [], 'requests without the token');
        report(t, later, hlsRequests);
        assert.deepEqual(errors, []);
      } finally {
        await context.close();
      }
    } finally {
      await sink.stop();
    }
  });
});
