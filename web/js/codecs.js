// wsjpeg viewer: JPEG or H.264 — what the page may ask the server for, as pure decisions.

/** The codec string checked while the server has not named its own yet (Constrained Baseline). */
export const FALLBACK_H264_CODEC = 'avc1.42E01F';
const PREFERENCES = ['auto', 'jpeg', 'h264'];
const CODEC_NAMES = { jpeg: 'JPEG', h264: 'H.264' };
const PREFERENCE_NAMES = { auto: 'Auto', jpeg: 'JPEG', h264: 'H.264' };

/** "JPEG" or "H.264". */
export function codecName(codec) {
  return CODEC_NAMES[codec] || '';
}

/** "Auto", "JPEG" or "H.264". */
export function preferenceName(preference) {
  return PREFERENCE_NAMES[preference] || '';
}

/** The page's `codec` query parameter: 'jpeg' or 'h264' forces one, anything else is 'auto'. */
export function codecPreference(pageSearch) {
  const asked = (new URLSearchParams(pageSearch).get('codec') || '').toLowerCase();
  return asked === 'jpeg' || asked === 'h264' ? asked : 'auto';
}

/** The next preference of the switch: Auto → JPEG → H.264 → Auto. */
export function nextPreference(preference) {
  return PREFERENCES[(PREFERENCES.indexOf(preference) + 1) % PREFERENCES.length];
}

/** The codec string to ask VideoDecoder.isConfigSupported about, from `hello.h264`. */
export function codecToCheck(offer) {
  return offer && typeof offer.codec === 'string' && offer.codec ? offer.codec : FALLBACK_H264_CODEC;
}

/**
 * What to stream: { codec: 'jpeg' | 'h264', note }. `note` says why H.264 is not used when it was
 * asked for ('' otherwise). The facts:
 *   preference  'auto' | 'jpeg' | 'h264'
 *   secure      window.isSecureContext (WebCodecs exists only there)
 *   decoder     VideoDecoder exists
 *   offered     the server's hello has `h264`: true, false, or null before any hello
 *   supported   VideoDecoder.isConfigSupported said so: true, false, or null before it answered
 *   failure     why H.264 failed on this page ('' if it did not): it is not tried again
 * Auto takes H.264 only once everything is known to be fine; a forced H.264 is tried while
 * something is still unknown, and the hello of that connection settles it.
 */
export function chooseCodec({ preference, secure, decoder, offered, supported, failure }) {
  if (preference === 'jpeg') return { codec: 'jpeg', note: '' };
  let why = '';
  if (failure) why = `H.264 failed in this browser (${failure})`;
  else if (!secure) why = 'H.264 needs a secure page (https, or localhost)';
  else if (!decoder) why = 'this browser cannot decode H.264 (no WebCodecs)';
  else if (offered === false) why = 'the server offers no H.264';
  else if (supported === false) why = 'this browser cannot decode this H.264 stream';
  if (why) return { codec: 'jpeg', note: preference === 'h264' ? `Showing JPEG: ${why}` : '' };
  if (offered && supported) return { codec: 'h264', note: '' };
  return { codec: preference === 'h264' ? 'h264' : 'jpeg', note: '' };
}
