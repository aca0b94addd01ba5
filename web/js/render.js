// wsjpeg viewer: frames onto the canvas. Latest frame wins: one JPEG decode in flight and only
// the newest frame waiting behind it, so a slow screen skips frames instead of building a
// backlog; pictures decoded elsewhere (H.264, by the browser's video decoder) are drawn as they
// come, but for those of a catch-up burst, of which only the newest is drawn. Counts what it
// receives, draws and skips, and the draw times for the FPS figure. Keeps the picture on
// screen, so that what is drawn over it can change between pictures.

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
 * Pictures per second of the camera's time: the pictures drawn (capture times in µs, newest
 * first) over the capture time they span. A burst of pictures drawn at once (a join, a decoder
 * catching up on a busy machine) spans the camera's time it covers, so it never reads as more
 * than the camera's rate; pictures passed over lower it. 0 while there are too few to say.
 */
export function fpsFromCaptureTimes(captures) {
  if (captures.length < FPS_MIN_PICTURES) return 0;
  const spanUs = captures[0] - captures[captures.length - 1];
  return spanUs > 0 ? ((captures.length - 1) * 1e6) / spanUs : 0;
}

// An ImageBitmap has a width; a VideoFrame a display width (its coded size may be padded); a
// <video> the size of its current picture.
const pictureWidth = (picture) => picture.displayWidth || picture.videoWidth || picture.width;
const pictureHeight = (picture) => picture.displayHeight || picture.videoHeight || picture.height;
// ImageBitmaps and VideoFrames are closed once drawn over; a <video> (a live source that
// presents its own next picture) or a canvas is not.
const release = (picture) => { if (typeof picture.close === 'function') picture.close(); };

/**
 * Draws frames on `canvas`. `clockOffsetUs()` is the server's clock minus ours (null while
 * unknown), for the latency; `onDrawn(first)` is called after every picture, `first` for the
 * first one on this page; `decorate(ctx, width, height, shown)` draws over the picture (shown:
 * its { sequence, captureUs }, both null without ?meta=1) each time it is painted.
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
  let picture = null;          // the ImageBitmap or VideoFrame on the canvas, to paint again (closed when replaced)
  let shown = null;            // its { sequence, captureUs }
  let decoded = null;          // a decoded picture waiting for the next animation frame: { picture, frame }
  let drawScheduled = false;
  // Ring of recent draw times for the FPS figure: fixed size, never grows.
  const drawTimes = new Float64Array(DRAW_RING);
  const drawCaptures = new Float64Array(DRAW_RING); // capture time (µs) of each, NaN if unknown
  let drawHead = 0;
  let drawFilled = 0;

  // A message came with this sequence number (null without one): count it, and the gap before it.
  function arrived(seq) {
    counters.received++;
    if (seq === null) return;
    metaSeen = true;
    if (countingDrops && lastSequence !== null && seq > lastSequence + 1) {
      counters.gaps += seq - lastSequence - 1;
    }
    lastSequence = seq;
  }

  function receive(buffer) {
    const frame = parseFrame(buffer);
    if (!frame) {
      counters.badMessages++;
      return;
    }
    arrived(frame.sequence);
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

  // Takes a decoded picture (it closes it), or a <video> showing its newest picture, and draws
  // it at once, as a JPEG. A picture older than
  // a unit already received (`frame.catchUp`: the decoder working through the units since a
  // keyframe, after a join or a resume) waits for the next animation frame instead, and a newer
  // one replaces it: the screen skips the catch-up, not a live picture.
  function present(next, frame) {
    dropDecoded();
    if (paused) {
      if (next !== picture) release(next);
      return;
    }
    if (!frame.catchUp) {
      draw(next, frame);
      return;
    }
    decoded = { picture: next, frame };
    if (!drawScheduled) {
      drawScheduled = true;
      requestAnimationFrame(drawDecoded);
    }
  }

  function drawDecoded() {
    drawScheduled = false;
    const waiting = decoded;
    decoded = null;
    if (waiting) draw(waiting.picture, waiting.frame);
  }

  function dropDecoded() {
    if (decoded) decoded.picture.close();
    decoded = null;
  }

  function draw(next, frame) {
    if (picture && picture !== next) release(picture);
    picture = next;
    shown = { sequence: frame.sequence, captureUs: frame.captureUs };
    const w = pictureWidth(next);
    const h = pictureHeight(next);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    paint();
    width = w;
    height = h;
    const t = mono();
    drawTimes[drawHead] = t;
    drawCaptures[drawHead] = frame.captureUs === null ? NaN : frame.captureUs;
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
    decorate(ctx, canvas.width, canvas.height, shown);
  }

  function framesPerSecond() {
    const now = mono();
    const times = [];
    const captures = [];
    for (let i = 0; i < drawFilled; i++) {
      const at = (drawHead - 1 - i + DRAW_RING) % DRAW_RING;
      const t = drawTimes[at];
      if (now - t > FPS_WINDOW_MS) break;
      times.push(t);
      captures.push(drawCaptures[at]);
    }
    if (times.length < 2 || now - times[0] > 1000) return 0;
    // With capture times (?meta=1 and H.264), the rate of the camera's pictures shown; without,
    // the rate they were drawn at.
    if (captures.every((c) => !Number.isNaN(c)) && times.length >= FPS_MIN_PICTURES) {
      return fpsFromCaptureTimes(captures);
    }
    return fpsFromDrawTimes(times, now, now - Math.max(resumedAt, counterStart) >= FPS_WINDOW_MS);
  }

  return {
    receive,
    present,
    arrived,
    framesPerSecond,
    get paused() { return paused; },
    get hasPicture() { return hasPicture; },
    /** The server sends capture times (?meta=1) on this connection. */
    get metaSeen() { return metaSeen; },
    get width() { return width; },
    get height() { return height; },
    get decoding() { return decoding; },
    get pending() { return pending !== null; },
    /** The picture on the canvas: { sequence, captureUs } (null for none). */
    get shown() { return shown; },
    counters() { return { ...counters }; },

    /** A message that was not decoded (waiting for a keyframe): a picture this viewer skipped. */
    skipped() {
      if (countingDrops) counters.skippedLocally++;
    },

    /** A message that is not what the stream should carry. */
    rejected() {
      counters.badMessages++;
    },

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

    /**
     * The live source of the picture on screen (a <video>) is going away: a still copy of its
     * picture is kept instead, to paint again (boxes turned on or off while paused).
     */
    detach(source) {
      if (!picture || picture !== source) return;
      const still = document.createElement('canvas');
      still.width = canvas.width;
      still.height = canvas.height;
      still.getContext('2d').drawImage(source, 0, 0);
      picture = still;
    },

    /** A new connection: counting and timing start afresh. */
    restart() {
      resumedAt = mono();
      // A restarted server counts from the start again (capture times stay comparable).
      if (shown) shown = { ...shown, sequence: null };
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
      dropDecoded();
    },

    pause() {
      paused = true;
      pending = null;
      dropDecoded();
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
