// wsjpeg viewer: the picture full screen — natively where the browser allows it, else by
// filling the window ("pseudo" fullscreen, e.g. on iPhone).

import { setAttr } from './dom.js';

const fullscreenElement = () => document.fullscreenElement || document.webkitFullscreenElement || null;

/**
 * Wires the Fullscreen button, the exit button over the picture, a double click on the canvas
 * and the browser's own fullscreen changes. Returns { toggle(), leavePseudo() }; leavePseudo()
 * is for Escape and returns false when there was nothing to leave.
 */
export function createFullscreen({ stage, button, exitButton, canvas }) {
  let pseudo = false;

  function sync() {
    const on = pseudo || fullscreenElement() === stage;
    stage.classList.toggle('is-fullscreen', on);
    setAttr(button, 'aria-pressed', String(on));
    if (!on && document.activeElement === exitButton) button.focus();
  }

  function setPseudo(on) {
    pseudo = on;
    stage.classList.toggle('pseudo', on);
    sync();
  }

  function toggle() {
    if (pseudo) { setPseudo(false); return; }
    if (fullscreenElement()) {
      const exit = document.exitFullscreen || document.webkitExitFullscreen;
      if (exit) {
        const p = exit.call(document);
        if (p && p.catch) p.catch(() => {});
      }
      return;
    }
    const request = stage.requestFullscreen || stage.webkitRequestFullscreen;
    if (!request) { setPseudo(true); return; }
    try {
      const p = request.call(stage);
      if (p && p.catch) p.catch(() => setPseudo(true));
    } catch (err) {
      setPseudo(true);
    }
  }

  document.addEventListener('fullscreenchange', sync);
  document.addEventListener('webkitfullscreenchange', sync);
  button.addEventListener('click', toggle);
  exitButton.addEventListener('click', toggle);
  canvas.addEventListener('dblclick', toggle);

  return {
    toggle,
    leavePseudo() {
      if (!pseudo) return false;
      setPseudo(false);
      return true;
    },
  };
}
