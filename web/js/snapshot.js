// wsjpeg viewer: the Snapshot button — the server's newest frame, or the frozen picture on
// screen while paused, saved as a JPEG download.

import { failureText, snapshotFileName } from './format.js';

const SNAPSHOT_TIMEOUT_MS = 15000;
const JPEG_QUALITY = 0.92;

function saveJpeg(blob) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = snapshotFileName(new Date());
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// The picture on screen, as JPEG: what a paused viewer is looking at.
function canvasJpeg(canvas) {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the picture could not be encoded'))),
      'image/jpeg', JPEG_QUALITY);
  });
}

async function serverJpeg(url, signal) {
  const res = await fetch(url, { cache: 'no-store', signal });
  if (!res.ok) {
    throw new Error(res.status === 503 ? 'no picture available right now'
      : res.status === 401 ? 'access denied' : `server answered ${res.status}`);
  }
  return res.blob();
}

/**
 * Returns `take()`, for the button and the S key. `frozen()` says whether the paused picture on
 * `canvas` is what to save; `endpoint(path)` builds server URLs; `toast(text)` reports.
 */
export function createSnapshot({ button, canvas, endpoint, toast, frozen }) {
  let busy = false;

  async function take() {
    if (busy) return;
    busy = true;
    button.setAttribute('aria-disabled', 'true');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), SNAPSHOT_TIMEOUT_MS);
    try {
      // Paused: the frozen picture, not whatever the camera sees by now.
      const still = frozen();
      saveJpeg(still ? await canvasJpeg(canvas) : await serverJpeg(endpoint('snapshot.jpg').href, abort.signal));
      toast(still ? 'Snapshot of the paused picture saved' : 'Snapshot saved');
    } catch (err) {
      toast('Snapshot failed: ' + failureText(err));
    } finally {
      clearTimeout(timer);
      busy = false;
      button.removeAttribute('aria-disabled');
    }
  }
  button.addEventListener('click', take);
  return take;
}
