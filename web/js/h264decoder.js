// wsjpeg viewer: H.264 pictures with the browser's video decoder (WebCodecs). Every access unit
// from a keyframe on is decoded, in order; the renderer draws only the newest picture. Any sign
// that the decoder cannot do it is reported once, so that the page can go back to JPEG.

import { mono } from './clock.js';
import { createKeyframeGate } from './keyframes.js';
import { h264DecoderConfig, parseAccessUnit } from './protocol.js';

// Messages received and this long without a picture: whatever the reason (a decoder that takes
// units and gives nothing, no configuration, messages that are not access units), H.264 is not
// working here.
const SILENT_UNITS = 45;
const SILENT_MS = 3000;

/** An error of the decoder in a few words: "EncodingError: Decoding error." */
function decoderErrorText(err) {
  if (!err) return 'unknown error';
  const name = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
  return name + (err.message || String(err));
}

/**
 * Decodes the binary messages of an H.264 connection onto `frames` (the renderer: it counts
 * them, and draws the decoded pictures). The `h264` message configures it (`configure(msg)`);
 * `stop()` when the connection goes; `setPaused(paused)` lets the decoder go while paused (the
 * server starts again at a keyframe on resume). `onFailure(reason)` is called once when the
 * decoder fails: an error, a configuration it refuses, a decoder the browser closed, or a
 * stream that gives no pictures. Nothing is decoded after that until `start()`.
 */
export function createH264Decoder({ frames, onFailure }) {
  const gate = createKeyframeGate();
  let decoder = null;
  let config = null;         // the configuration from the last `h264` message
  let failed = false;
  let silentUnits = 0;       // messages received since the last picture came out (or a restart)
  let lastPictureAt = 0;
  let newestUs = 0;          // the capture time of the newest unit received
  const counts = { units: 0, decoded: 0, pictures: 0, configured: 0 };

  function fail(reason) {
    if (failed) return;
    failed = true;
    release();
    onFailure(reason);
  }

  function release() {
    if (decoder && decoder.state !== 'closed') {
      try { decoder.close(); } catch (err) { /* closed meanwhile */ }
    }
    decoder = null;
    gate.restart();
  }

  function output(picture) {
    counts.pictures++;
    silentUnits = 0;
    lastPictureAt = mono();
    // The chunk's timestamp is the capture time: the latency is measured when it is drawn. A
    // picture older than a unit already here is the decoder catching up (the server sends the
    // units since the last keyframe to a viewer that joins or resumes): the renderer skips it
    // if a newer one comes before the screen is next painted.
    frames.present(picture, {
      sequence: null,
      captureUs: picture.timestamp,
      catchUp: picture.timestamp < newestUs,
    });
  }

  // A decoder configured with `config`, made when first needed (and again after a pause).
  function ready() {
    if (decoder) {
      if (decoder.state === 'closed') fail('the browser closed the video decoder');
      return !failed && decoder !== null;
    }
    if (!config) return false;
    try {
      decoder = new VideoDecoder({ output, error: (err) => fail(decoderErrorText(err)) });
      decoder.configure(config);
    } catch (err) {
      fail(decoderErrorText(err));
      return false;
    }
    counts.configured++;
    gate.restart();
    return true;
  }

  // Pictures are due from now on: the silence is counted afresh.
  function expectPictures() {
    silentUnits = 0;
    lastPictureAt = mono();
  }

  return {
    /** A new H.264 connection: decode again (after a failure too, if the page tries again). */
    start() {
      release();
      failed = false;
      config = null;
      expectPictures();
    },

    /** The `h264` message: what the stream is. A change takes a new decoder. */
    configure(msg) {
      const next = h264DecoderConfig(msg);
      if (!next) return;
      if (config && JSON.stringify(config) === JSON.stringify(next)) return;
      config = next;
      release();
    },

    /** A binary message. */
    receive(buffer) {
      if (!frames.paused) silentUnits++;
      const unit = parseAccessUnit(buffer);
      if (!unit) {
        frames.rejected();
        return;
      }
      frames.arrived(unit.sequence);
      counts.units++;
      newestUs = unit.captureUs;
      if (failed || frames.paused) return;
      if (!ready() || !gate.admit(unit, decoder.decodeQueueSize)) {
        frames.skipped();
        return;
      }
      try {
        decoder.decode(new EncodedVideoChunk({
          type: unit.keyframe ? 'key' : 'delta',
          timestamp: unit.captureUs,
          data: unit.data,
        }));
      } catch (err) {
        fail(decoderErrorText(err));
        return;
      }
      counts.decoded++;
    },

    /** Paused: the decoder is let go (a hidden tab's would be reclaimed by the browser anyway). */
    setPaused(paused) {
      if (paused && decoder) release();
      if (!paused) expectPictures();
    },

    /** Called now and then: fails a stream that gives no pictures. */
    check() {
      if (!failed && silentUnits >= SILENT_UNITS && mono() - lastPictureAt > SILENT_MS) {
        fail(`no picture from ${silentUnits} messages`);
      }
    },

    stop() {
      release();
      config = null;
      expectPictures();
    },

    /** For the test hook. */
    state() {
      return {
        ...counts,
        codec: config ? config.codec : null,
        decoder: decoder ? decoder.state : 'none',
        decodeQueueSize: decoder ? decoder.decodeQueueSize : 0,
        waitingForKeyframe: gate.waiting,
        failed,
      };
    },
  };
}
