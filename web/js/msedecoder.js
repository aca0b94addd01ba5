// wsjpeg viewer: H.264 pictures through the browser's media player (Media Source Extensions),
// for pages where WebCodecs does not exist (plain http). The fragments of
// `/stream?codec=h264&container=fmp4` are appended to a hidden muted <video> as they come, the
// player is kept at the live edge, and each picture it presents is drawn on the page's canvas
// like any other. Any sign that it cannot work is reported once, so that the page can go back
// to JPEG. Same interface as createH264Decoder.

import { mono } from './clock.js';
import { createKeyframeGate } from './keyframes.js';
import { aheadOfPlayhead, liveSeekTarget, playedOutEnd, rangesOf } from './liveedge.js';
import { parseSegment } from './mp4.js';

// Fragments received and this long without a picture: the player is not playing them.
const SILENT_UNITS = 45;
const SILENT_MS = 3000;
const DEFAULT_FRAME_S = 1 / 30;

/** The MediaSource of this browser: the standard one, or Safari's on iPhone; null if neither. */
export function mediaSourceClass() {
  if (typeof window === 'undefined') return null;
  const standard = window.MediaSource;
  if (typeof standard === 'function' && typeof standard.isTypeSupported === 'function') return standard;
  const managed = window.ManagedMediaSource;
  if (typeof managed === 'function' && typeof managed.isTypeSupported === 'function') return managed;
  return null;
}

/** Whether this browser's MediaSource can play `mime`; false where there is none, or it throws. */
export function mseSupports(mime) {
  const Source = mediaSourceClass();
  if (!Source || !mime) return false;
  try {
    return Source.isTypeSupported(mime) === true;
  } catch (err) {
    return false;
  }
}

/** An error in a few words: "QuotaExceededError: …". */
function errorText(err) {
  if (!err) return 'unknown error';
  const name = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
  return name + (err.message || String(err));
}

/** A media element's error in a few words. */
function mediaErrorText(error) {
  if (!error) return 'the video player failed';
  const kinds = { 1: 'aborted', 2: 'network error', 3: 'decoding error', 4: 'format not supported' };
  const kind = kinds[error.code] || `error ${error.code}`;
  return error.message ? `${kind}: ${error.message}` : `the video player reported a ${kind}`;
}

/**
 * Plays the binary messages of an fMP4 H.264 connection and presents its pictures on `frames`
 * (the renderer). `host`: the element the hidden <video> lives in while it plays. The `h264`
 * message names the MIME type (`configure(msg)`); `start()` a new connection, `stop()` when it
 * goes; `setPaused(paused)` lets the player go while paused (the server starts again at a
 * keyframe on resume); `check()` now and then. `onFailure(reason)` is called once.
 */
export function createMseDecoder({ frames, host, onFailure }) {
  const gate = createKeyframeGate();
  const hasFrameCallback = typeof HTMLVideoElement !== 'undefined' &&
    typeof HTMLVideoElement.prototype.requestVideoFrameCallback === 'function';
  let mime = '';
  let init = null;           // the last initialisation segment, for a player made after a pause
  let player = null;         // { video, source, buffer, queue, baseS, keyframes, … } while attached
  let failed = false;
  let silentUnits = 0;
  let lastPictureAt = 0;
  let frameS = DEFAULT_FRAME_S;
  const counts = { fragments: 0, appended: 0, pictures: 0, attached: 0, jumps: 0, removed: 0, inits: 0 };

  function fail(reason) {
    if (failed) return;
    failed = true;
    release();
    onFailure(reason);
  }

  // Lets the player go. The picture on screen stays, as a still copy.
  function release() {
    const p = player;
    player = null;
    gate.restart();
    if (!p) return;
    p.gone = true;
    frames.detach(p.video);
    if (p.frameCallback && p.video.cancelVideoFrameCallback) p.video.cancelVideoFrameCallback(p.frameCallback);
    if (p.animationFrame) cancelAnimationFrame(p.animationFrame);
    p.video.removeAttribute('src');
    try { p.video.load(); } catch (err) { /* nothing to unload */ }
    p.video.remove();
    if (p.url) URL.revokeObjectURL(p.url);
  }

  // A player for fragments whose capture times start at `firstUs`: its media time 0 is the whole
  // second before, so that times stay small (some players lose precision on Unix times) and
  // capture = media time + baseS exactly.
  function attach(firstUs) {
    const Source = mediaSourceClass();
    if (!Source) {
      fail('this browser has no Media Source Extensions');
      return false;
    }
    const video = document.createElement('video');
    video.muted = true;
    video.defaultMuted = true;
    video.playsInline = true;
    video.setAttribute('muted', '');
    video.setAttribute('playsinline', '');
    video.setAttribute('aria-hidden', 'true');
    // ManagedMediaSource plays only where the video cannot go to AirPlay instead.
    video.disableRemotePlayback = true;
    video.className = 'mse-source';
    const p = {
      video, source: null, buffer: null, url: '', queue: [], baseS: Math.floor(firstUs / 1e6),
      keyframes: [], aheadSince: 0, playing: false, gone: false, frameCallback: 0, animationFrame: 0,
      shownTime: -1,
    };
    try {
      p.source = new Source();
    } catch (err) {
      fail(`no media source (${errorText(err)})`);
      return false;
    }
    video.addEventListener('error', () => { if (!p.gone) fail(mediaErrorText(video.error)); });
    p.source.addEventListener('sourceopen', () => opened(p), { once: true });
    p.url = URL.createObjectURL(p.source);
    video.src = p.url;
    host.appendChild(video);
    player = p;
    counts.attached++;
    watchPictures(p);
    return true;
  }

  function opened(p) {
    if (p.gone) return;
    URL.revokeObjectURL(p.url);
    p.url = '';
    try {
      const buffer = p.source.addSourceBuffer(mime);
      buffer.mode = 'segments';
      buffer.timestampOffset = -p.baseS;
      buffer.addEventListener('updateend', () => updated(p));
      buffer.addEventListener('error', () => { if (!p.gone) fail('the video player could not take a fragment'); });
      p.buffer = buffer;
    } catch (err) {
      fail(errorText(err));
      return;
    }
    try {
      // A live stream: its end is not known.
      p.source.duration = Infinity;
    } catch (err) {
      // The duration then follows what is appended: it plays the same.
    }
    pump(p);
  }

  // Appends what is waiting, one at a time; removes what has been played out in between.
  function pump(p) {
    if (p.gone || !p.buffer || p.buffer.updating) return;
    const removeEnd = playedOutEnd(rangesOf(p.buffer.buffered), p.video.currentTime, p.keyframes);
    if (removeEnd !== null) {
      p.keyframes = p.keyframes.filter((k) => k >= removeEnd);
      try {
        p.buffer.remove(0, removeEnd);
        counts.removed++;
        return;
      } catch (err) {
        fail(errorText(err));
        return;
      }
    }
    const next = p.queue.shift();
    if (!next) return;
    try {
      p.buffer.appendBuffer(next);
    } catch (err) {
      fail(err && err.name === 'QuotaExceededError'
        ? 'the video player has no room for more (QuotaExceededError)'
        : errorText(err));
      return;
    }
    counts.appended++;
  }

  function updated(p) {
    if (p.gone) return;
    keepLive(p);
    if (!p.playing && p.buffer.buffered.length > 0) {
      p.playing = true;
      const playing = p.video.play();
      if (playing && playing.catch) {
        playing.catch((err) => {
          if (!p.gone) fail(`the browser would not play the video (${errorText(err)})`);
        });
      }
    }
    pump(p);
  }

  // Moves the playhead to the newest picture when it has fallen behind or into a gap; says
  // whether it did.
  function keepLive(p) {
    if (p.gone || !p.buffer) return false;
    const ranges = rangesOf(p.buffer.buffered);
    const time = p.video.currentTime;
    const now = mono();
    if (aheadOfPlayhead(ranges, time, frameS)) {
      if (!p.aheadSince) p.aheadSince = now;
    } else {
      p.aheadSince = 0;
    }
    const target = liveSeekTarget(ranges, time, frameS, p.aheadSince ? now - p.aheadSince : 0);
    if (target === null || p.video.seeking) return false;
    p.video.currentTime = target;
    p.aheadSince = 0;
    counts.jumps++;
    // The pictures jumped over are skipped by this viewer (those of a gap the server's: counted
    // as gaps in the sequence numbers already).
    const from = Math.max(time, ranges[ranges.length - 1][0]);
    for (let n = Math.round((target - from) / frameS); n > 0; n--) frames.skipped();
    return true;
  }

  // Each picture the player presents is drawn on the canvas, with its capture time — but one
  // it is about to jump away from (the start of a join, a picture from before a gap): the
  // screen skips that, not a live one.
  function present(p, mediaTime) {
    if (p.gone) return;
    counts.pictures++;
    if (keepLive(p)) return;
    silentUnits = 0;
    lastPictureAt = mono();
    frames.present(p.video, { sequence: null, captureUs: Math.round((mediaTime + p.baseS) * 1e6), catchUp: false });
  }

  function watchPictures(p) {
    if (hasFrameCallback) {
      const onFrame = (now, metadata) => {
        if (p.gone) return;
        p.frameCallback = p.video.requestVideoFrameCallback(onFrame);
        present(p, metadata.mediaTime);
      };
      p.frameCallback = p.video.requestVideoFrameCallback(onFrame);
      return;
    }
    // Without frame callbacks (older browsers): a new picture is a new current time.
    const onAnimationFrame = () => {
      if (p.gone) return;
      p.animationFrame = requestAnimationFrame(onAnimationFrame);
      const time = p.video.currentTime;
      if (p.video.readyState >= 2 && time !== p.shownTime) {
        p.shownTime = time;
        present(p, time);
      }
    };
    p.animationFrame = requestAnimationFrame(onAnimationFrame);
  }

  function expectPictures() {
    silentUnits = 0;
    lastPictureAt = mono();
  }

  return {
    /** A new H.264 connection: play again (after a failure too, if the page tries again). */
    start() {
      release();
      failed = false;
      mime = '';
      init = null;
      expectPictures();
    },

    /** The `h264` message: the MIME type of what follows. */
    configure(msg) {
      if (msg && typeof msg.mime === 'string' && msg.mime) mime = msg.mime;
    },

    /** A binary message: an initialisation segment or a fragment. */
    receive(buffer) {
      if (!frames.paused) silentUnits++;
      const segment = parseSegment(buffer);
      if (!segment) {
        frames.rejected();
        // Nothing but MP4 comes on this connection: a server that sends something else from
        // the start does not know fragmented MP4.
        if (!init) fail('the server does not send fragmented MP4');
        return;
      }
      if (segment.kind === 'init') {
        init = buffer;
        counts.inits++;
        // Another picture size: the player takes it before the fragments made with it.
        if (player && !failed) player.queue.push(buffer);
        return;
      }
      frames.arrived(segment.sequence);
      counts.fragments++;
      if (segment.durationUs > 0) frameS = segment.durationUs / 1e6;
      if (failed || frames.paused) return;
      if (!player && !mime) {
        fail('the server did not name the video type');
        return;
      }
      if (!gate.admit(segment, player ? player.queue.length : 0)) {
        frames.skipped();
        return;
      }
      if (!player) {
        if (!init) {
          frames.skipped();
          return;
        }
        if (!attach(segment.decodeUs)) return;
        player.queue.push(init);
      }
      if (segment.keyframe) player.keyframes.push(segment.decodeUs / 1e6 - player.baseS);
      player.queue.push(buffer);
      pump(player);
    },

    /** Paused: the player is let go (the picture on screen stays). */
    setPaused(paused) {
      if (paused) release();
      else expectPictures();
    },

    /** Called now and then: keeps the player live, and fails one that gives no pictures. */
    check() {
      if (player) {
        keepLive(player);
        pump(player);
      }
      if (!failed && silentUnits >= SILENT_UNITS && mono() - lastPictureAt > SILENT_MS) {
        fail(`no picture from ${silentUnits} fragments`);
      }
    },

    stop() {
      release();
      mime = '';
      init = null;
      expectPictures();
    },

    /** For the test hook. */
    state() {
      const p = player;
      const ranges = p && p.buffer ? rangesOf(p.buffer.buffered) : [];
      return {
        ...counts,
        mime,
        failed,
        player: p ? (p.buffer ? 'open' : 'opening') : 'none',
        queued: p ? p.queue.length : 0,
        buffered: ranges,
        currentTime: p ? p.video.currentTime : null,
        aheadS: p && ranges.length ? ranges[ranges.length - 1][1] - p.video.currentTime : null,
        waitingForKeyframe: gate.waiting,
      };
    },
  };
}
