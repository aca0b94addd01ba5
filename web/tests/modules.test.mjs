// Unit tests of the viewer's pure logic (web/js/), imported as the ES modules they are: no
// browser, no server. Run by ./run.sh with the browser tests, or alone:
//   node --test web/tests/modules.test.mjs

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { boxStyle, labelHue, labelRgb, objectCaption, scaleBox } from '../js/boxes.js';
import { CLOCK_KEEP, captureLatencyMs, clockSample, keepSample } from '../js/clock.js';
import { RETRY_FIRST_MS, RETRY_MAX_MS, lossReason, nextRetryDelay, refusalReason } from '../js/connection.js';
import { keyAction } from '../js/controls.js';
import { DETECTIONS_MAX_AGE_MS, createDetectionStore, parseDetections } from '../js/detections.js';
import {
  failureText, formatElapsed, formatFps, formatLatency, formatObjects, formatResolution, formatServerInfo,
  snapshotFileName,
} from '../js/format.js';
import { cameraState, closeReason, helloCamera, parseFrame, recordingState } from '../js/protocol.js';
import { elapsedSeconds, recordingAnnouncement } from '../js/recording.js';
import { fpsFromDrawTimes } from '../js/render.js';
import { announcement, health, overlayMessage, pictureStale, statusLine } from '../js/status.js';
import { endpointUrl, pageToken, streamUrl } from '../js/urls.js';

/** A "WSJ1" message: 24-byte header (or `headerLength` claimed), then `jpeg`. */
function metaFrame({ sequence, captureUs, jpeg = [0xff, 0xd8, 1, 2, 0xff, 0xd9], headerLength = 24 }) {
  const buffer = new ArrayBuffer(24 + jpeg.length);
  const view = new DataView(buffer);
  [0x57, 0x53, 0x4a, 0x31].forEach((b, i) => view.setUint8(i, b));
  view.setUint32(4, headerLength);
  view.setBigUint64(8, BigInt(sequence));
  view.setBigUint64(16, BigInt(captureUs));
  new Uint8Array(buffer, 24).set(jpeg);
  return buffer;
}

const bytes = (list) => new Uint8Array(list).buffer;

describe('clock offset', () => {
  it('takes the server time to be from halfway through the round trip', () => {
    // Sent at 1000 µs, answered 400 µs later; the server said 5,000,200 µs.
    assert.deepEqual(clockSample(1000, 5000200, 1400), { rtt: 400, offset: 5000200 - 1200 });
    // A server behind us gives a negative offset.
    assert.deepEqual(clockSample(10000000, 3000100, 10000200), { rtt: 200, offset: -7000000 });
  });

  it('drops garbage and implausible round trips', () => {
    assert.equal(clockSample(NaN, 5, 10), null);
    assert.equal(clockSample(1000, Infinity, 1200), null);
    assert.equal(clockSample(1000, 5000, 900), null, 'negative round trip');
    assert.equal(clockSample(0, 5000, 10e6 + 1), null, 'over 10 s');
    assert.notEqual(clockSample(0, 5000, 10e6), null, '10 s exactly is still taken');
  });

  it('keeps the newest samples and trusts the shortest round trip', () => {
    const samples = [];
    assert.equal(keepSample(samples, { rtt: 900, offset: 50 }), 50);
    assert.equal(keepSample(samples, { rtt: 300, offset: 70 }), 70);
    assert.equal(keepSample(samples, { rtt: 600, offset: 90 }), 70);
    for (let i = 0; i < CLOCK_KEEP; i++) keepSample(samples, { rtt: 1000 + i, offset: i });
    assert.equal(samples.length, CLOCK_KEEP);
    // The 300 µs sample has been pushed out: the best left is the oldest of the new ones.
    assert.equal(keepSample(samples, { rtt: 5000, offset: 99 }), 1);
  });

  it('measures latency on the server clock and refuses the implausible', () => {
    // Captured at server time 10,000,000 µs; the server is 7 s ahead; now is 3,040,000 µs here.
    assert.equal(captureLatencyMs(10000000, 7000000, 3040000), 40);
    assert.equal(captureLatencyMs(10000000, 0, 10000000 - 2e6), null, 'from the future');
    assert.equal(captureLatencyMs(0, 0, 700e6), null, 'ten minutes old');
  });
});

describe('meta header', () => {
  it('reads sequence numbers and capture times beyond 32 bits', () => {
    const frame = parseFrame(metaFrame({ sequence: 2 ** 40 + 5, captureUs: 1764150000123456 }));
    assert.equal(frame.sequence, 2 ** 40 + 5);
    assert.equal(frame.captureUs, 1764150000123456);
    assert.deepEqual([...frame.jpeg], [0xff, 0xd8, 1, 2, 0xff, 0xd9]);
  });

  it('takes a bare JPEG as it is', () => {
    const frame = parseFrame(bytes([0xff, 0xd8, 0xff, 0xd9]));
    assert.equal(frame.sequence, null);
    assert.equal(frame.captureUs, null);
    assert.equal(frame.jpeg.length, 4);
  });

  it('refuses what is neither', () => {
    assert.equal(parseFrame(bytes([1, 2, 3, 4])), null);
    assert.equal(parseFrame(bytes([0xff, 0xd8])), null, 'too short for a JPEG');
    assert.equal(parseFrame(metaFrame({ sequence: 1, captureUs: 1, headerLength: 20 })), null, 'header too short');
    assert.equal(parseFrame(metaFrame({ sequence: 1, captureUs: 1, headerLength: 30 })), null, 'header past the end');
  });
});

describe('protocol messages', () => {
  it('names the close codes', () => {
    assert.equal(closeReason(1001), 'The server stopped');
    assert.equal(closeReason(1013), 'The server has too many viewers');
    assert.equal(closeReason(1006), 'Connection lost');
  });

  it('reads the camera from hello in both shapes, and from status', () => {
    assert.deepEqual(helloCamera({ camera: 'error', message: 'unplugged' }), { state: 'error', message: 'unplugged' });
    assert.deepEqual(helloCamera({ camera: { state: 'streaming', message: null } }), { state: 'streaming', message: '' });
    assert.equal(helloCamera({ camera: null }), null);
    assert.deepEqual(cameraState(42, 'x'), { state: '', message: 'x' });
  });

  it('reads a recording message with every field typed', () => {
    assert.deepEqual(recordingState({ active: 'yes', control: true, started: null, format: 'mjpeg', error: null }),
      { active: false, control: true, started: '', format: 'mjpeg', error: '' });
  });
});

describe('reconnect backoff', () => {
  it('waits 2 s, then 1.5 times longer each time, up to 15 s', () => {
    const waits = [RETRY_FIRST_MS];
    while (waits.length < 8) waits.push(nextRetryDelay(waits[waits.length - 1]));
    assert.deepEqual(waits, [2000, 3000, 4500, 6750, 10125, 15000, 15000, 15000]);
    assert.equal(RETRY_MAX_MS, 15000);
  });

  it('says why a connection failed', () => {
    assert.equal(lossReason('The server stopped', true, true), 'The server stopped');
    assert.equal(lossReason('Connection lost', false, false), 'Cannot connect');
    assert.equal(lossReason('Connection lost', false, true), 'Cannot reach the server');
    assert.equal(refusalReason(401, false), 'Access denied: open this page with ?token=…');
    assert.equal(refusalReason(403, true), 'Access denied: the token is not accepted');
    assert.equal(refusalReason(503, false), 'The server is busy');
    assert.equal(refusalReason(200, false), '');
  });
});

describe('formatting', () => {
  it('writes elapsed times as m:ss or h:mm:ss', () => {
    assert.equal(formatElapsed(0), '0:00');
    assert.equal(formatElapsed(65), '1:05');
    assert.equal(formatElapsed(3599), '59:59');
    assert.equal(formatElapsed(3725), '1:02:05');
    assert.equal(elapsedSeconds(Date.parse('2026-01-01T10:00:00Z'), Date.parse('2026-01-01T10:01:05.900Z')), 65);
    assert.equal(elapsedSeconds(1000, 500), 0, 'never negative');
  });

  it('writes the figures', () => {
    assert.equal(formatLatency(4.26), '4.3 ms');
    assert.equal(formatLatency(42.6), '43 ms');
    assert.equal(formatFps(29.97), '30.0');
    assert.equal(formatFps(0), '—');
    assert.equal(formatResolution(1280, 720), '1280×720');
    assert.equal(formatResolution(0, 0), '—');
    assert.equal(formatObjects(2, 84.6), '2 · 85 ms');
    assert.equal(formatObjects(0, null), '0');
    assert.equal(formatObjects(null, 40), '—');
    assert.equal(formatServerInfo('wsjpeg', '0.1.0'), 'v0.1.0');
    assert.equal(formatServerInfo('scripted', ''), 'scripted');
  });

  it('names snapshots and failures', () => {
    assert.equal(snapshotFileName(new Date('2026-11-26T10:00:05.123Z')), 'wsjpeg-2026-11-26T10-00-05.jpg');
    assert.equal(failureText(Object.assign(new Error('x'), { name: 'AbortError' })), 'timed out');
    assert.equal(failureText(new Error('server answered 500')), 'server answered 500');
  });
});

describe('status line and overlay', () => {
  const base = {
    connection: 'connected', everConnected: true, healthy: true, reason: '', retrying: false, retryInMs: 0,
    camera: { state: 'streaming', message: '' }, userPaused: false, paused: false, hasPicture: true, quietMs: 40,
  };

  it('is green only while pictures arrive', () => {
    assert.equal(health(base), 'good');
    assert.equal(health({ ...base, quietMs: 3500 }), 'wait');
    assert.equal(pictureStale({ ...base, quietMs: 3500, paused: true }), false, 'paused pictures are not stale');
    assert.equal(health({ ...base, camera: { state: 'starting', message: '' } }), 'wait');
    assert.equal(health({ ...base, camera: { state: 'error', message: '' } }), 'bad');
    assert.equal(health({ ...base, connection: 'connecting' }), 'wait');
    assert.equal(health({ ...base, connection: 'disconnected' }), 'bad');
  });

  it('says what the connection and the camera are doing', () => {
    assert.deepEqual(statusLine(base), { text: 'Connected', camera: 'Camera live', cameraTitle: '', title: 'Live · wsjpeg' });
    assert.equal(statusLine({ ...base, quietMs: 5000 }).camera, 'No new picture');
    assert.equal(statusLine({ ...base, userPaused: true }).text, 'Connected (paused)');
    assert.deepEqual(statusLine({ ...base, connection: 'connecting', everConnected: false }),
      { text: 'Connecting…', camera: '', cameraTitle: '', title: 'Connecting · wsjpeg' });
    assert.equal(statusLine({ ...base, camera: { state: 'error', message: 'unplugged' } }).cameraTitle, 'unplugged');
  });

  it('explains over the picture, and is empty while all is well', () => {
    assert.deepEqual(overlayMessage(base), { text: '', spin: true });
    assert.equal(overlayMessage({ ...base, connection: 'disconnected', reason: 'Connection lost', retrying: true, retryInMs: 2100 }).text,
      'Connection lost — reconnecting in 3 s');
    assert.equal(overlayMessage({ ...base, connection: 'disconnected', retrying: true, retryInMs: -5 }).text,
      'Disconnected — reconnecting…');
    assert.deepEqual(overlayMessage({ ...base, userPaused: true, paused: true }),
      { text: 'Paused — press P or the Pause button to go live', spin: false });
    assert.equal(overlayMessage({ ...base, camera: { state: 'error', message: 'unplugged' } }).text,
      'Camera unavailable — retrying… (unplugged)');
    assert.equal(overlayMessage({ ...base, hasPicture: false }).text, 'Waiting for the first picture…');
    assert.equal(overlayMessage({ ...base, quietMs: 4400 }).text, 'No new picture for 4 s…');
  });

  it('tells screen readers about changes once', () => {
    assert.deepEqual(announcement(base, ''), { key: 'connected:streaming', message: 'Connected. Camera live' });
    assert.equal(announcement(base, 'connected:streaming'), null);
    assert.deepEqual(announcement({ ...base, camera: { state: 'error', message: '' } }, 'connected:streaming'),
      { key: 'connected:error', message: 'Camera unavailable — retrying…' });
    const lost = { ...base, connection: 'disconnected', healthy: false };
    assert.deepEqual(announcement(lost, 'connected:streaming'),
      { key: 'disconnected', message: 'Disconnected. Reconnecting automatically.' });
    assert.equal(announcement(lost, 'disconnected'), null, 'not on every retry');
    assert.deepEqual(announcement(base, 'disconnected'), { key: 'connected:streaming', message: 'Reconnected. Camera live' });
    assert.equal(announcement({ ...base, healthy: false }, ''), null, 'not before the server spoke');
  });
});

describe('recording announcements', () => {
  const idle = { active: false, control: true, started: '', format: '', error: '' };
  const active = { ...idle, active: true, started: '2026-11-26T10:00:00Z' };

  it('says start, stop and errors once', () => {
    assert.equal(recordingAnnouncement(null, active), 'Recording started.');
    assert.equal(recordingAnnouncement(active, active), '');
    assert.equal(recordingAnnouncement(active, idle), 'Recording stopped.');
    assert.equal(recordingAnnouncement(active, { ...idle, error: 'disk full' }), 'Recording stopped: disk full');
    assert.equal(recordingAnnouncement(idle, { ...idle, error: 'disk full' }), 'Recording error: disk full');
    assert.equal(recordingAnnouncement({ ...idle, error: 'disk full' }, { ...idle, error: 'disk full' }), '');
  });
});

describe('frames per second', () => {
  // Draw times, newest first, every `gap` ms up to `now`.
  const times = (count, gap, now) => Array.from({ length: count }, (_, i) => now - i * gap);

  it('counts over the window once it is full', () => {
    assert.equal(fpsFromDrawTimes(times(60, 33, 10000), 10000, true), 30);
  });

  it('reads the median interval while joining, not the burst', () => {
    // A burst of 5 frames 2 ms apart, then 10 at 30 fps.
    const t = [...times(10, 33.3, 10000), ...times(5, 2, 10000 - 10 * 33.3)];
    assert.ok(Math.abs(fpsFromDrawTimes(t, 10000, false) - 30) < 0.1);
    assert.equal(fpsFromDrawTimes(times(5, 33, 10000), 10000, false), 0, 'too few to say');
  });

  it('is 0 when the pictures stopped', () => {
    assert.equal(fpsFromDrawTimes(times(30, 33, 8000), 9500, true), 0);
    assert.equal(fpsFromDrawTimes([9000], 9000, true), 0);
  });
});

describe('URLs and keys', () => {
  it('builds server URLs relative to the page, with its token', () => {
    const page = 'https://cam.example/proxy/viewer/?token=t0k#x';
    const token = pageToken(new URL(page).search);
    assert.equal(token, 't0k');
    assert.equal(endpointUrl('snapshot.jpg', page, token).href, 'https://cam.example/proxy/viewer/snapshot.jpg?token=t0k');
    assert.equal(streamUrl(page, token), 'wss://cam.example/proxy/viewer/stream?meta=1&detections=1&token=t0k');
    assert.equal(streamUrl('http://127.0.0.1:3003/', null), 'ws://127.0.0.1:3003/stream?meta=1&detections=1');
  });

  it('maps S, P, F, D and Escape, and leaves other keys and form fields alone', () => {
    const key = (k, extra = {}) => keyAction({ key: k, target: { tagName: 'BODY' }, ...extra });
    assert.equal(key('s'), 'snapshot');
    assert.equal(key('P'), 'pause');
    assert.equal(key('f'), 'fullscreen');
    assert.equal(key('d'), 'detections');
    assert.equal(key('D'), 'detections');
    assert.equal(key('d', { target: { tagName: 'TEXTAREA' } }), null);
    assert.equal(key('Escape'), 'escape');
    assert.equal(key('x'), null);
    assert.equal(key('s', { ctrlKey: true }), null);
    assert.equal(key('p', { repeat: true }), null);
    assert.equal(key('f', { target: { tagName: 'INPUT' } }), null);
  });
});

describe('detections', () => {
  const person = { label: 'person', score: 0.91, box: [10, 20, 30, 40], id: 3 };
  // A parsed set for frame `frame` with `objects`.
  const set = (frame, objects = [person]) => parseDetections({ type: 'detections', frame, objects });

  it('reads a message, leaving out objects that cannot be drawn', () => {
    const parsed = parseDetections({
      type: 'detections', frame: 42, time: 1764150000123456, width: 640, height: 480,
      objects: [
        person,
        { label: 'cat', box: [1, 2, 3, 4] },
        { label: '', box: [1, 2, 3, 4] },
        { label: 'dog', box: [1, 2, 3] },
        { label: 'dog', box: [1, 2, -3, 4] },
        { label: 'dog', box: [1, 'x', 3, 4] },
        { label: 'dog', score: 7, id: 1.5, box: [0, 0, 1, 1] },
        null,
      ],
    });
    assert.deepEqual(parsed, {
      frame: 42, captureUs: 1764150000123456, width: 640, height: 480,
      objects: [
        { label: 'person', score: 0.91, box: [10, 20, 30, 40], id: 3 },
        { label: 'cat', score: null, box: [1, 2, 3, 4], id: null },
        { label: 'dog', score: null, box: [0, 0, 1, 1], id: null },
      ],
    });
    assert.deepEqual(parseDetections({ type: 'detections', frame: 1, objects: [] }),
      { frame: 1, captureUs: null, width: null, height: null, objects: [] });
    assert.equal(parseDetections({ type: 'detections', objects: [] }), null, 'no frame');
    assert.equal(parseDetections({ type: 'detections', frame: 1 }), null, 'no objects');
    assert.equal(parseDetections({ type: 'detections', frame: -1, objects: [] }), null);
  });

  it('puts detections for frame M over frame N when M <= N', () => {
    const store = createDetectionStore();
    const s10 = set(10);
    store.receive(s10, 0);
    assert.equal(store.current(10, 5).set, s10);
    assert.equal(store.current(14, 5).set, s10, 'a detector that lags is still shown');
    assert.equal(store.current(9, 5), null, 'not over a picture older than their frame');
    assert.equal(store.current(null, 5), null, 'no picture, no boxes');
  });

  it('keeps detections that come ahead of their frame until it is drawn', () => {
    const store = createDetectionStore();
    const s10 = set(10);
    const s11 = set(11, [{ ...person, box: [50, 50, 10, 10] }]);
    store.receive(s10, 0);
    store.receive(s11, 20); // just before frame 11
    assert.equal(store.current(10, 25).set, s10, 'frame 10 keeps its own boxes');
    assert.equal(store.current(11, 40).set, s11);
    assert.equal(store.current(12, 40).set, s11, 'frame 11 skipped: still the newest that applies');
  });

  it('lets the newest that applies win', () => {
    const store = createDetectionStore();
    const pushed = [set(3), set(5), set(8)];
    pushed.forEach((s, i) => store.receive(s, i * 10));
    assert.equal(store.current(9, 30).set, pushed[2]);
    assert.equal(store.current(6, 30).set, pushed[1]);
  });

  it('drops detections 1 s after they arrived, by the page clock', () => {
    const store = createDetectionStore();
    assert.equal(DETECTIONS_MAX_AGE_MS, 1000);
    store.receive(set(10), 5000);
    const entry = store.current(10, 5999);
    assert.equal(entry.expiresAt, 6000);
    assert.equal(entry.arrivedAt, 5000);
    assert.equal(store.current(10, 6000), null);
    assert.equal(store.current(30, 9000), null, 'not even over newer pictures');
    // An older set that still applies does not come back when the newest expires.
    store.receive(set(11), 5500);
    assert.equal(store.current(10, 6200), null);
    // A set that waited for its frame counts from its arrival, not from the frame's.
    store.receive(set(40), 7000);
    assert.equal(store.current(39, 7500), null);
    assert.equal(store.current(40, 7999).set.frame, 40);
    assert.equal(store.current(40, 8000), null);
  });

  it('clears the boxes with an empty set, once its frame is shown', () => {
    const store = createDetectionStore();
    store.receive(set(10), 0);
    store.receive(set(11, []), 20);
    assert.equal(store.objects(10, 30).length, 1);
    assert.deepEqual(store.objects(11, 40), []);
    assert.equal(store.current(11, 40).set.objects.length, 0, 'an empty set applies: no objects');
    store.receive(set(12), 50);
    store.clear();
    assert.deepEqual(store.objects(12, 60), []);
    assert.equal(store.current(12, 60), null);
  });

  it('keeps only a few sets', () => {
    const store = createDetectionStore();
    for (let i = 100; i < 200; i++) store.receive(set(i), i);
    assert.equal(store.current(150, 200), null, 'long gone');
    assert.equal(store.current(199, 200).set.frame, 199);
  });

  it('gives each label a colour of its own, always the same', () => {
    assert.equal(labelHue('person'), labelHue('person'));
    assert.deepEqual(labelRgb('person'), labelRgb('person'));
    assert.notEqual(labelHue('person'), labelHue('persons'));
    const hues = new Set(['person', 'car', 'dog', 'cat', 'bicycle', 'face'].map(labelHue));
    assert.equal(hues.size, 6, 'common labels get different hues');
    for (const label of ['person', 'car', '', 'ü', 'x'.repeat(64)]) {
      const hue = labelHue(label);
      assert.ok(Number.isInteger(hue) && hue >= 0 && hue < 360, `hue ${hue} for "${label}"`);
      const rgb = labelRgb(label);
      assert.ok(rgb.every((c) => Number.isInteger(c) && c >= 0 && c <= 255), `colour ${rgb}`);
      assert.ok(Math.max(...rgb) - Math.min(...rgb) > 150, `"${label}" is not a strong colour: ${rgb}`);
    }
  });

  it('scales boxes from the detections\' frame size to the canvas', () => {
    assert.deepEqual(scaleBox([10, 20, 30, 40], { width: 640, height: 480 }, { width: 640, height: 480 }), [10, 20, 30, 40]);
    assert.deepEqual(scaleBox([10, 20, 30, 40], { width: 320, height: 240 }, { width: 1280, height: 720 }), [40, 60, 120, 120]);
    assert.deepEqual(scaleBox([10, 20, 30, 40], { width: null, height: null }, { width: 1280, height: 720 }), [10, 20, 30, 40]);
  });

  it('writes captions and sizes lines and text in proportion to the frame', () => {
    assert.equal(objectCaption({ label: 'person', score: 0.914 }), 'person 91%');
    assert.equal(objectCaption({ label: 'cat', score: null }), 'cat');
    const small = boxStyle(640, 480);
    const large = boxStyle(1920, 1080);
    assert.ok(small.lineWidth >= 2 && small.fontPx >= 11);
    assert.ok(Math.abs(large.fontPx / small.fontPx - 1080 / 480) < 0.1, 'font in proportion');
    assert.ok(Math.abs(large.lineWidth / small.lineWidth - 1080 / 480) < 0.3, 'line in proportion');
    assert.deepEqual(boxStyle(480, 640), small, 'portrait the same as landscape');
  });
});
