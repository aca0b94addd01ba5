// wsjpeg viewer: the lasting note over the top of the picture — why the page shows what it
// shows and what would help, for as long as that holds. A dismissed note stays away until its
// words change.

import { setText } from './dom.js';
import { formatBitrate } from './format.js';
import { formatSlow, slowAdvice } from './linkhealth.js';

/** The project's steps for https (certificate and key), which give the page WebCodecs. */
export const TLS_HELP_URL = 'https://github.com/wsjpeg/wsjpeg#security-model-and-defaults';

/**
 * The note for a view of plain values, or null for none:
 *   connected, live (connected, not paused, pictures shown), link (linkhealth.js's judgement),
 *   codec ('jpeg' | 'h264'), h264Offered, h264Why (why H.264 is not shown, '' if it is or may
 *   be), secure (window.isSecureContext), bitsPerSecond (received, or null).
 * Returns { text, help } with `help` a URL to read on, or ''.
 */
export function noticeFor(v) {
  if (!v.connected) return null;
  const needsHttps = v.codec === 'jpeg' && v.h264Offered && !!v.h264Why && !v.secure;
  const help = needsHttps ? TLS_HELP_URL : '';
  if (v.live && v.link && v.link.slow) {
    const advice = slowAdvice({ codec: v.codec, h264Offered: v.h264Offered, h264Why: v.h264Why });
    return { text: `Slow stream: ${formatSlow(v.link)} arrive. ${advice}.`, help };
  }
  if (v.codec === 'jpeg' && v.h264Offered && v.h264Why) {
    const rate = v.live && v.bitsPerSecond ? `, ${formatBitrate(v.bitsPerSecond)}` : '';
    const more = needsHttps
      ? ' H.264 would need about a tenth of the bytes: open the https address to enable it.'
      : '';
    return { text: `Showing JPEG${rate}: ${v.h264Why}.${more}`, help };
  }
  return null;
}

/** The note on the page: `ui` has the box, its text, its help link and its close button. */
export function createNotice(ui) {
  let dismissed = '';
  let shown = '';
  ui.close.addEventListener('click', () => {
    dismissed = shown;
    ui.box.hidden = true;
  });

  return {
    get text() { return ui.box.hidden ? '' : shown; },

    render(notice) {
      // Its figures change every second; dismissing it is for its reason.
      const text = notice ? notice.text : '';
      const reason = text.replace(/\d+(\.\d+)?/g, '#');
      shown = reason;
      ui.box.hidden = !notice || reason === dismissed;
      if (ui.box.hidden) return;
      setText(ui.text, text);
      ui.help.hidden = !notice.help;
      if (notice.help) ui.help.href = notice.help;
    },
  };
}
