// The page's latency, capture → on screen, for its three ways of showing the camera — H.264
// through WebCodecs, H.264 through Media Source Extensions, JPEG — taken in turn from one
// pipeline, on loopback and through a shaped link. A benchmark, not a test: run it on a quiet
// machine through `web/tests/run.sh --bench [--rounds N] [--seconds S] [--rates none,10mbit]`
// (as root: the link is a veth pair into a network namespace of its own, shaped with tc).
//
// Loopback: Chromium on the host, the page from 127.0.0.1 (a secure context, so WebCodecs); the
// MSE round removes VideoDecoder before the page loads. Through the link: Chromium inside the
// namespace, the page from the host's veth address (not a secure context, so MSE); the WebCodecs
// round runs a second Chromium told to treat that origin as secure.

import { chromium } from 'playwright-core';

import {
  cliOption, createLanLink, freePort, median, percentile, sleep, startH264Sink, stopAll, waitFor,
} from './helpers.mjs';

const option = (name, fallback) => cliOption(process.argv.slice(2), name, fallback);
const ROUNDS = Number(option('rounds', 3));
const SECONDS = Number(option('seconds', 8));
const RATES = option('rates', 'none,10mbit').split(',');
const PATHS = ['webcodecs', 'mse', 'jpeg'];
const BROWSER_ARGS = ['--no-sandbox', '--disable-dev-shm-usage'];

function noVideoDecoder() {
  delete window.VideoDecoder;
}


/** Opens the page on one path, lets it settle, and reads its latency figure twice a second. */
async function measure(browser, url, path) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    if (path === 'mse') await context.addInitScript(noVideoDecoder);
    const page = await context.newPage();
    await page.goto(path === 'jpeg' ? `${url}?codec=jpeg` : url, { waitUntil: 'load' });
    const stats = () => page.evaluate(() => window.wsjpegViewer.stats());
    const wanted = path === 'jpeg' ? { codec: 'jpeg', path: '' } : { codec: 'h264', path };
    await waitFor(`the page on ${path}`, async () => {
      const s = await stats();
      return s.codec === wanted.codec && s.codecPath === wanted.path && s.drawn > 30 && s.latencyMs !== null;
    }, { timeout: 20000 });
    await sleep(2000);
    const first = await stats();
    const samples = [];
    for (let i = 0; i < SECONDS * 2; i++) {
      await sleep(500);
      const s = await stats();
      if (Number.isFinite(s.latencyMs)) samples.push(s.latencyMs);
    }
    const last = await stats();
    if (last.codecPath !== wanted.path || last.codec !== wanted.codec) {
      throw new Error(`the page left ${path} for ${last.codec}/${last.codecPath}: ${last.codecNote}`);
    }
    return { samples, drawn: last.drawn - first.drawn };
  } finally {
    await context.close();
  }
}

async function main() {
  const link = createLanLink();
  if (link.skip) throw new Error(`the benchmark needs its network namespace: ${link.skip}`);
  const browsers = [];
  try {
    const sink = await startH264Sink({ port: await freePort(), address: '0.0.0.0' });
    const loopbackUrl = `http://127.0.0.1:${sink.port}/`;
    const lanUrl = `http://${link.hostIp}:${sink.port}/`;
    const host = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: BROWSER_ARGS });
    const lan = await chromium.launch({ executablePath: link.chromium, args: BROWSER_ARGS });
    const lanSecure = await chromium.launch({
      executablePath: link.chromium,
      args: [...BROWSER_ARGS, `--unsafely-treat-insecure-origin-as-secure=${lanUrl.slice(0, -1)}`],
    });
    browsers.push(host, lan, lanSecure);

    const results = {}; // rate → path → [{ samples, drawn }]
    let shaped = 'none';
    for (let round = 1; round <= ROUNDS; round++) {
      for (const rate of RATES) {
        if (rate !== shaped) link.shape(rate === 'none' ? null : rate);
        shaped = rate;
        // Each round starts with another path, so no path always runs first or last.
        const order = PATHS.map((_, i) => PATHS[(i + round - 1) % PATHS.length]);
        for (const path of order) {
          const [browser, url] = rate === 'none'
            ? [host, loopbackUrl]
            : [path === 'webcodecs' ? lanSecure : lan, lanUrl];
          const result = await measure(browser, url, path);
          ((results[rate] ||= {})[path] ||= []).push(result);
          console.log(`round ${round}, ${rate === 'none' ? 'loopback' : rate}, ${path}: ` +
            `latency p50 ${median(result.samples).toFixed(1)} ms, p90 ${percentile(result.samples, 0.9).toFixed(1)} ms, ` +
            `${(result.drawn / SECONDS).toFixed(1)} pictures/s`);
        }
      }
    }
    if (shaped !== 'none') link.shape(null);

    console.log(`\n| link | path | latency p50 (runs) | p90 of all samples | pictures/s |`);
    console.log('|---|---|---|---|---|');
    for (const rate of RATES) {
      for (const path of PATHS) {
        const runs = results[rate][path];
        const all = runs.flatMap((r) => r.samples);
        const p50s = runs.map((r) => median(r.samples).toFixed(1)).join(', ');
        console.log(`| ${rate === 'none' ? 'loopback' : rate} | ${path} | ${median(all).toFixed(1)} ms (${p50s}) | ` +
          `${percentile(all, 0.9).toFixed(1)} ms | ${median(runs.map((r) => r.drawn / SECONDS)).toFixed(1)} |`);
      }
    }
  } finally {
    for (const browser of browsers) await browser.close().catch(() => {});
    await stopAll();
    await link.stop();
  }
}

main().catch((err) => {
  console.error(`page-latency: ${err.stack || err}`);
  process.exit(1);
});
