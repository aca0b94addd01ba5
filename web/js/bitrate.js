// wsjpeg viewer: the received bitrate, from the sizes of the messages of the last second.

export const BITRATE_WINDOW_MS = 1000;
const BITRATE_MIN_SPAN_MS = 250;  // less than this since the start says nothing yet
const BITRATE_RING = 512;         // messages kept: a second at up to 512 per second

/**
 * Counts bytes as they arrive (`add(bytes, now)`) and gives bits per second over the last
 * BITRATE_WINDOW_MS (`bitsPerSecond(now)`), or over the time since `restart(now)` while that is
 * shorter, so that a fresh connection does not read low. Null before there is enough to say.
 * `now` is any millisecond clock, the same for every call.
 */
export function createBitrateMeter() {
  const times = new Float64Array(BITRATE_RING);
  const sizes = new Float64Array(BITRATE_RING);
  let head = 0;
  let filled = 0;
  let startedAt = null;

  return {
    restart(now) {
      head = 0;
      filled = 0;
      startedAt = now;
    },

    add(bytes, now) {
      if (startedAt === null) startedAt = now;
      times[head] = now;
      sizes[head] = bytes;
      head = (head + 1) % BITRATE_RING;
      if (filled < BITRATE_RING) filled++;
    },

    bitsPerSecond(now) {
      if (startedAt === null) return null;
      const span = Math.min(BITRATE_WINDOW_MS, now - startedAt);
      if (span < BITRATE_MIN_SPAN_MS) return null;
      let bytes = 0;
      for (let i = 0; i < filled; i++) {
        const at = (head - 1 - i + BITRATE_RING) % BITRATE_RING;
        if (now - times[at] >= span) break;
        bytes += sizes[at];
      }
      return (bytes * 8 * 1000) / span;
    },
  };
}
