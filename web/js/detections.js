// wsjpeg viewer: object detections as pure logic (no DOM, no canvas): reading a `detections`
// message, and which detections belong over the picture on screen at a given moment.

/** Detections stop applying this long after they arrived, whatever is on screen by then. */
export const DETECTIONS_MAX_AGE_MS = 1000;
/**
 * Two capture times this close are the same frame: the JPEG and H.264 sinks each read the
 * clock for the same buffer (the server allows the same for detections pushed by time).
 */
export const SAME_CAPTURE_US = 5000;
// Sets kept, newest last: those waiting for their frame and the one on screen; a few suffice.
const KEPT_SETS = 8;

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

function readObject(raw) {
  if (!raw || typeof raw !== 'object') return null;
  const box = raw.box;
  if (typeof raw.label !== 'string' || raw.label === '' || !Array.isArray(box) || box.length !== 4) return null;
  if (!box.every(isNumber) || box[2] < 0 || box[3] < 0) return null;
  return {
    label: raw.label,
    score: isNumber(raw.score) && raw.score >= 0 && raw.score <= 1 ? raw.score : null,
    box: box.slice(),
    id: Number.isInteger(raw.id) ? raw.id : null,
  };
}

/**
 * A `detections` message as { frame, captureUs, width, height, objects: [{ label, score, box,
 * id }] }: `frame` the sequence number of the frame they were found in, `captureUs` its capture
 * time (null if not given), `width`/`height` the frame size the boxes are in (null if not
 * given), score and id null when absent. Objects that cannot be drawn are left out; null for a
 * message without a frame number or an objects list.
 */
export function parseDetections(msg) {
  if (!msg || !isNumber(msg.frame) || msg.frame < 0 || !Array.isArray(msg.objects)) return null;
  const size = (v) => (isNumber(v) && v > 0 ? v : null);
  return {
    frame: msg.frame,
    captureUs: isNumber(msg.time) ? msg.time : null,
    width: size(msg.width),
    height: size(msg.height),
    objects: msg.objects.map(readObject).filter(Boolean),
  };
}

/**
 * The detections received, and which apply to a frame. Detections for frame M go over frame N
 * when M <= N (a detector that lags is still worth showing); for M > N they wait until frame M
 * is drawn (they came just ahead of their frame). The newest that applies wins, until it is
 * `maxAgeMs` old by the page's clock at its arrival. An empty set applies like any other and
 * clears the boxes. `now` is any millisecond clock, the same for every call.
 *
 * Frames are named by `matchBy`: 'frame', their sequence numbers in the JPEG stream, or
 * 'time', their capture times (µs), for pictures of another stream of the same camera (H.264
 * has sequence numbers of its own). By time, a set without a capture time applies to any
 * picture, so the newest is drawn while it lasts.
 */
export function createDetectionStore(maxAgeMs = DETECTIONS_MAX_AGE_MS, matchBy = 'frame') {
  let entries = []; // { set, arrivedAt }, in order of arrival

  // The set is for a frame newer than `shown` (a sequence number or a capture time).
  const ahead = matchBy === 'time'
    ? (set, shown) => set.captureUs !== null && set.captureUs > shown + SAME_CAPTURE_US
    : (set, shown) => set.frame > shown;

  function current(shown, now) {
    if (shown === null || shown === undefined) return null;
    for (let i = entries.length - 1; i >= 0; i--) {
      const { set, arrivedAt } = entries[i];
      if (ahead(set, shown)) continue;
      const expiresAt = arrivedAt + maxAgeMs;
      return now < expiresAt ? { set, arrivedAt, expiresAt } : null;
    }
    return null;
  }

  return {
    receive(set, now) {
      entries.push({ set, arrivedAt: now });
      if (entries.length > KEPT_SETS) entries.shift();
    },

    clear() {
      entries = [];
    },

    /**
     * The detections for frame `shown` (a sequence number, or null for none) at `now`:
     * { set, arrivedAt, expiresAt }, or null when none apply.
     */
    current,

    /** The objects to draw over frame `shown` at `now` ([] for none). */
    objects(shown, now) {
      const entry = current(shown, now);
      return entry ? entry.set.objects : [];
    },
  };
}
