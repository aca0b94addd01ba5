// The viewer's source folder served as it is (document-root=web/), the other way than the
// files built into the element: the browser loads viewer.css and each module of web/js/ from
// the folder, unversioned. Run through ./run.sh with the other tests.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { CHROMIUM, WEB_DIR, freePort, startSink, stopAll, waitFor } from './helpers.mjs';

let browser;
let sink;

before(async () => {
  sink = await startSink({ port: await freePort(), sinkProps: [`document-root=${WEB_DIR}`] });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stopAll();
});

describe('viewer loaded from document-root=web/', () => {
  it('runs with nothing but its explicit imports', { timeout: 20000 }, async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      const errors = [];
      const loaded = [];
      page.on('pageerror', (err) => errors.push(String(err)));
      page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
      page.on('response', (res) => loaded.push(new URL(res.url()).pathname));
      await page.goto(`http://127.0.0.1:${sink.port}/`, { waitUntil: 'load' });

      const modules = readdirSync(path.join(WEB_DIR, 'js')).filter((f) => f.endsWith('.js'));
      assert.deepEqual(loaded.filter((p) => p.startsWith('/js/')).sort(), modules.map((f) => `/js/${f}`).sort());
      assert.ok(loaded.includes('/viewer.css'), 'the stylesheet was not loaded');

      await waitFor('10 pictures drawn', async () => {
        assert.deepEqual(errors, []);
        return (await page.evaluate(() => window.wsjpegViewer.stats())).drawn >= 10;
      });
      await waitFor('a latency figure', async () => /^[\d.]+ ms$/.test(await page.locator('#latency').textContent()));
      assert.equal(await page.locator('#status-text').textContent(), 'Connected');
      await page.keyboard.press('p');
      await waitFor('paused', async () => (await page.locator('#pause-label').textContent()) === 'Resume');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
