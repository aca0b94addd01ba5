// wsjpeg viewer: one time base for everything measured here, and the offset of the server's
// clock from ours, estimated NTP style from `time` round trips.

const CLOCK_SYNC_EVERY_MS = 15000;
const CLOCK_BURST = 5;            // round trips right after connecting
const CLOCK_BURST_GAP_MS = 50;
export const CLOCK_KEEP = 8;      // samples kept; the one with the shortest round trip wins
const CLOCK_FALLBACK_MS = 3000;   // no time answers: assume both clocks agree
const MAX_ROUND_TRIP_US = 10e6;

// Old Safari lacks performance.timeOrigin.
const timeOrigin = performance.timeOrigin || Date.now() - performance.now();

/** Now, in microseconds since the Unix epoch. */
export const nowUs = () => (timeOrigin + performance.now()) * 1000;
/** Now, in milliseconds on the monotonic clock: for intervals. */
export const mono = () => performance.now();

/**
 * One round trip: sent and received on our clock, `serverUs` on the server's, all µs. The
 * server's answer is taken to be from halfway through the trip. Null when the answer is garbage
 * or the trip is implausible (negative, or longer than 10 s).
 */
export function clockSample(sentUs, serverUs, receivedUs) {
  if (!Number.isFinite(sentUs) || !Number.isFinite(serverUs)) return null;
  const rtt = receivedUs - sentUs;
  if (rtt < 0 || rtt > MAX_ROUND_TRIP_US) return null;
  return { rtt, offset: serverUs - (sentUs + rtt / 2) };
}

/**
 * Adds `sample` to `samples`, keeping the newest CLOCK_KEEP, and returns the offset of the one
 * with the shortest round trip: the least room for error.
 */
export function keepSample(samples, sample) {
  samples.push(sample);
  if (samples.length > CLOCK_KEEP) samples.shift();
  let best = samples[0];
  for (const s of samples) if (s.rtt < best.rtt) best = s;
  return best.offset;
}

/**
 * Milliseconds from capture (server clock, µs) to `atUs` (our clock), or null when that is
 * implausible (a clock jumped, or the offset is not known well enough yet).
 */
export function captureLatencyMs(captureUs, offsetUs, atUs) {
  const ms = (atUs - (captureUs - offsetUs)) / 1000;
  return ms > -1000 && ms < 600000 ? ms : null;
}

/**
 * Clock sync over one connection at a time: `start()` on open (a burst of probes, then one every
 * 15 s), `stop()` when it goes. `send` posts a protocol message to the server.
 */
export function createClock(send) {
  const samples = [];
  let offsetUs = null;
  let assumed = false;
  let burstLeft = 0;
  let syncTimer = 0;
  let fallbackTimer = 0;

  function probe() {
    send({ type: 'time', client: Math.round(nowUs()) });
  }

  return {
    /** Server clock minus ours, µs; null until known. */
    get offsetUs() { return offsetUs; },
    /** True when the server never answered and the clocks are only assumed to agree. */
    get assumed() { return assumed; },
    get sampleCount() { return samples.length; },

    /** The server's idea of now, ms since the epoch (our clock while the offset is unknown). */
    serverNowMs() {
      return (nowUs() + (offsetUs || 0)) / 1000;
    },

    start() {
      samples.length = 0;
      offsetUs = null;
      assumed = false;
      burstLeft = CLOCK_BURST - 1;
      probe();
      syncTimer = setInterval(probe, CLOCK_SYNC_EVERY_MS);
      fallbackTimer = setTimeout(() => {
        if (offsetUs === null) {
          offsetUs = 0;
          assumed = true;
        }
      }, CLOCK_FALLBACK_MS);
    },

    stop() {
      clearInterval(syncTimer);
      clearTimeout(fallbackTimer);
    },

    /** A `time` message from the server. */
    onReply(msg) {
      const sample = clockSample(Number(msg.client), Number(msg.server), nowUs());
      if (!sample) return;
      offsetUs = keepSample(samples, sample);
      assumed = false;
      if (burstLeft > 0) {
        burstLeft--;
        setTimeout(probe, CLOCK_BURST_GAP_MS);
      }
    },
  };
}
