// A player page for the LL-HLS origin: hls.js (from node_modules) playing /hls/index.m3u8 into a
// muted <video>, as a third-party site would embed the stream. Neither the element nor nginx
// serves this page: Playwright answers for it at the origin it is given, so that the page and
// the playlist are same-origin (what a player beside the camera or behind the edge sees) and
// nothing but /hls/ reaches the server. Shared by hls.test.mjs and hls-latency.mjs.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const HLS_PACKAGE = path.dirname(require.resolve('hls.js/package.json'));
// The unminified build: a stack trace from it names hls.js's own functions.
const HLS_SCRIPT = readFileSync(path.join(HLS_PACKAGE, 'dist', 'hls.js'));
export const HLS_VERSION = JSON.parse(readFileSync(path.join(HLS_PACKAGE, 'package.json'), 'utf8')).version;

export const PAGE_PATH = '/hls-test.html';
const SCRIPT_PATH = '/hls-test/hls.js';

// The page passes ?token= on to the playlist URL; the origin writes it on every URI it lists.
const PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>hls.js on the wsjpeg LL-HLS origin</title>
<body style="margin:0;background:#000">
<video id="video" muted autoplay playsinline width="640" height="480"></video>
<script src="${SCRIPT_PATH}"></script>
<script>
  const video = document.getElementById('video');
  const token = new URLSearchParams(location.search).get('token');
  const source = '/hls/index.m3u8' + (token === null ? '' : '?token=' + encodeURIComponent(token));
  const state = { fatal: null, errors: [], warnings: [], stalls: 0, playing: false };
  // hls.js's own warnings and errors (its logger, not the console: the console is off unless
  // debug is on), kept short, for what it thinks of the playlist.
  const keep = (list) => (...args) => {
    if (list.length < 50) list.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ').slice(0, 300));
  };
  const noop = () => {};
  const hls = new Hls({
    lowLatencyMode: true,
    debug: { trace: noop, debug: noop, log: noop, info: noop, warn: keep(state.warnings), error: keep(state.errors) },
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    const what = data.type + '/' + data.details + (data.response ? ' HTTP ' + data.response.code : '') +
      (data.frag ? ' ' + data.frag.relurl : '') + (data.error ? ': ' + data.error.message : '');
    if (data.fatal) state.fatal = what;
    else if (state.errors.length < 50) state.errors.push(what);
  });
  video.addEventListener('playing', () => { state.playing = true; });
  video.addEventListener('waiting', () => { if (state.playing) state.stalls++; });
  hls.loadSource(source);
  hls.attachMedia(video);

  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 480;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  window.hlsTest = {
    source,
    /** What the player shows and how far behind: the figures the tests and the benchmark read. */
    stats() {
      const date = hls.playingDate;
      const details = hls.levels && hls.levels[hls.currentLevel >= 0 ? hls.currentLevel : 0]?.details;
      return {
        now: Date.now(),
        currentTime: video.currentTime,
        readyState: video.readyState,
        paused: video.paused,
        width: video.videoWidth,
        height: video.videoHeight,
        playingDate: date ? date.getTime() : null,
        latency: Number.isFinite(hls.latency) ? hls.latency : null,
        targetLatency: Number.isFinite(hls.targetLatency) ? hls.targetLatency : null,
        playbackRate: video.playbackRate,
        lowLatency: details ? details.canBlockReload && details.partList !== null : null,
        dropped: video.getVideoPlaybackQuality().droppedVideoFrames,
        stalls: state.stalls,
        fatal: state.fatal,
        errors: [...state.errors],
        warnings: [...state.warnings],
      };
    },
    /** The picture on screen now: how much of it is not black, and a checksum of its pixels. */
    picture() {
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let lit = 0;
      let sum = 0;
      for (let i = 0; i < data.length; i += 4) {
        const v = data[i] + data[i + 1] + data[i + 2];
        if (v > 60) lit++;
        sum = (sum * 31 + v) % 1000000007;
      }
      return { lit: lit / (data.length / 4), sum };
    },
  };
</script>
`;

/**
 * Answers for the player page and hls.js at `origin` (scheme, host and port) in `page`; every
 * other request goes to the network. Returns the page's URL, with `?token=` when given.
 */
export async function routeHlsPage(page, origin, { token = null } = {}) {
  await page.route((url) => url.origin === origin && url.pathname === PAGE_PATH, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }));
  await page.route((url) => url.origin === origin && url.pathname === SCRIPT_PATH, (route) =>
    route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: HLS_SCRIPT }));
  return `${origin}${PAGE_PATH}${token === null ? '' : `?token=${encodeURIComponent(token)}`}`;
}

/** The player's figures (see stats() in the page) with the live latency, now − playingDate, in ms. */
export async function hlsStats(page) {
  const s = await page.evaluate(() => window.hlsTest.stats());
  return { ...s, latencyMs: s.playingDate === null ? null : s.now - s.playingDate };
}
