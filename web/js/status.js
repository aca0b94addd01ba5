// wsjpeg viewer: the status line (dot, text, camera state, page title), the overlay over the
// picture, and what screen readers are told. The decisions are pure functions of a view:
//   { connection, everConnected, healthy, reason, retrying, retryInMs,
//     camera: { state, message }, userPaused, paused, hasPicture, quietMs, switchingTo, link }
// (switchingTo: the name of the codec the page is reconnecting for, '' when it is not; link:
// linkhealth.js's judgement, { slow, shownFps, sourceFps } or null).

import { setAttr, setText } from './dom.js';
import { formatSlow } from './linkhealth.js';

const STALL_AFTER_MS = 3000;      // connected but no picture for this long: say so

const CAMERA_TEXT = {
  idle: 'Camera idle',
  starting: 'Camera starting…',
  streaming: 'Camera live',
  error: 'Camera unavailable — retrying…',
};

/** Pictures have stopped coming although the camera is said to be live. */
export function pictureStale(v) {
  return v.connection === 'connected' && v.hasPicture && !v.paused && v.quietMs > STALL_AFTER_MS;
}

/** Pictures arrive, but the link loses many of them: the stream is slower than the camera. */
export function streamSlow(v) {
  return v.connection === 'connected' && !v.paused && v.hasPicture && !!v.link && v.link.slow;
}

/**
 * The dot says what the picture says: red ('bad') when the camera failed or the link is gone,
 * yellow ('wait') while waiting for pictures or while many are lost on the way, green ('good')
 * only while they all arrive.
 */
export function health(v) {
  if (v.connection === 'connecting') return 'wait';
  if (v.connection !== 'connected' || v.camera.state === 'error') return 'bad';
  if (v.camera.state === 'starting' || pictureStale(v) || streamSlow(v)) return 'wait';
  return 'good';
}

/** The status text, the camera text and its tooltip, and the page title. */
export function statusLine(v) {
  const connected = v.connection === 'connected';
  let text;
  if (connected) {
    text = v.userPaused ? 'Connected (paused)' : 'Connected';
  } else if (v.connection === 'connecting') {
    text = v.switchingTo ? `Switching to ${v.switchingTo}…`
      : v.everConnected ? 'Reconnecting…' : 'Connecting…';
  } else {
    text = 'Disconnected';
  }
  const camera = !connected ? ''
    : v.camera.state === 'streaming' && pictureStale(v) ? 'No new picture'
    : v.camera.state === 'streaming' && streamSlow(v) ? `Slow stream: ${formatSlow(v.link)}`
    : (CAMERA_TEXT[v.camera.state] || '');
  const title = connected
    ? (v.camera.state === 'error' ? 'Camera error' : v.userPaused ? 'Paused' : streamSlow(v) ? 'Slow' : 'Live')
    : v.connection === 'connecting' ? 'Connecting' : 'Disconnected';
  return {
    text,
    camera,
    cameraTitle: connected && v.camera.message ? v.camera.message
      : streamSlow(v) ? 'The link is slower than the stream: pictures are skipped to stay live' : '',
    title: title + ' · wsjpeg',
  };
}

/**
 * The sentence over the picture ('' while all is well), whether the spinner turns (not while
 * waiting out a failure: nothing is in progress then) and whether "Retry now" is offered.
 */
export function overlayMessage(v) {
  let text = '';
  let spin = true;
  let retry = false;
  if (v.connection === 'disconnected') {
    const secs = Math.max(0, Math.ceil(v.retryInMs / 1000));
    text = (v.reason || 'Disconnected') +
      (v.retrying ? (secs > 0 ? ` — trying again in ${secs} s` : ' — reconnecting…') : '');
    spin = v.retrying && secs === 0;
    retry = true;
  } else if (v.connection === 'connecting') {
    // A codec switch keeps the picture on screen, undimmed, until the new one comes.
    text = v.switchingTo && v.hasPicture ? '' : v.everConnected ? 'Reconnecting…' : 'Connecting…';
  } else if (v.userPaused) {
    text = 'Paused — press P or the Pause button to go live';
    spin = false;
  } else if (v.camera.state === 'error') {
    const said = v.camera.message ? `: ${v.camera.message}${/[.?!]$/.test(v.camera.message) ? '' : '.'}` : '.';
    text = `Camera unavailable${said} The device tries again by itself.`;
    spin = false;
  } else if (!v.hasPicture) {
    text = v.camera.state === 'starting' ? 'Camera starting…' : 'Waiting for the first picture…';
  } else if (pictureStale(v)) {
    text = v.camera.state === 'starting' ? 'Camera starting…'
      : v.camera.state === 'idle' ? 'Camera idle — waiting for pictures…'
      : `No new picture for ${Math.round(v.quietMs / 1000)} s…`;
  }
  return { text, spin, retry };
}

/**
 * What to tell screen readers, given what they were last told (`announced`, a key): changes
 * that matter, once each — not every reconnect attempt. Null when there is nothing new.
 */
export function announcement(v, announced) {
  let key;
  let message;
  if (v.connection === 'connected' && v.healthy) {
    key = 'connected:' + v.camera.state;
    message = (announced.startsWith('connected') ? '' : announced ? 'Reconnected. ' : 'Connected. ') +
      (CAMERA_TEXT[v.camera.state] || '');
  } else if (v.connection === 'disconnected' && (announced === '' || announced.startsWith('connected'))) {
    key = 'disconnected';
    message = announced ? 'Disconnected. Reconnecting automatically.' : 'Cannot connect. Retrying automatically.';
  } else {
    return null;
  }
  if (key === announced) return null;
  return { key, message: message.trim() || 'Connected.' };
}

/**
 * The status line, overlay and announcer on the page. Keeps the camera state the server last
 * reported; every `render*` takes the rest of the view from the caller.
 */
export function createStatusView(ui) {
  let camera = { state: '', message: '' };
  let announced = '';

  function announce(view) {
    const said = announcement({ ...view, camera }, announced);
    if (!said) return;
    announced = said.key;
    setText(ui.announcer, said.message);
  }

  return {
    get camera() { return camera; },
    get overlayShown() { return !ui.overlay.hidden; },

    /** Returns whether the camera state really changed. */
    setCamera(next) {
      if (next.state === camera.state && next.message === camera.message) return false;
      camera = next;
      return true;
    },

    render(view) {
      const v = { ...view, camera };
      const line = statusLine(v);
      setAttr(ui.status, 'data-state', v.connection);
      setAttr(ui.status, 'data-health', health(v));
      setAttr(ui.status, 'data-camera', v.connection === 'connected' ? camera.state : '');
      setText(ui.statusText, line.text);
      setText(ui.camera, line.camera);
      ui.camera.title = line.cameraTitle;
      if (document.title !== line.title) document.title = line.title;
      announce(view);
    },

    announce,

    renderOverlay(view) {
      const v = { ...view, camera };
      const { text, spin, retry } = overlayMessage(v);
      ui.overlay.hidden = text === '';
      ui.spinner.hidden = !spin;
      ui.retry.hidden = !retry;
      setText(ui.overlayText, text);
      ui.stage.classList.toggle('stale', v.hasPicture && text !== '');
    },
  };
}
