// wsjpeg viewer: object detections on the page — the boxes on each picture drawn, and drawn
// again whenever what applies changes between pictures (detections that arrive after their
// frame, expiry, the toggle); the Boxes button and the D key; the figures for the stats bar.

import { drawBoxes } from './boxes.js';
import { captureLatencyMs, mono, nowUs } from './clock.js';
import { DETECTIONS_MAX_AGE_MS, createDetectionStore, parseDetections } from './detections.js';
import { setAttr } from './dom.js';

/**
 * `button` is the Boxes toggle, hidden until detections first arrive; `controls` the group it
 * is in, told when it shows (class `with-detections`, for the layout); `clockOffsetUs()` the
 * server's clock minus ours (null while unknown); `shownPicture()` the { sequence, captureUs }
 * of the picture on the canvas (null for none); `repaint()` draws that picture again, calling
 * `decorate` as the renderer does after every picture.
 */
export function createDetectionView({ button, controls, clockOffsetUs, shownPicture, repaint }) {
  // Detections name frames of the JPEG stream. Over H.264 pictures (sequence numbers of their
  // own) they are matched by capture time instead, which both streams share: `reset('time')`.
  let matchBy = 'frame';
  let store = createDetectionStore(DETECTIONS_MAX_AGE_MS, matchBy);
  let enabled = true;
  let seen = false;        // detections have arrived on this page
  let drawn = null;        // the set whose boxes are on the canvas
  let expiryTimer = 0;

  // The picture as the detections name it: its sequence number, or its capture time.
  function frameKey(picture) {
    if (!picture) return null;
    return matchBy === 'time' ? picture.captureUs : picture.sequence;
  }
  const shownFrame = () => frameKey(shownPicture());

  function wanted(frame, now) {
    const entry = store.current(frame, now);
    return enabled && entry && entry.set.objects.length > 0 ? entry : null;
  }

  // Boxes stay no longer than they apply, even when no new picture comes to replace them.
  function scheduleExpiry(entry) {
    clearTimeout(expiryTimer);
    expiryTimer = entry ? setTimeout(refresh, Math.max(0, entry.expiresAt - mono()) + 1) : 0;
  }

  function refresh() {
    const entry = wanted(shownFrame(), mono());
    if ((entry ? entry.set : null) !== drawn) repaint();
    else scheduleExpiry(entry);
  }

  function setEnabled(on) {
    enabled = on;
    setAttr(button, 'aria-pressed', String(on));
    refresh();
  }

  button.addEventListener('click', () => setEnabled(!enabled));

  return {
    /** For the renderer: draws the boxes that apply to `picture` ({ sequence, captureUs }) on `ctx`. */
    decorate(ctx, width, height, picture) {
      const entry = wanted(frameKey(picture), mono());
      drawn = entry ? entry.set : null;
      if (entry) drawBoxes(ctx, entry.set, width, height);
      scheduleExpiry(entry);
    },

    /** A `detections` message. */
    receive(msg) {
      const set = parseDetections(msg);
      if (!set) return;
      const offsetUs = clockOffsetUs();
      const delayMs = set.captureUs !== null && offsetUs !== null
        ? captureLatencyMs(set.captureUs, offsetUs, nowUs())
        : null;
      store.receive({ ...set, delayMs }, mono());
      if (!seen) {
        seen = true;
        button.hidden = false;
        controls.classList.add('with-detections');
      }
      refresh();
    },

    /**
     * The connection changed: what was received no longer applies. `by` names the frames of
     * the new one: 'frame' (JPEG) or 'time' (H.264).
     */
    reset(by = matchBy) {
      if (by !== matchBy) {
        matchBy = by;
        store = createDetectionStore(DETECTIONS_MAX_AGE_MS, matchBy);
      }
      store.clear();
      refresh();
    },

    toggle() {
      setEnabled(!enabled);
    },

    /**
     * For the stats bar: { seen, count, delayMs } — count and delay of the detections that
     * apply to the picture on screen, null when none do.
     */
    figures() {
      const entry = store.current(shownFrame(), mono());
      return {
        seen,
        count: entry ? entry.set.objects.length : null,
        delayMs: entry ? entry.set.delayMs : null,
      };
    },

    /** What the test hook shows: the toggle, and the detections that apply and are drawn. */
    state() {
      const frame = shownFrame();
      const entry = store.current(frame, mono());
      return {
        enabled,
        shownFrame: frame,
        frame: entry ? entry.set.frame : null,
        objects: entry ? entry.set.objects.map((o) => ({ ...o, box: o.box.slice() })) : [],
        drawn: drawn !== null,
        delayMs: entry ? entry.set.delayMs : null,
      };
    },
  };
}
