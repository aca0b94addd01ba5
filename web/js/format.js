// wsjpeg viewer: how figures and times are written on screen. Pure functions, no DOM.

export const DASH = '—';

/** "1:05" under an hour, "1:02:05" from then on. */
export function formatElapsed(totalSeconds) {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor(totalSeconds / 60) % 60;
  const s = totalSeconds % 60;
  const two = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** One decimal below 10 ms, whole milliseconds above. */
export function formatLatency(ms) {
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** Frames per second, or a dash when there is nothing worth showing. */
export function formatFps(fps) {
  return fps > 0 ? fps.toFixed(1) : DASH;
}

/** Bits per second as "850 kbit/s", "1.9 Mbit/s" or "24 Mbit/s"; a dash for none (null). */
export function formatBitrate(bitsPerSecond) {
  if (bitsPerSecond === null || !Number.isFinite(bitsPerSecond)) return DASH;
  // The thresholds are where rounding would write "1000 kbit/s" or "10.0 Mbit/s".
  if (bitsPerSecond < 999500) return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
  const mbit = bitsPerSecond / 1e6;
  return `${mbit < 9.95 ? mbit.toFixed(1) : Math.round(mbit)} Mbit/s`;
}

export function formatResolution(width, height) {
  return width && height ? `${width}×${height}` : DASH;
}

/**
 * Objects detected and the detector's delay after capture ("2 · found in 85 ms"), or a dash for
 * none (count null).
 */
export function formatObjects(count, delayMs) {
  if (count === null) return DASH;
  return delayMs === null ? String(count) : `${count} · found in ${formatLatency(delayMs)}`;
}

/** The small print after the title: the server's name (unless it is wsjpeg) and version. */
export function formatServerInfo(server, version) {
  return [server === 'wsjpeg' ? '' : server, version ? 'v' + version : ''].filter(Boolean).join(' ');
}

/** A download name from the time of the snapshot (UTC), without characters file systems dislike. */
export function snapshotFileName(date) {
  const stamp = date.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  return `wsjpeg-${stamp}.jpg`;
}

/** Why a request failed, for a toast: "timed out" when it was aborted, else the error's message. */
export function failureText(err) {
  return err && err.name === 'AbortError' ? 'timed out' : err.message;
}
