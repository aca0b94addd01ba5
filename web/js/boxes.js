// wsjpeg viewer: detection boxes drawn on the picture's canvas — a rectangle per object and its
// label and score on a filled tab, in a colour of the label's own. The canvas is in frame
// pixels and CSS scales it, so sizes follow the frame: the boxes look the same in any layout.

const BOX_SATURATION = 0.85;
const BOX_LIGHTNESS = 0.55;

/** A hue (0–359) from the label's characters: the same label always gets the same colour. */
export function labelHue(label) {
  // FNV-1a over the UTF-16 code units; its low bits alone barely change with the last letter
  // ("cat" and "car" came out 2° apart), so the high bits are mixed in.
  let hash = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    hash ^= label.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return (hash >>> 0) % 360;
}

/** The label's colour as [r, g, b] (0–255): its hue, saturated and mid-light. */
export function labelRgb(label) {
  const hue = labelHue(label);
  const chroma = (1 - Math.abs(2 * BOX_LIGHTNESS - 1)) * BOX_SATURATION;
  const second = chroma * (1 - Math.abs(((hue / 60) % 2) - 1));
  const sector = Math.floor(hue / 60);
  const [r, g, b] = [
    [chroma, second, 0], [second, chroma, 0], [0, chroma, second],
    [0, second, chroma], [second, 0, chroma], [chroma, 0, second],
  ][sector];
  const base = BOX_LIGHTNESS - chroma / 2;
  return [r, g, b].map((c) => Math.round((c + base) * 255));
}

/** Dark text on light colours, white on dark ones. */
function captionColour([r, g, b]) {
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? '#000' : '#fff';
}

/**
 * `box` ([x, y, width, height]) from a frame of `from.width`×`from.height` to one of
 * `to.width`×`to.height`; a side `from` does not give is taken as the same.
 */
export function scaleBox(box, from, to) {
  const sx = from.width ? to.width / from.width : 1;
  const sy = from.height ? to.height / from.height : 1;
  return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy];
}

/** "person 91%", or the label alone without a score. */
export function objectCaption(object) {
  return object.score === null || object.score === undefined
    ? object.label
    : `${object.label} ${Math.round(object.score * 100)}%`;
}

/** Line width, font size and tab padding in frame pixels, in proportion to the frame. */
export function boxStyle(width, height) {
  const base = Math.min(width, height);
  const fontPx = Math.max(11, Math.round(base / 24));
  return {
    lineWidth: Math.max(2, Math.round(base / 180)),
    fontPx,
    padding: Math.round(fontPx * 0.3),
  };
}

/** Draws the objects of `set` (a parsed `detections` message) on `ctx`, a width×height canvas. */
export function drawBoxes(ctx, set, width, height) {
  const style = boxStyle(width, height);
  const line = style.lineWidth;
  const tabHeight = Math.round(style.fontPx * 1.35);
  ctx.save();
  ctx.lineWidth = line;
  ctx.font = `600 ${style.fontPx}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  for (const object of set.objects) {
    const [x, y, w, h] = scaleBox(object.box, set, { width, height });
    const left = Math.round(x);
    const top = Math.round(y);
    const right = Math.round(x + w);
    const bottom = Math.round(y + h);
    const rgb = labelRgb(object.label);
    const colour = `rgb(${rgb.join(', ')})`;
    // The line lies inside the box on whole pixels: crisp, and never over what the box leaves out.
    ctx.strokeStyle = colour;
    ctx.strokeRect(left + line / 2, top + line / 2, Math.max(0, right - left - line), Math.max(0, bottom - top - line));

    const text = objectCaption(object);
    const tabWidth = Math.ceil(ctx.measureText(text).width) + 2 * style.padding;
    const tabLeft = Math.max(0, Math.min(left, width - tabWidth));
    // Above the box, or inside its top edge when the box touches the top of the frame.
    const tabTop = top - tabHeight >= 0 ? top - tabHeight : Math.max(0, top);
    ctx.fillStyle = colour;
    ctx.fillRect(tabLeft, tabTop, tabWidth, tabHeight);
    ctx.fillStyle = captionColour(rgb);
    ctx.fillText(text, tabLeft + style.padding, tabTop + tabHeight / 2);
  }
  ctx.restore();
}
