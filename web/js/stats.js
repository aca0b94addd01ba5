// wsjpeg viewer: the figures in the bottom bar — FPS, resolution, latency, dropped frames, the
// codec and the bitrate received, and objects detected once detections arrive.

import { setText } from './dom.js';
import { DASH, formatBitrate, formatFps, formatLatency, formatObjects, formatResolution } from './format.js';
import { mono } from './clock.js';

const LATENCY_HOLD_MS = 2000;     // keep the last latency figure through a short lull

/**
 * Renders `figures`: { connected, paused, hasPicture, fps, width, height, latencyMs (the mean
 * since the last render, or null), metaSeen, clockAssumed, gaps, skippedLocally, codec ('JPEG',
 * 'H.264' or 'H.264 MSE'), codecTitle (what that is, and why), bitsPerSecond (or null),
 * detections: { seen, count, delayMs } }. The objects figure stays hidden until detections
 * arrive.
 */
export function createStatsBar(ui) {
  let latencyShownAt = 0;

  return function render(f) {
    const live = f.connected && !f.paused;
    setText(ui.fps, live && f.hasPicture ? formatFps(f.fps) : DASH);
    setText(ui.resolution, formatResolution(f.width, f.height));

    const now = mono();
    if (f.latencyMs !== null && live) {
      setText(ui.latency, formatLatency(f.latencyMs));
      ui.latency.title = f.clockAssumed
        ? 'From capture to this screen (server did not answer clock sync; clocks assumed equal)'
        : 'From capture on the device to this screen';
      latencyShownAt = now;
    } else if (!f.metaSeen || !live || now - latencyShownAt > LATENCY_HOLD_MS) {
      setText(ui.latency, DASH);
      if (!f.metaSeen) ui.latency.title = 'Latency needs capture times from the server';
    }

    setText(ui.dropped, String(f.gaps + f.skippedLocally));
    ui.dropped.title = `${f.gaps} skipped by the server to stay live, ` +
      `${f.skippedLocally} skipped by this browser (decoding too slowly, or waiting for a keyframe)`;

    // Nothing streams (no picture yet, the camera failed, pictures stopped): no codec, no rate.
    const streaming = live && f.streaming !== false;
    setText(ui.codec, f.connected && f.streaming !== false ? f.codec : DASH);
    ui.codec.title = f.codecTitle;
    setText(ui.bitrate, streaming ? formatBitrate(f.bitsPerSecond) : DASH);

    const d = f.detections;
    ui.objectsFigure.hidden = !d.seen;
    ui.stats.classList.toggle('with-objects', d.seen);
    const count = live ? d.count : null;
    setText(ui.objects, formatObjects(count, count === null ? null : d.delayMs));
    ui.objects.title = count === null
      ? 'No detections for the picture on screen'
      : `${count} object${count === 1 ? '' : 's'} detected` +
        (d.delayMs === null ? '' : `; the detector's result came ${Math.round(d.delayMs)} ms after capture`);
  };
}
