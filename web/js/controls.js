// wsjpeg viewer: Pause/Resume (the button, the P key, and a hidden tab) and the keyboard
// shortcuts S, P, F, D, C, ? and Escape.

import { setAttr, setText } from './dom.js';

/**
 * The action a key press asks for: 'fullscreen', 'snapshot', 'pause', 'detections', 'codec',
 * 'help', 'escape', or null for keys that are not ours (with a modifier, held down, or typed into a
 * form field).
 */
export function keyAction(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return null;
  const target = event.target;
  if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return null;
  switch (event.key) {
    case 'f': case 'F': return 'fullscreen';
    case 's': case 'S': return 'snapshot';
    case 'p': case 'P': return 'pause';
    case 'd': case 'D': return 'detections';
    case 'c': case 'C': return 'codec';
    case '?': return 'help';
    case 'Escape': return 'escape';
    default: return null;
  }
}

/**
 * Pause by the user, or while the tab is hidden. The renderer holds whether frames are shown
 * (`frames.paused`); the server is told with `send` whenever that changes. `onChange()` redraws
 * what depends on it.
 */
export function createPause({ button, label, frames, send, hidden, onChange }) {
  let user = false;

  function update() {
    const want = user || hidden();
    if (want !== frames.paused) {
      if (want) {
        frames.pause();
        send({ type: 'pause' });
      } else {
        frames.resume();
        send({ type: 'resume' });
      }
    }
    const text = user ? 'Resume' : 'Pause';
    setText(label, text);
    setAttr(button, 'aria-label', text);
    setAttr(button, 'data-paused', String(user));
    button.title = user ? 'Go back to the live picture (P)' : 'Pause the live picture (P)';
    onChange();
  }

  function toggle() {
    user = !user;
    update();
  }

  // Opened in a background tab: paused from the start (the server is told once connected).
  if (hidden()) frames.pause();
  button.addEventListener('click', toggle);

  return {
    /** Paused by the user (not just a hidden tab). */
    get user() { return user; },
    update,
    toggle,
  };
}

/**
 * Binds the shortcuts to `actions`: { fullscreen(), snapshot(), pause(), detections(), codec(),
 * help(), escape() → handled, modal() → a dialog is open (then only help and Escape work) }.
 */
export function bindKeys(actions) {
  document.addEventListener('keydown', (event) => {
    const action = keyAction(event);
    if (!action) return;
    if (actions.modal && actions.modal() && action !== 'help') return;
    if (action === 'escape') {
      if (!actions.escape()) return;
    } else {
      actions[action]();
    }
    event.preventDefault();
  });
}
