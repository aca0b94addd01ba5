// wsjpeg viewer: frames onto the canvas. Latest frame wins: one decode in flight and only the
// newest frame waiting behind it, so a slow screen skips frames instead of building a backlog.
// Counts what it receives, draws and skips, and the draw times for the FPS figure. Keeps the
// picture on screen, so that what is drawn over it can change between pictures.

import { captureLatencyMs, mono, nowUs } from './clock.js';
import { parseFrame } from './protocol.js';

const FPS_WINDOW_MS = 2000;
const FPS_MIN_PICTURES = 6;       // pictures before a first FPS figure is shown
const DRAW_RING = 256;

/**
 * Pictures per second from draw times (newest first, all within the last FPS_WINDOW_MS of
 * `now`). Once the window has been running for its full length (`windowFull`), the count over
 * it; before that (just connected or resumed) from the median interval, because the burst that
 * fills the screen on joining would otherwise read as more than the camera's rate.
 */
export function fpsFromDrawTimes(times, now, windowFull) {
  if (times.length < 2 || now - times[0] > 1000) return 0;
  if (windowFull) return (times.length * 1000) / FPS_WINDOW_MS;
  if (times.length < FPS_MIN_PICTURES) return 0; // too few to say yet
  const intervals = [];
  for (let i = 1; i < times.length; i++) intervals.push(times[i - 1] - times[i]);
  intervals.sort((a, b) => a - b);
  const median = intervals[Math.floor(intervals.length / 2)];
  return median > 0 ? 1000 / median : 0;
}

/**
 * Draws frames on `canvas`. `clockOffsetUs()` is the server's clock minus ours (null while
 * unknown), for the latency; `onDrawn(first)` is called after every picture, `first` for the
 * first one on this page; `decorate(ctx, width, height, sequence)` draws over the picture
 * (sequence: its number, null without ?meta=1) each time it is painted.
 */
export function createRenderer(canvas, { clockOffsetUs, onDrawn, decorate }) {
  const ctx = canvas.getContext('2d', { alpha: false });
  const counterStart = mono();
  const counters = { received: 0, drawn: 0, gaps: 0, skippedLocally: 0, decodeErrors: 0, badMessages: 0 };
  let epoch = 0;               // bumps when the connection goes; older frames are not drawn
  let paused = false;
  let pending = null;          // newest frame waiting for the decoder (at most one)
  let decoding = false;        // a decode is in flight (at most one)
  let hasPicture = false;      // something has been drawn on this page
  let lastDrawAt = 0;
  let resumedAt = 0;           // connected or resumed: pictures can be expected from then on
  let lastSequence = null;
  // Drops count from the first picture shown on a connection (or after a pause): the frames a
  // joining viewer skips while its decoder warms up are not losses anyone saw.
  let countingDrops = false;
  let metaSeen = false;
  let latencySumMs = 0;
  let latencyCount = 0;
  let width = 0;
  let height = 0;
  let picture = null;          // the ImageBitmap on the canvas, to paint again (closed when replaced)
  let sequence = null;         // its sequence number
  // Ring of recent draw times for the FPS figure: fixed size, never grows.
  const drawTimes = new Float64Array(DRAW_RING);
  let drawHead = 0;
  let drawFilled = 0;

  function receive(buffer) {
    const frame = parseFrame(buffer);
    if (!frame) {
      counters.badMessages++;
      return;
    }
    if (frame.sequence !== null) metaSeen = true;
    counters.received++;

    if (frame.sequence !== null) {
      if (countingDrops && lastSequence !== null && frame.sequence > lastSequence + 1) {
        counters.gaps += frame.sequence - lastSequence - 1;
      }
      lastSequence = frame.sequence;
    }
    if (paused) return; // a plain server does not know about pause: just ignore its frames

    if (pending && countingDrops) counters.skippedLocally++;
    pending = { jpeg: frame.jpeg, sequence: frame.sequence, captureUs: frame.captureUs, epoch };
    if (!decoding) decodeLoop();
  }

  async function decodeLoop() {
    decoding = true;
    try {
      while (pending) {
        const frame = pending;
        pending = null;
        let bitmap;
        try {
          bitmap = await createImageBitmap(new Blob([frame.jpeg], { type: 'image/jpeg' }));
        } catch (err) {
          counters.decodeErrors++;
          continue;
        }
        if (frame.epoch === epoch && !paused) draw(bitmap, frame);
        else bitmap.close();
      }
    } finally {
      decoding = false;
    }
  }

  function draw(bitmap, frame) {
    if (picture) picture.close();
    picture = bitmap;
    sequence = frame.sequence;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    paint();
    width = bitmap.width;
    height = bitmap.height;
    const t = mono();
    drawTimes[drawHead] = t;
    drawHead = (drawHead + 1) % DRAW_RING;
    if (drawFilled < DRAW_RING) drawFilled++;
    lastDrawAt = t;
    counters.drawn++;
    countingDrops = true;
    const offsetUs = clockOffsetUs();
    if (frame.captureUs !== null && offsetUs !== null) {
      const ms = captureLatencyMs(frame.captureUs, offsetUs, nowUs());
      if (ms !== null) {
        latencySumMs += ms;
        latencyCount++;
      }
    }
    const first = !hasPicture;
    hasPicture = true;
    onDrawn(first);
  }

  function paint() {
    ctx.drawImage(picture, 0, 0);
    decorate(ctx, canvas.width, canvas.height, sequence);
  }

  function framesPerSecond() {
    const now = mono();
    const times = [];
    for (let i = 0; i < drawFilled; i++) {
      const t = drawTimes[(drawHead - 1 - i + DRAW_RING) % DRAW_RING];
      if (now - t > FPS_WINDOW_MS) break;
      times.push(t);
    }
    return fpsFromDrawTimes(times, now, now - Math.max(resumedAt, counterStart) >= FPS_WINDOW_MS);
  }

  return {
    receive,
    framesPerSecond,
    get paused() { return paused; },
    get hasPicture() { return hasPicture; },
    /** The server sends capture times (?meta=1) on this connection. */
    get metaSeen() { return metaSeen; },
    get width() { return width; },
    get height() { return height; },
    get decoding() { return decoding; },
    get pending() { return pending !== null; },
    /** The sequence number of the picture on the canvas (null for none, or without ?meta=1). */
    get sequence() { return sequence; },
    counters() { return { ...counters }; },

    /** The size announced in `hello`, shown until the first picture says otherwise. */
    presetSize(w, h) {
      if (hasPicture) return;
      width = w;
      height = h;
    },

    /** Paints the picture on the canvas again, with what `decorate` draws over it now. */
    repaint() {
      if (picture) paint();
    },

    /** A new connection: counting and timing start afresh. */
    restart() {
      resumedAt = mono();
      sequence = null; // a restarted server counts from the start again
      lastSequence = null;
      countingDrops = false;
      metaSeen = false;
      drawFilled = 0;
      latencySumMs = 0;
      latencyCount = 0;
    },

    /** The connection went: what is waiting or decoding from it is not drawn. */
    discard() {
      epoch++;
      pending = null;
    },

    pause() {
      paused = true;
      pending = null;
    },

    resume() {
      paused = false;
      lastSequence = null; // frames missed while paused are not drops
      countingDrops = false;
      resumedAt = mono();
    },

    /** Milliseconds without a new picture since the last one, or since pictures were due. */
    quietMs() {
      return mono() - Math.max(lastDrawAt, resumedAt);
    },

    /** The mean latency since the last call, in ms, or null without measurements. */
    takeLatency() {
      const ms = latencyCount > 0 ? Math.max(0, latencySumMs / latencyCount) : null;
      latencySumMs = 0;
      latencyCount = 0;
      return ms;
    },
  };
}
