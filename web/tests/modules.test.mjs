// Unit tests of the viewer's pure logic (web/js/), imported as the ES modules they are: no
// browser, no server. Run by ./run.sh with the browser tests, or alone:
//   node --test web/tests/modules.test.mjs

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BITRATE_WINDOW_MS, createBitrateMeter } from '../js/bitrate.js';
import { boxStyle, labelHue, labelRgb, objectCaption, scaleBox } from '../js/boxes.js';
import { CLOCK_KEEP, captureLatencyMs, clockSample, keepSample } from '../js/clock.js';
import {
  FALLBACK_H264_CODEC, chooseCodec, codecName, codecPreference, codecTitle, codecToCheck, mp4MimeOf, nextPreference,
  preferenceName, shownName,
} from '../js/codecs.js';
import { RETRY_FIRST_MS, RETRY_MAX_MS, lossReason, nextRetryDelay, refusalReason } from '../js/connection.js';
import { keyAction } from '../js/controls.js';
import { DETECTIONS_MAX_AGE_MS, SAME_CAPTURE_US, createDetectionStore, parseDetections } from '../js/detections.js';
import {
  failureText, formatBitrate, formatElapsed, formatFps, formatLatency, formatObjects, formatResolution,
  formatServerInfo, snapshotFileName,
} from '../js/format.js';
import { MAX_DECODE_QUEUE, createKeyframeGate } from '../js/keyframes.js';
import {
  AHEAD_FRAMES, BEHIND_LIMIT_S, MIN_REMOVE_S, SETTLE_MS, aheadOfPlayhead, liveSeekTarget, playedOutEnd, rangesOf,
} from '../js/liveedge.js';
import { parseSegment } from '../js/mp4.js';
import {
  cameraState, closeReason, h264DecoderConfig, helloCamera, parseAccessUnit, parseFrame, recordingState,
} from '../js/protocol.js';
import { elapsedSeconds, recordingAnnouncement } from '../js/recording.js';
import { fpsFromCaptureTimes, fpsFromDrawTimes } from '../js/render.js';
import { announcement, health, overlayMessage, pictureStale, statusLine } from '../js/status.js';
import { createLinkHealth, judgeLink, slowAdvice } from '../js/linkhealth.js';
import { TLS_HELP_URL, noticeFor } from '../js/notice.js';
import { addressList, rtspOf } from '../js/help.js';
import { formatBytes, recordingRows } from '../js/recordings.js';
import { endpointUrl, pageToken, streamUrl, withoutToken } from '../js/urls.js';

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

/** An H.264 message: the 32-byte header (or `headerLength` claimed) with `flags`, then `unit`. */
function h264Unit({ sequence, captureUs, flags = 0, unit = [0, 0, 0, 1, 0x65, 0x88], headerLength = 32 }) {
  const buffer = new ArrayBuffer(32 + unit.length);
  const view = new DataView(buffer);
  [0x57, 0x53, 0x4a, 0x31].forEach((b, i) => view.setUint8(i, b));
  view.setUint32(4, headerLength);
  view.setBigUint64(8, BigInt(sequence));
  view.setBigUint64(16, BigInt(captureUs));
  view.setUint8(24, flags);
  new Uint8Array(buffer, 32).set(unit);
  return buffer;
}

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

describe('H.264 header', () => {
  it('reads the sequence number, the capture time and the keyframe flag, and finds the unit after 32 bytes', () => {
    const key = parseAccessUnit(h264Unit({ sequence: 2 ** 40 + 7, captureUs: 1764150000123456, flags: 1 }));
    assert.equal(key.sequence, 2 ** 40 + 7);
    assert.equal(key.captureUs, 1764150000123456);
    assert.equal(key.keyframe, true);
    assert.deepEqual([...key.data], [0, 0, 0, 1, 0x65, 0x88]);
    const delta = parseAccessUnit(h264Unit({ sequence: 8, captureUs: 5, flags: 0, unit: [0, 0, 1, 0x41] }));
    assert.equal(delta.keyframe, false);
    assert.deepEqual([...delta.data], [0, 0, 1, 0x41]);
  });

  it('looks at bit 0 of the flags only, and skips a longer header', () => {
    assert.equal(parseAccessUnit(h264Unit({ sequence: 1, captureUs: 1, flags: 0xfe })).keyframe, false);
    assert.equal(parseAccessUnit(h264Unit({ sequence: 1, captureUs: 1, flags: 0x03 })).keyframe, true);
    const longer = parseAccessUnit(h264Unit({ sequence: 1, captureUs: 1, headerLength: 34 }));
    assert.deepEqual([...longer.data], [0, 1, 0x65, 0x88]);
  });

  it('refuses what is not an access unit behind the header', () => {
    assert.equal(parseAccessUnit(bytes([0xff, 0xd8, 0xff, 0xd9])), null, 'a bare JPEG');
    assert.equal(parseAccessUnit(metaFrame({ sequence: 1, captureUs: 1 })), null, 'a JPEG with the 24-byte header');
    assert.equal(parseAccessUnit(h264Unit({ sequence: 1, captureUs: 1, headerLength: 38 })), null, 'header past the end');
    assert.equal(parseAccessUnit(bytes(new Array(40).fill(0))), null, 'no magic');
  });

  it('turns the h264 message into a decoder configuration', () => {
    assert.deepEqual(h264DecoderConfig({ type: 'h264', codec: 'avc1.42C01F', width: 640, height: 360 }),
      { codec: 'avc1.42C01F', optimizeForLatency: true, codedWidth: 640, codedHeight: 360 });
    assert.deepEqual(h264DecoderConfig({ codec: 'avc1.640029', width: null, height: null }),
      { codec: 'avc1.640029', optimizeForLatency: true });
    assert.equal(h264DecoderConfig({ codec: null, width: 640, height: 360 }), null);
    assert.equal(h264DecoderConfig({ codec: 'vp8' }), null);
  });
});

describe('H.264 keyframes', () => {
  const unit = (sequence, keyframe = false) => ({ sequence, keyframe });

  it('starts at a keyframe and then decodes every unit in order', () => {
    const gate = createKeyframeGate();
    assert.equal(gate.waiting, true);
    assert.equal(gate.admit(unit(5), 0), false, 'a delta before any keyframe');
    assert.equal(gate.admit(unit(6, true), 0), true);
    for (let s = 7; s < 40; s++) assert.equal(gate.admit(unit(s), 1), true, `unit ${s}`);
    assert.equal(gate.waiting, false);
  });

  it('waits for the next keyframe after a gap in the sequence numbers', () => {
    const gate = createKeyframeGate();
    gate.admit(unit(1, true), 0);
    gate.admit(unit(2), 0);
    assert.equal(gate.admit(unit(4), 0), false, 'unit 3 was lost: 4 refers to it');
    assert.equal(gate.waiting, true);
    assert.equal(gate.admit(unit(5), 0), false, 'nor anything after, in order or not');
    assert.equal(gate.admit(unit(6, true), 0), true, 'the next keyframe');
    assert.equal(gate.admit(unit(7), 0), true);
    // The server drops a slow viewer straight to a keyframe: the gap and the keyframe together.
    assert.equal(gate.admit(unit(30, true), 0), true);
    assert.equal(gate.admit(unit(31), 0), true);
  });

  it('stops decoding while the decoder is behind, until a keyframe finds it caught up', () => {
    const gate = createKeyframeGate();
    gate.admit(unit(1, true), 0);
    assert.equal(gate.admit(unit(2), MAX_DECODE_QUEUE), true, 'at the limit is not behind');
    assert.equal(gate.admit(unit(3), MAX_DECODE_QUEUE + 1), false);
    assert.equal(gate.admit(unit(4), 0), false, 'the queue drained, but 4 refers to 3');
    assert.equal(gate.admit(unit(5, true), MAX_DECODE_QUEUE + 3), false, 'a keyframe while still behind');
    assert.equal(gate.admit(unit(6), 2), false);
    assert.equal(gate.admit(unit(7, true), 2), true);
  });

  it('starts over at a keyframe after restart, without taking the jump for a gap', () => {
    const gate = createKeyframeGate();
    gate.admit(unit(1, true), 0);
    gate.admit(unit(2), 0);
    gate.restart();
    assert.equal(gate.admit(unit(90), 0), false);
    assert.equal(gate.admit(unit(91, true), 0), true);
    assert.equal(gate.admit(unit(92), 0), true);
  });
});

describe('codec choice', () => {
  const works = {
    preference: 'auto', secure: true, decoder: true, mse: true, offered: true, supported: true, mseSupported: true, failure: '',
  };
  const choose = (facts) => chooseCodec({ ...works, ...facts });
  const jpeg = (why = '', note = '') => ({ codec: 'jpeg', path: '', why, note });
  const h264 = (path) => ({ codec: 'h264', path, why: '', note: '' });
  // A page from a LAN address over plain http: no WebCodecs there, MSE is all H.264 can use.
  const lan = { secure: false, decoder: false, supported: null };

  it('takes WebCodecs first, then Media Source Extensions, then JPEG', () => {
    assert.deepEqual(choose({}), h264('webcodecs'));
    assert.deepEqual(choose(lan), h264('mse'));
    assert.deepEqual(choose({ secure: false }), h264('mse'), 'VideoDecoder is not there outside a secure page');
    assert.deepEqual(choose({ supported: false }), h264('mse'), 'WebCodecs cannot decode this stream, MSE can');
    assert.deepEqual(choose({ mse: false }), h264('webcodecs'));
    assert.deepEqual(choose({ ...lan, mse: false }),
      jpeg('WebCodecs needs a secure page (https, or localhost) and this browser has no Media Source Extensions'));
    assert.deepEqual(choose({ decoder: false, mse: false }),
      jpeg('this browser can play H.264 neither with WebCodecs nor with Media Source Extensions'));
    assert.deepEqual(choose({ ...lan, mseSupported: false }), jpeg('this browser cannot decode this H.264 stream'));
    assert.deepEqual(choose({ supported: false, mseSupported: false }), jpeg('this browser cannot decode this H.264 stream'));
  });

  it('takes H.264 by itself only when everything says it works', () => {
    const table = [
      [{ offered: null }, 'before any hello'],
      [{ supported: null }, 'isConfigSupported has not answered yet'],
      [{ ...lan, mseSupported: null }, 'isTypeSupported has not been asked yet'],
    ];
    for (const [facts, why] of table) {
      assert.deepEqual(choose(facts), jpeg(), `auto: ${why}`);
    }
    assert.deepEqual(choose({ offered: false }), jpeg(), 'a server without H.264 needs no word');
    assert.deepEqual(choose({ failure: 'EncodingError: Decoding error.' }),
      jpeg('H.264 failed in this browser (EncodingError: Decoding error.)'), 'it failed on this page before');
  });

  it('stays on JPEG when JPEG is asked for, whatever else is true', () => {
    assert.deepEqual(choose({ preference: 'jpeg' }), jpeg());
    assert.deepEqual(choose({ preference: 'jpeg', ...lan }), jpeg());
  });

  it('tries a forced H.264 while something is unknown, and says why when it cannot work', () => {
    assert.deepEqual(choose({ preference: 'h264', offered: null, supported: null }), h264('webcodecs'));
    assert.deepEqual(choose({ preference: 'h264', supported: null }), h264('webcodecs'));
    assert.deepEqual(choose({ preference: 'h264' }), h264('webcodecs'));
    assert.deepEqual(choose({ preference: 'h264', ...lan, offered: null, mseSupported: null }), h264('mse'));
    const notes = [
      [{ offered: false }, 'the server offers no H.264'],
      [{ supported: false, mseSupported: false }, 'this browser cannot decode this H.264 stream'],
      [{ ...lan, mse: false, offered: null },
        'WebCodecs needs a secure page (https, or localhost) and this browser has no Media Source Extensions'],
      [{ decoder: false, mse: false }, 'this browser can play H.264 neither with WebCodecs nor with Media Source Extensions'],
      [{ failure: 'no picture' }, 'H.264 failed in this browser (no picture)'],
    ];
    for (const [facts, why] of notes) {
      assert.deepEqual(choose({ preference: 'h264', ...facts }), jpeg(why, `Showing JPEG: ${why}`));
    }
  });

  it('names what is shown, and why, for the Codec figure', () => {
    assert.equal(shownName('jpeg', ''), 'JPEG');
    assert.equal(shownName('h264', 'webcodecs'), 'H.264');
    assert.equal(shownName('h264', 'mse'), 'H.264 MSE');
    assert.equal(codecTitle(h264('webcodecs'), true), 'H.264, decoded by this browser (WebCodecs)');
    assert.equal(codecTitle(h264('mse'), false),
      "H.264, played by this browser's video player (Media Source Extensions): WebCodecs needs a secure page (https, or localhost)");
    assert.equal(codecTitle(h264('mse'), true), "H.264, played by this browser's video player (Media Source Extensions)");
    assert.equal(codecTitle(jpeg(), false), 'Pictures come as JPEG');
    assert.equal(codecTitle(jpeg('the server offers no H.264'), false), 'Showing JPEG: the server offers no H.264');
    assert.equal(mp4MimeOf('avc1.42C01F'), 'video/mp4; codecs="avc1.42C01F"');
  });

  it('reads ?codec= and cycles Auto, JPEG, H.264', () => {
    assert.equal(codecPreference(''), 'auto');
    assert.equal(codecPreference('?codec=jpeg'), 'jpeg');
    assert.equal(codecPreference('?token=x&codec=H264'), 'h264');
    assert.equal(codecPreference('?codec=vp9'), 'auto');
    assert.equal(nextPreference('auto'), 'jpeg');
    assert.equal(nextPreference('jpeg'), 'h264');
    assert.equal(nextPreference('h264'), 'auto');
    assert.deepEqual(['auto', 'jpeg', 'h264'].map(preferenceName), ['Auto', 'JPEG', 'H.264']);
    assert.deepEqual(['jpeg', 'h264'].map(codecName), ['JPEG', 'H.264']);
  });

  it('checks the codec the server names, or Constrained Baseline before it has one', () => {
    assert.equal(codecToCheck({ codec: 'avc1.640029', width: 1280, height: 720 }), 'avc1.640029');
    assert.equal(codecToCheck({ codec: null, width: null, height: null }), FALLBACK_H264_CODEC);
    assert.equal(FALLBACK_H264_CODEC, 'avc1.42E01F');
  });
});

// ---- fragmented MP4, as the server writes it (media/fmp4.rs) -------------------------------------

/** A box: size, type, then the payload (arrays of bytes). */
function box(type, ...payload) {
  const body = payload.flatMap((p) => [...p]);
  const size = 8 + body.length;
  return [size >>> 24, (size >>> 16) & 255, (size >>> 8) & 255, size & 255, ...[...type].map((c) => c.charCodeAt(0)), ...body];
}
const u32 = (v) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const u64 = (v) => [...u32(Math.floor(v / 4294967296)), ...u32(v % 4294967296)];
const fullBox = (type, version, flags, ...payload) => box(type, [version, ...u32(flags).slice(1)], ...payload);
const bufferOf = (bytes) => new Uint8Array(bytes).buffer;

/** A moof + mdat of one sample, as the server makes it (or with the variations given). */
function fragmentBytes({
  sequence = 7, decodeUs = 1_700_000_000_123_456, durationUs = 33_333, keyframe = true, tfdtVersion = 1,
  tfhdDefaults = false, mdat = true,
} = {}) {
  const flags = keyframe ? 0x02000000 : 0x01010000;
  const tfhd = tfhdDefaults
    ? fullBox('tfhd', 0, 0x020028, u32(1), u32(durationUs), u32(flags))  // default duration and flags
    : fullBox('tfhd', 0, 0x020000, u32(1));
  const tfdt = tfdtVersion === 1 ? fullBox('tfdt', 1, 0, u64(decodeUs)) : fullBox('tfdt', 0, 0, u32(decodeUs));
  const trun = tfhdDefaults
    ? fullBox('trun', 0, 0x000201, u32(1), u32(0), u32(7))
    : fullBox('trun', 0, 0x000701, u32(1), u32(0), u32(durationUs), u32(7), u32(flags));
  const moof = box('moof', fullBox('mfhd', 0, 0, u32(sequence)), box('traf', tfhd, tfdt, trun));
  return mdat ? [...moof, ...box('mdat', [0, 0, 0, 3, 0x65, 0x88, 0x84])] : moof;
}

describe('fragmented MP4 messages', () => {
  it('reads a fragment: sequence, capture time, duration, keyframe', () => {
    assert.deepEqual(parseSegment(bufferOf(fragmentBytes())),
      { kind: 'fragment', sequence: 7, decodeUs: 1_700_000_000_123_456, durationUs: 33_333, keyframe: true });
    assert.equal(parseSegment(bufferOf(fragmentBytes({ keyframe: false }))).keyframe, false);
    assert.deepEqual(parseSegment(bufferOf(fragmentBytes({ tfdtVersion: 0, decodeUs: 90_000, sequence: 8 }))),
      { kind: 'fragment', sequence: 8, decodeUs: 90_000, durationUs: 33_333, keyframe: true });
  });

  it('takes the duration and flags from tfhd when trun does not have them', () => {
    const delta = parseSegment(bufferOf(fragmentBytes({ tfhdDefaults: true, keyframe: false, durationUs: 40_000 })));
    assert.equal(delta.durationUs, 40_000);
    assert.equal(delta.keyframe, false);
    assert.equal(parseSegment(bufferOf(fragmentBytes({ tfhdDefaults: true }))).keyframe, true);
  });

  it('knows an initialisation segment', () => {
    const init = [...box('ftyp', [...'iso6'].map((c) => c.charCodeAt(0)), u32(0)), ...box('moov', box('mvhd', u32(0)))];
    assert.deepEqual(parseSegment(bufferOf(init)), { kind: 'init' });
  });

  it('rejects what is not a fragment or an init segment', () => {
    const whole = fragmentBytes();
    assert.equal(parseSegment(bufferOf([])), null);
    assert.equal(parseSegment(bufferOf([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3])), null, 'a JPEG');
    assert.equal(parseSegment(bufferOf(whole.slice(0, whole.length - 3))), null, 'cut short');
    assert.equal(parseSegment(bufferOf(fragmentBytes({ mdat: false }))), null, 'no mdat');
    assert.equal(parseSegment(bufferOf(box('free', [1, 2, 3]))), null, 'neither');
    const tooBig = whole.slice();
    tooBig[3] += 50; // the moof claims more than there is
    assert.equal(parseSegment(bufferOf(tooBig)), null);
  });
});

describe('MSE live edge', () => {
  const frame = 1 / 30;

  it('lets a player within its limit play, and moves one that fell behind to the newest picture', () => {
    assert.equal(liveSeekTarget([], 0, frame), null, 'nothing buffered');
    assert.equal(liveSeekTarget([[10, 11]], 10.95, frame), null, 'within two frames');
    assert.equal(liveSeekTarget([[10, 11]], 11, frame), null, 'at the end: waiting for the next picture');
    assert.equal(liveSeekTarget([[10, 11]], 11 - BEHIND_LIMIT_S + 0.01, frame), null);
    assert.equal(liveSeekTarget([[10, 11]], 11 - BEHIND_LIMIT_S - 0.01, frame), 11 - frame, 'more than 150 ms behind');
    assert.equal(liveSeekTarget([[10.5, 11]], 0, frame), 11 - frame, 'a new player starts at the newest picture');
    assert.equal(liveSeekTarget([[10.99, 11]], 0, frame), 10.99, 'never before the newest range');
    assert.equal(liveSeekTarget([[5, 6], [8, 8.5]], 5.98, frame), 8.5 - frame, 'a gap: the server dropped to a keyframe');
    assert.equal(liveSeekTarget([[5, 6], [8, 8.5]], 6, frame), 8.5 - frame, 'waiting at the end of an older range');
    assert.equal(liveSeekTarget([[5, 6]], 9, frame), 6 - frame, 'far past the end');
  });

  it('jumps when it stays more than a few frames behind, not at once', () => {
    const time = 11 - (AHEAD_FRAMES + 1) * frame;
    assert.equal(aheadOfPlayhead([[10, 11]], time, frame), true);
    assert.equal(aheadOfPlayhead([[10, 11]], 11 - frame, frame), false);
    assert.equal(aheadOfPlayhead([], 0, frame), false);
    assert.equal(liveSeekTarget([[10, 11]], time, frame, 0), null);
    assert.equal(liveSeekTarget([[10, 11]], time, frame, SETTLE_MS - 1), null);
    assert.equal(liveSeekTarget([[10, 11]], time, frame, SETTLE_MS), 11 - frame);
  });

  it('removes what has been played, up to the keyframe the next pictures need', () => {
    assert.equal(playedOutEnd([], 3, [1, 2]), null);
    assert.equal(playedOutEnd([[0.2, 3.1]], 3, [0.2, 1.2, 2.2]), 2.2);
    assert.equal(playedOutEnd([[0.2, 3.1]], 2.1, [0.2, 1.2, 2.2]), 1.2, 'the picture on screen still needs 1.2');
    assert.equal(playedOutEnd([[0.2, 0.9]], 0.8, [0.2]), null, 'nothing before the keyframe of the picture on screen');
    assert.equal(playedOutEnd([[1, 1 + MIN_REMOVE_S + 0.3]], 1.6, [1, 1 + MIN_REMOVE_S - 0.01]), null, 'too little to bother');
    assert.equal(playedOutEnd([[5, 6], [8, 8.5]], 8.2, [5, 8]), 8, 'an older range entirely');
  });

  it('reads TimeRanges', () => {
    const ranges = { length: 2, start: (i) => [1, 5][i], end: (i) => [2, 6][i] };
    assert.deepEqual(rangesOf(ranges), [[1, 2], [5, 6]]);
  });
});

describe('bitrate', () => {
  it('counts the bytes of the last second', () => {
    const meter = createBitrateMeter();
    meter.restart(0);
    // 30 messages a second of 8,000 bytes: 1.92 Mbit/s.
    for (let i = 0; i <= 90; i++) meter.add(8000, Math.round((i * 1000) / 30));
    assert.equal(BITRATE_WINDOW_MS, 1000);
    const bps = meter.bitsPerSecond(3000);
    assert.equal(bps, 1.92e6);
    assert.equal(formatBitrate(bps), '1.9 Mbit/s');
  });

  it('reads right on a fresh connection, and says nothing in its first moments', () => {
    const meter = createBitrateMeter();
    assert.equal(meter.bitsPerSecond(0), null);
    meter.restart(10000);
    meter.add(50000, 10100);
    assert.equal(meter.bitsPerSecond(10200), null, 'too early to say');
    meter.add(50000, 10300);
    // 100,000 bytes in the 0.5 s since the start: 1.6 Mbit/s, not 0.8.
    assert.equal(meter.bitsPerSecond(10500), 1.6e6);
  });

  it('falls to 0 when the messages stop, and forgets the old connection on restart', () => {
    const meter = createBitrateMeter();
    meter.restart(0);
    for (let t = 0; t < 1000; t += 100) meter.add(1000, t);
    assert.equal(meter.bitsPerSecond(2500), 0);
    meter.restart(3000);
    meter.add(1000, 3100);
    assert.equal(meter.bitsPerSecond(3500), 16000);
  });

  it('writes kbit/s and Mbit/s', () => {
    assert.equal(formatBitrate(null), '—');
    assert.equal(formatBitrate(0), '0 kbit/s');
    assert.equal(formatBitrate(850400), '850 kbit/s');
    assert.equal(formatBitrate(999700), '1.0 Mbit/s');
    assert.equal(formatBitrate(9.96e6), '10 Mbit/s');
    assert.equal(formatBitrate(24.4e6), '24 Mbit/s');
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
    assert.equal(formatObjects(2, 84.6), '2 · found in 85 ms');
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
    const slow = { ...base, link: { slow: true, shownFps: 10.2, sourceFps: 30 } };
    assert.equal(health(slow), 'wait', 'a slow stream is not green');
    assert.equal(statusLine(slow).camera, 'Slow stream: 10 of 30 fps');
    assert.equal(statusLine(slow).title, 'Slow · wsjpeg');
    assert.equal(health({ ...slow, paused: true }), 'good', 'paused: nothing to judge');
  });

  it('says what the connection and the camera are doing', () => {
    assert.deepEqual(statusLine(base), { text: 'Connected', camera: 'Camera live', cameraTitle: '', title: 'Live · wsjpeg' });
    assert.equal(statusLine({ ...base, quietMs: 5000 }).camera, 'No new picture');
    assert.equal(statusLine({ ...base, userPaused: true }).text, 'Connected (paused)');
    assert.deepEqual(statusLine({ ...base, connection: 'connecting', everConnected: false }),
      { text: 'Connecting…', camera: '', cameraTitle: '', title: 'Connecting · wsjpeg' });
    assert.equal(statusLine({ ...base, camera: { state: 'error', message: 'unplugged' } }).cameraTitle, 'unplugged');
    assert.equal(statusLine({ ...base, connection: 'connecting', switchingTo: 'H.264' }).text, 'Switching to H.264…');
  });

  it('explains over the picture, and is empty while all is well', () => {
    assert.deepEqual(overlayMessage(base), { text: '', spin: true, retry: false });
    // Waiting out a failure: a countdown, no spinner (nothing is in progress), "Retry now".
    assert.deepEqual(overlayMessage({ ...base, connection: 'disconnected', reason: 'Connection lost', retrying: true, retryInMs: 2100 }),
      { text: 'Connection lost — trying again in 3 s', spin: false, retry: true });
    assert.deepEqual(overlayMessage({ ...base, connection: 'disconnected', retrying: true, retryInMs: -5 }),
      { text: 'Disconnected — reconnecting…', spin: true, retry: true });
    assert.deepEqual(overlayMessage({ ...base, userPaused: true, paused: true }),
      { text: 'Paused — press P or the Pause button to go live', spin: false, retry: false });
    assert.deepEqual(overlayMessage({ ...base, camera: { state: 'error', message: 'No camera at /dev/video9 — is it plugged in?' } }),
      { text: 'Camera unavailable: No camera at /dev/video9 — is it plugged in? The device tries again by itself.', spin: false, retry: false });
    assert.equal(overlayMessage({ ...base, camera: { state: 'error', message: 'unplugged' } }).text,
      'Camera unavailable: unplugged. The device tries again by itself.');
    assert.equal(overlayMessage({ ...base, hasPicture: false }).text, 'Waiting for the first picture…');
    assert.equal(overlayMessage({ ...base, quietMs: 4400 }).text, 'No new picture for 4 s…');
    // A codec switch keeps the picture as it is; without one yet, it says what happens.
    assert.equal(overlayMessage({ ...base, connection: 'connecting', switchingTo: 'JPEG' }).text, '');
    assert.equal(overlayMessage({ ...base, connection: 'connecting', switchingTo: 'JPEG', hasPicture: false }).text,
      'Reconnecting…');
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

  it('counts the camera\'s time with capture times: a burst drawn at once is not faster', () => {
    // 60 pictures captured 33.3 ms apart, however they were drawn: 30 fps.
    const captures = times(60, 33333, 50_000_000);
    assert.ok(Math.abs(fpsFromCaptureTimes(captures) - 30) < 0.1);
    // Every other picture passed over: 15.
    const halved = captures.filter((_, i) => i % 2 === 0);
    assert.ok(Math.abs(fpsFromCaptureTimes(halved) - 15) < 0.1);
    assert.equal(fpsFromCaptureTimes(captures.slice(0, 5)), 0, 'too few to say');
    assert.equal(fpsFromCaptureTimes(Array(10).fill(7)), 0, 'no span, no figure');
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
    assert.equal(streamUrl(page, token, 'h264'), 'wss://cam.example/proxy/viewer/stream?meta=1&detections=1&codec=h264&token=t0k');
    assert.equal(streamUrl('http://127.0.0.1:3003/', null, 'jpeg'), 'ws://127.0.0.1:3003/stream?meta=1&detections=1');
    assert.equal(streamUrl('http://192.168.1.20:3003/', null, 'h264', 'fmp4'),
      'ws://192.168.1.20:3003/stream?meta=1&detections=1&codec=h264&container=fmp4');
    assert.equal(streamUrl('http://192.168.1.20:3003/', null, 'jpeg', 'fmp4'), 'ws://192.168.1.20:3003/stream?meta=1&detections=1',
      'a container only for H.264');
  });

  it('maps S, P, F, D and Escape, and leaves other keys and form fields alone', () => {
    const key = (k, extra = {}) => keyAction({ key: k, target: { tagName: 'BODY' }, ...extra });
    assert.equal(key('s'), 'snapshot');
    assert.equal(key('P'), 'pause');
    assert.equal(key('f'), 'fullscreen');
    assert.equal(key('d'), 'detections');
    assert.equal(key('D'), 'detections');
    assert.equal(key('c'), 'codec');
    assert.equal(key('C'), 'codec');
    assert.equal(key('?'), 'help');
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

  it('matches frames of another stream by capture time, as the server does', () => {
    const store = createDetectionStore(DETECTIONS_MAX_AGE_MS, 'time');
    // Frames 33 ms apart; the detections name JPEG frame 10, captured at 1,000,000 µs.
    const at = (captureUs, frame = 10) => parseDetections({ type: 'detections', frame, time: captureUs, objects: [person] });
    const s10 = at(1000000);
    store.receive(s10, 0);
    assert.equal(store.current(1000000, 5).set, s10, 'the same capture time');
    assert.equal(store.current(1000000 - SAME_CAPTURE_US, 5).set, s10, 'another sink read the clock a little apart');
    assert.equal(store.current(1033333, 5).set, s10, 'a later picture');
    assert.equal(store.current(966667, 5), null, 'not over the picture before');
    // Sequence numbers mean nothing here: frame 99 of the JPEG stream, captured earlier.
    const early = at(1100000 - 66667, 99);
    store.receive(early, 10);
    assert.equal(store.current(1100000, 20).set, early);
    // Without a capture time: the newest, over any picture, while it lasts.
    const untimed = parseDetections({ type: 'detections', frame: 1, objects: [] });
    store.receive(untimed, 30);
    assert.equal(store.current(5, 40).set, untimed);
    assert.equal(store.current(5, 1030), null);
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

describe('link health', () => {
  const samples = (fps, dropsPerSecond, seconds) => Array.from({ length: seconds * 2 + 1 }, (_, i) => ({
    atMs: i * 500, drawn: Math.round(i * fps / 2), dropped: Math.round(i * dropsPerSecond / 2),
  }));

  it('calls a stream slow when a fifth of the camera\'s pictures are lost, not before 3 s', () => {
    assert.deepEqual(judgeLink(samples(10, 20, 5), 30), { slow: true, shownFps: 10, sourceFps: 30 });
    assert.equal(judgeLink(samples(29, 1, 5), 30).slow, false, 'a picture lost now and then is no slow link');
    assert.equal(judgeLink(samples(10, 20, 2), 30), null, 'too early to say');
    assert.equal(judgeLink(samples(10, 20, 5), 0).sourceFps, 30, 'without the camera rate: shown plus lost');
  });

  it('stays slow a few seconds after it recovers, and starts over on reset', () => {
    const link = createLinkHealth();
    let t = 0;
    let drawn = 0;
    let dropped = 0;
    for (; t <= 5000; t += 500) {
      drawn += 5;
      dropped += 10;
      link.add(t, drawn, dropped, 30);
    }
    assert.equal(link.state.slow, true);
    for (; t <= 8000; t += 500) {
      drawn += 15;
      link.add(t, drawn, dropped, 30);
    }
    assert.equal(link.state.slow, true, 'held');
    for (; t <= 16000; t += 500) {
      drawn += 15;
      link.add(t, drawn, dropped, 30);
    }
    assert.equal(link.state.slow, false);
    link.reset();
    assert.equal(link.state, null);
  });

  it('advises what would help, for what is shown', () => {
    assert.match(slowAdvice({ codec: 'jpeg', h264Offered: true, h264Why: '' }), /press C/);
    assert.match(slowAdvice({ codec: 'jpeg', h264Offered: true, h264Why: 'WebCodecs needs a secure page' }), /but WebCodecs needs a secure page/);
    assert.match(slowAdvice({ codec: 'jpeg', h264Offered: false, h264Why: '' }), /lower resolution or JPEG quality/);
    assert.match(slowAdvice({ codec: 'h264', h264Offered: true, h264Why: '' }), /lower bitrate/);
  });
});

describe('the lasting note', () => {
  const base = { connected: true, live: true, link: null, codec: 'jpeg', h264Offered: true, h264Why: '', secure: false, bitsPerSecond: 27e6 };

  it('says nothing while all is well', () => {
    assert.equal(noticeFor(base), null);
    assert.equal(noticeFor({ ...base, codec: 'h264' }), null);
    assert.equal(noticeFor({ ...base, connected: false, link: { slow: true, shownFps: 1, sourceFps: 30 } }), null);
  });

  it('says why JPEG, at what rate, and how to get H.264', () => {
    const why = 'WebCodecs needs a secure page (https, or localhost) and this browser has no Media Source Extensions';
    assert.deepEqual(noticeFor({ ...base, h264Why: why }), {
      text: `Showing JPEG, 27 Mbit/s: ${why}. H.264 would need about a tenth of the bytes: open the https address to enable it.`,
      help: TLS_HELP_URL,
    });
    assert.deepEqual(noticeFor({ ...base, secure: true, h264Why: 'H.264 failed in this browser (decode error)' }),
      { text: 'Showing JPEG, 27 Mbit/s: H.264 failed in this browser (decode error).', help: '' });
  });

  it('puts a slow stream first', () => {
    const n = noticeFor({ ...base, link: { slow: true, shownFps: 10, sourceFps: 30 } });
    assert.match(n.text, /^Slow stream: 10 of 30 fps arrive\. H\.264 needs about a tenth of the bytes: press C/);
  });
});

describe('the addresses for other programs', () => {
  it('are relative to the page, with its token, HLS with H.264 and RTSP when the device has it', () => {
    const list = addressList({ pageHref: 'http://cam.local:3003/view/?token=a%20b', token: 'a b', h264Offered: true, rtsp: { port: 8554, path: '/cam0' } });
    assert.deepEqual(list.map((a) => a.url), [
      'http://cam.local:3003/view/stream.mjpg?token=a+b',
      'http://cam.local:3003/view/snapshot.jpg?token=a+b',
      'ws://cam.local:3003/view/stream?token=a+b',
      'http://cam.local:3003/view/hls/index.m3u8?token=a+b',
      'rtsp://wsjpeg:a%20b@cam.local:8554/cam0',
    ]);
    const plain = addressList({ pageHref: 'https://[::1]:3003/', token: null, h264Offered: false, rtsp: null });
    assert.deepEqual(plain.map((a) => a.url), ['https://[::1]:3003/stream.mjpg', 'https://[::1]:3003/snapshot.jpg', 'wss://[::1]:3003/stream']);
  });

  it('read the RTSP port from /status, or none', () => {
    assert.deepEqual(rtspOf({ source: { 'rtsp-port': 8554, 'rtsp-path': '/cam1' } }), { port: 8554, path: '/cam1' });
    assert.equal(rtspOf({ source: { device: '/dev/video0' } }), null);
    assert.equal(rtspOf(null), null);
    assert.equal(rtspOf({ source: { 'rtsp-port': 8554, 'rtsp-path': 'cam0' } }), null);
  });
});

describe('the token in the address bar', () => {
  it('goes, and the rest of the address stays', () => {
    assert.equal(withoutToken('http://cam:3003/?token=s3cret&codec=h264#x'), 'http://cam:3003/?codec=h264#x');
    assert.equal(withoutToken('http://cam:3003/view/?token=s3cret'), 'http://cam:3003/view/');
    assert.equal(withoutToken('http://cam:3003/'), 'http://cam:3003/');
  });
});

describe('the recordings drawer', () => {
  const url = (path) => `http://cam/${path}?token=t`;
  const time = (d) => d.toISOString();

  it('lists time, length and size; MP4 plays, MJPEG downloads; detections when kept', () => {
    const rows = recordingRows({ recordings: [
      { name: '2026-11-25T03-12-00Z_cam0.mp4', start: '2026-11-25T03:12:00Z', duration_seconds: 61.6, size: 15_400_000, in_progress: true,
        detections: '2026-11-25T03-12-00Z_cam0.detections.jsonl' },
      { name: '2026-11-25T03-11-00Z_cam0.mkv', start: '2026-11-25T03:11:00Z', duration_seconds: 60, size: 812_000, in_progress: false },
    ] }, url, time);
    assert.deepEqual(rows[0], {
      name: '2026-11-25T03-12-00Z_cam0.mp4', when: '2026-11-25T03:12:00.000Z', length: '1:02', size: '15 MB',
      playable: true, inProgress: true, file: 'http://cam/recordings/2026-11-25T03-12-00Z_cam0.mp4?token=t',
      detections: 'http://cam/recordings/2026-11-25T03-12-00Z_cam0.detections.jsonl?token=t',
    });
    assert.equal(rows[1].playable, false);
    assert.equal(rows[1].size, '812 KB');
    assert.equal(rows[1].detections, '');
  });

  it('takes nonsense without breaking', () => {
    assert.deepEqual(recordingRows(null, url), []);
    assert.deepEqual(recordingRows({ recordings: [null, { name: 5 }, {}] }, url), []);
    const odd = recordingRows({ recordings: [{ name: 'x.mp4', start: 'never', duration_seconds: 'n/a', size: -1 }] }, url, time)[0];
    assert.equal(odd.when, 'x.mp4');
    assert.equal(odd.length, '');
    assert.equal(odd.size, '');
  });

  it('writes sizes people read', () => {
    assert.equal(formatBytes(999), '1 KB');
    assert.equal(formatBytes(2_345_678), '2.3 MB');
    assert.equal(formatBytes(123_456_789), '123 MB');
    assert.equal(formatBytes(4_200_000_000), '4.2 GB');
  });
});
