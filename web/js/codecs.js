// wsjpeg viewer: JPEG or H.264, and how H.264 is played — what the page may ask the server for,
// as pure decisions.

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

/** The MIME type of fragmented MP4 with this codec, as MediaSource.isTypeSupported takes it. */
export function mp4MimeOf(codec) {
  return `video/mp4; codecs="${codec}"`;
}

/** The codec string to ask VideoDecoder.isConfigSupported about, from `hello.h264`. */
export function codecToCheck(offer) {
  return offer && typeof offer.codec === 'string' && offer.codec ? offer.codec : FALLBACK_H264_CODEC;
}

/** How H.264 is played: 'webcodecs' or 'mse', in words for the Codec figure's title. */
const PATH_TITLES = {
  webcodecs: 'H.264, decoded by this browser (WebCodecs)',
  mse: 'H.264, played by this browser\'s video player (Media Source Extensions)',
};

/** The Codec figure: "JPEG", "H.264", or "H.264 MSE" when the video player plays it. */
export function shownName(codec, path) {
  if (codec !== 'h264') return codecName(codec);
  return path === 'mse' ? 'H.264 MSE' : 'H.264';
}

/**
 * What to stream: { codec: 'jpeg' | 'h264', path, why, note }. `path` is how H.264 is played:
 * 'webcodecs' (the video decoder, secure pages only) or 'mse' (fragmented MP4 through the video
 * player, any page); '' for JPEG. `why` says why H.264 is not shown although the server offers
 * it or it was asked for ('' otherwise); `note` is that as a sentence, when H.264 was asked for.
 * The facts:
 *   preference    'auto' | 'jpeg' | 'h264'
 *   secure        window.isSecureContext (WebCodecs exists only there)
 *   decoder       VideoDecoder exists
 *   mse           MediaSource (or ManagedMediaSource) exists
 *   offered       the server's hello has `h264`: true, false, or null before any hello
 *   supported     VideoDecoder.isConfigSupported said so: true, false, or null before it answered
 *   mseSupported  MediaSource.isTypeSupported said so: true, false, or null before any hello
 *   failure       why H.264 failed on this page ('' if it did not): it is not tried again
 * WebCodecs comes first (the least delay), then MSE. Auto takes H.264 only once everything is
 * known to be fine; a forced H.264 is tried while something is still unknown, and the hello of
 * that connection settles it.
 */
export function chooseCodec({ preference, secure, decoder, mse, offered, supported, mseSupported, failure }) {
  if (preference === 'jpeg') return { codec: 'jpeg', path: '', why: '', note: '' };
  const webcodecs = secure && decoder;
  let path = '';
  let why = '';
  if (failure) why = `H.264 failed in this browser (${failure})`;
  else if (offered === false) why = 'the server offers no H.264';
  else if (!webcodecs && !mse) {
    why = secure || decoder ? 'this browser can play H.264 neither with WebCodecs nor with Media Source Extensions'
      : 'WebCodecs needs a secure page (https, or localhost) and this browser has no Media Source Extensions';
  } else {
    if (webcodecs && supported !== false) path = 'webcodecs';
    else if (mse && mseSupported !== false) path = 'mse';
    else why = 'this browser cannot decode this H.264 stream';
  }
  if (why) {
    return { codec: 'jpeg', path: '', why: offered === false && preference !== 'h264' ? '' : why,
      note: preference === 'h264' ? `Showing JPEG: ${why}` : '' };
  }
  const known = offered && (path === 'webcodecs' ? supported : mseSupported);
  if (known || preference === 'h264') return { codec: 'h264', path, why: '', note: '' };
  return { codec: 'jpeg', path: '', why: '', note: '' };
}

/** The title of the Codec figure: what the pictures come as, and why. */
export function codecTitle({ codec, path, why }, secure) {
  if (codec === 'h264') {
    const title = PATH_TITLES[path] || 'Pictures come as H.264';
    return path === 'mse' && !secure ? `${title}: WebCodecs needs a secure page (https, or localhost)` : title;
  }
  return why ? `Showing JPEG: ${why}` : 'Pictures come as JPEG';
}
