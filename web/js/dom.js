// wsjpeg viewer: small DOM helpers shared by the parts of the page.

// Only touch the DOM when a value really changes (cheap, and quiet for screen readers).
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

/** A short note at the bottom of the page that goes away by itself: returns `show(text)`. */
export function createToast(node) {
  let timer = 0;
  return (text) => {
    clearTimeout(timer);
    node.textContent = text;
    timer = setTimeout(() => { node.textContent = ''; }, 3500);
  };
}
