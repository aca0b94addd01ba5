// wsjpeg viewer: whether the stream keeps up. Pictures shown against the pictures the camera
// made, over the last few seconds: a link slower than the stream makes the server skip
// pictures for this viewer (latest picture wins), which the page counts as dropped. Pure but
// for the samples it keeps.

const WINDOW_MS = 5000;          // judged over this span
const MIN_SPAN_MS = 3000;        // not before this much has been seen since the first picture
const MIN_DROPPED = 10;          // pictures lost in the window before it counts as slow
const SLOW_SHARE = 0.2;          // of the camera's pictures lost
const HOLD_MS = 4000;            // stays "slow" this long after it last was: no flicker

/**
 * The judgement over samples of { atMs, drawn, dropped } (counters since the connection
 * opened), oldest first, and the camera's rate from the hello (0 when not known): null when
 * there is too little to say, else { slow, shownFps, sourceFps }.
 */
export function judgeLink(samples, cameraFps) {
  if (samples.length < 2) return null;
  const last = samples[samples.length - 1];
  const first = samples.find((s) => last.atMs - s.atMs <= WINDOW_MS) || samples[0];
  const spanMs = last.atMs - first.atMs;
  if (spanMs < MIN_SPAN_MS) return null;
  const drawn = last.drawn - first.drawn;
  const dropped = last.dropped - first.dropped;
  const shownFps = drawn * 1000 / spanMs;
  const measuredFps = (drawn + dropped) * 1000 / spanMs;
  const sourceFps = cameraFps > 0 ? cameraFps : measuredFps;
  const slow = dropped >= MIN_DROPPED && dropped >= SLOW_SHARE * (drawn + dropped);
  return { slow, shownFps, sourceFps };
}

/** What would help a slow stream, in plain words, for what it shows and could show. */
export function slowAdvice({ codec, h264Offered, h264Why }) {
  const closer = 'a closer network (or wired) would help';
  if (codec === 'h264') return `A lower bitrate or resolution on the device, or ${closer}`;
  if (h264Offered && !h264Why) return `H.264 needs about a tenth of the bytes: press C or the Codec button. Or ${closer}`;
  if (h264Offered) return `H.264 would need about a tenth of the bytes, but ${h264Why}. A lower resolution or quality on the device, or ${closer}`;
  return `A lower resolution or JPEG quality on the device, or ${closer}`;
}

/** "10 of 30 fps": what is shown against what the camera makes. */
export function formatSlow({ shownFps, sourceFps }) {
  return `${Math.round(shownFps)} of ${Math.round(sourceFps)} fps`;
}

/**
 * Keeps the samples of the current connection. `add` takes the counters each tick while
 * pictures are live (not paused, connected) and answers { slow, shownFps, sourceFps } or null.
 */
export function createLinkHealth() {
  let samples = [];
  let slowUntil = 0;
  let last = null;

  return {
    /** A new connection or a pause: start over. */
    reset() {
      samples = [];
      slowUntil = 0;
      last = null;
    },

    add(atMs, drawn, dropped, cameraFps) {
      samples.push({ atMs, drawn, dropped });
      while (samples.length > 2 && atMs - samples[1].atMs > WINDOW_MS) samples.shift();
      const judged = judgeLink(samples, cameraFps);
      if (judged && judged.slow) slowUntil = atMs + HOLD_MS;
      last = judged && { ...judged, slow: judged.slow || atMs < slowUntil };
      return last;
    },

    /** The last judgement (null when there is too little to say). */
    get state() { return last; },
  };
}
