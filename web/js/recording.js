// wsjpeg viewer: recording on the device — the REC badge with the elapsed time, the error note,
// the Record/Stop button, and what screen readers are told about it.

import { setAttr, setText } from './dom.js';
import { failureText, formatElapsed } from './format.js';
import { recordingState } from './protocol.js';

const REQUEST_TIMEOUT_MS = 15000;

/** What to say when the recording state goes from `prev` (null: none) to `next`; '' for nothing. */
export function recordingAnnouncement(prev, next) {
  const wasActive = !!(prev && prev.active);
  if (next.active && !wasActive) return 'Recording started.';
  if (!next.active && wasActive) return next.error ? `Recording stopped: ${next.error}` : 'Recording stopped.';
  if (next.error && next.error !== (prev ? prev.error : '')) return `Recording error: ${next.error}`;
  return '';
}

/** Whole seconds from `startedMs` to `nowMs`, never negative. */
export function elapsedSeconds(startedMs, nowMs) {
  return Math.max(0, Math.floor((nowMs - startedMs) / 1000));
}

/**
 * The recording indicator and button. `endpoint(path)` builds server URLs, `toast(text)` shows
 * a note, `serverNowMs()` is now on the server's clock, `connected()` whether we are.
 */
export function createRecording(ui, { endpoint, toast, serverNowMs, connected }) {
  let recording = null;        // the server's last `recording` message on this connection
  let busy = false;            // a start/stop request is in flight

  function render() {
    const r = connected() ? recording : null;
    const active = !!(r && r.active);
    ui.rec.hidden = !active;
    if (active) {
      const since = Date.parse(r.started);
      if (Number.isFinite(since)) {
        // Elapsed on the server's clock: the device's idea of "started" is what counts.
        setText(ui.recTime, formatElapsed(elapsedSeconds(since, serverNowMs())));
        const at = new Date(since).toLocaleTimeString();
        setText(ui.recLabel, `Recording since ${at}`);
        ui.rec.title = `Recording since ${at}` + (r.format ? ` (${r.format})` : '');
      } else {
        setText(ui.recTime, '');
        setText(ui.recLabel, 'Recording');
        ui.rec.title = 'Recording';
      }
    }
    const error = r && r.error ? r.error : '';
    ui.recError.hidden = !error;
    setText(ui.recError, error ? `Recording error: ${error}` : '');
    const control = !!(r && r.control);
    ui.record.hidden = !control;
    // The bar makes room for one more button.
    if (ui.record.parentElement) ui.record.parentElement.classList.toggle('with-record', control);
    if (control) {
      setText(ui.recordLabel, active ? 'Stop' : 'Record');
      setAttr(ui.record, 'aria-label', active ? 'Stop recording' : 'Start recording');
      setAttr(ui.record, 'data-active', String(active));
      ui.record.title = active ? 'Stop the recording on the device' : 'Start recording on the device';
    }
  }

  async function toggle() {
    if (busy || !recording || !recording.control) return;
    const action = recording.active ? 'stop' : 'start';
    busy = true;
    ui.record.setAttribute('aria-disabled', 'true');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const res = await fetch(endpoint(`api/record/${action}`).href, {
        method: 'POST', cache: 'no-store', credentials: 'same-origin', signal: abort.signal,
      });
      if (!res.ok) {
        let detail = '';
        try {
          const body = await res.json();
          if (body && typeof body.error === 'string') detail = body.error;
        } catch (err) { /* not JSON */ }
        throw new Error(res.status === 401 ? 'access denied' : detail || `server answered ${res.status}`);
      }
      // The indicator follows the server's `recording` message, not this answer.
      toast(action === 'start' ? 'Recording requested' : 'Stop requested');
    } catch (err) {
      toast(`Could not ${action} recording: ` + failureText(err));
    } finally {
      clearTimeout(timer);
      busy = false;
      ui.record.removeAttribute('aria-disabled');
    }
  }
  ui.record.addEventListener('click', toggle);

  return {
    render,
    /** The last state the server reported on this connection (a copy), or null. */
    get state() { return recording ? { ...recording } : null; },

    /** A `recording` message from the server. */
    update(msg) {
      const prev = recording;
      recording = recordingState(msg);
      const said = recordingAnnouncement(prev, recording);
      if (said) setText(ui.recAnnouncer, said);
      render();
    },

    /** A new connection: the server says again right after hello if there is a recording. */
    reset() {
      recording = null;
    },
  };
}
