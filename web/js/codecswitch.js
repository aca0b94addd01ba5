// wsjpeg viewer: JPEG or H.264 on this page — the preference (the page's ?codec= and the codec
// button, key C), what the server offers and this browser can decode, and H.264 failures,
// which are remembered for as long as the page is open so that it never goes back and forth.

import { chooseCodec, codecTitle, codecToCheck, mp4MimeOf, nextPreference, preferenceName, shownName } from './codecs.js';
import { setAttr, setText } from './dom.js';
import { mediaSourceClass, mseSupports } from './msedecoder.js';

const PREFERENCE_TITLES = {
  auto: 'H.264 when the server offers it and this browser can play it, else JPEG',
  jpeg: 'Always JPEG',
  h264: 'H.264, or JPEG where it cannot work',
};

/**
 * Chooses between JPEG and H.264, and how H.264 is played (WebCodecs, else Media Source
 * Extensions). `ui`: the codec button (hidden until a server offers H.264), its label and the
 * controls group (class `with-codec` while the button shows). `preference`: where to start
 * ('auto', 'jpeg' or 'h264'). `onSwitch(name)` is called when the current connection carries the wrong codec or
 * plays it the wrong way (reconnect for `name`, e.g. "H.264": `stream()` then says what to
 * ask for); `note(text)` shows a note.
 */
export function createCodecSwitch(ui, { preference: initial, onSwitch, note }) {
  const secure = window.isSecureContext === true;
  const decoder = typeof VideoDecoder === 'function' && typeof EncodedVideoChunk === 'function';
  const mse = mediaSourceClass() !== null;
  const checked = new Map(); // codec string → Promise of isConfigSupported's answer
  let preference = initial;
  let failure = '';
  let offered = null;        // from the last hello: null before any
  let supported = null;
  let mseSupported = null;
  let current = 'jpeg';      // what the current connection carries
  let currentPath = '';      // and how its H.264 is played
  let noted = '';
  let hellos = 0;            // an answer about an older hello is not waited for

  function decision() {
    return chooseCodec({ preference, secure, decoder, mse, offered, supported, mseSupported, failure });
  }

  // A browser that throws, rejects or answers nonsense cannot decode it.
  function isSupported(codec) {
    if (!checked.has(codec)) {
      let answer;
      try {
        answer = Promise.resolve(VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true }))
          .then((result) => !!result && result.supported === true, () => false);
      } catch (err) {
        answer = Promise.resolve(false);
      }
      checked.set(codec, answer);
    }
    return checked.get(codec);
  }

  // Says so once when what was asked for cannot be had, and reconnects if need be.
  function settle() {
    const next = decision();
    if (next.note && next.note !== noted) note(next.note);
    noted = next.note;
    render();
    if (next.codec !== current || next.path !== currentPath) onSwitch(shownName(next.codec, next.path));
  }

  function render() {
    const name = preferenceName(preference);
    setText(ui.label, name);
    setAttr(ui.button, 'aria-label', `Codec: ${name}`);
    // What is shown is said too, in the Codec figure's words: the two never disagree.
    ui.button.title = `Codec: ${name} — ${PREFERENCE_TITLES[preference]}. ` +
      `Now: ${shownTitle()}. Click to change (C)`;
  }

  // What the current connection shows, and why.
  function shownTitle() {
    const why = current === 'h264' ? '' : decision().why;
    return codecTitle({ codec: current, path: currentPath, why }, secure);
  }

  function cycle() {
    if (ui.button.hidden) return;
    preference = nextPreference(preference);
    // Asking for H.264 again is asking to try again.
    if (preference === 'h264') failure = '';
    noted = '';
    settle();
  }

  ui.button.addEventListener('click', cycle);
  render();

  return {
    cycle,
    /** What the current connection carries: 'jpeg' or 'h264'. */
    get current() { return current; },
    /** How its H.264 is played: 'webcodecs' or 'mse' ('' for JPEG). */
    get path() { return currentPath; },
    /** The Codec figure: "JPEG", "H.264" or "H.264 MSE". */
    get shown() { return shownName(current, currentPath); },
    /** The Codec figure's title: what the pictures come as, and why. */
    get title() { return shownTitle(); },
    get preference() { return preference; },
    /** Whether the server's last hello offered H.264. */
    get offered() { return offered === true; },
    /** Why this connection shows JPEG although the server offers H.264 ('' if it does not). */
    get why() { return current === 'h264' || offered !== true ? '' : decision().why; },
    /** Whether this page is a secure context (WebCodecs exists only there). */
    get secure() { return secure; },
    /** Why H.264 is not shown although asked for, or why it failed ('' if neither). */
    get note() { return decision().note || (failure ? `H.264 failed in this browser (${failure})` : ''); },

    /** For the stream URL of the next connection: { codec, path } it is to carry. */
    stream() {
      const next = decision();
      current = next.codec;
      currentPath = next.path;
      render();
      return { codec: current, path: currentPath };
    },

    /** A `hello`: what the server offers. May reconnect for the other codec. */
    async onHello(msg) {
      const offer = msg.h264 && typeof msg.h264 === 'object' ? msg.h264 : null;
      offered = offer !== null;
      ui.button.hidden = !offered;
      ui.controls.classList.toggle('with-codec', offered);
      const mine = ++hellos;
      supported = null;
      mseSupported = offered && mse ? mseSupports(offer.mime || mp4MimeOf(codecToCheck(offer))) : null;
      if (offered && secure && decoder) {
        const answer = await isSupported(codecToCheck(offer));
        if (mine !== hellos) return;
        supported = answer;
      }
      settle();
    },

    /** The H.264 decoder failed: JPEG from now on, unless the person asks for H.264 again. */
    fail(reason) {
      failure = reason;
      note(`H.264 stopped (${reason}): showing JPEG`);
      noted = decision().note;
      settle();
    },
  };
}
