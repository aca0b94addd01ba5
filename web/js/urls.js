// wsjpeg viewer: the server's URLs, relative to the page and with its token. Pure functions.

/**
 * `path` on the page's own server, relative to the page (so a reverse-proxy prefix keeps
 * working), with `params` and the page's `token` as the query.
 */
export function endpointUrl(path, pageHref, token, params) {
  const url = new URL(path, pageHref);
  url.search = '';
  url.hash = '';
  for (const [k, v] of Object.entries(params || {})) url.searchParams.set(k, v);
  if (token) url.searchParams.set('token', token);
  return url;
}

/**
 * The WebSocket stream with capture times and object detections (ws: or wss: as the page), as
 * H.264 when `codec` is 'h264', in fragmented MP4 when `container` is 'fmp4'. A server without
 * detections ignores the parameter.
 */
export function streamUrl(pageHref, token, codec = 'jpeg', container = '') {
  const params = { meta: '1', detections: '1' };
  if (codec === 'h264') params.codec = 'h264';
  if (codec === 'h264' && container) params.container = container;
  const url = endpointUrl('stream', pageHref, token, params);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** The `token` query parameter of the page, or null. */
export function pageToken(pageSearch) {
  return new URLSearchParams(pageSearch).get('token');
}

/** The page's address without its `token` parameter (the rest of the query and the hash kept). */
export function withoutToken(pageHref) {
  const url = new URL(pageHref);
  url.searchParams.delete('token');
  return url.href;
}
