// Small helpers for building the page. Text from the server (nicks, lines, file names) only
// ever reaches the page through `textContent`, never as HTML, and always through `visible`:
// a newline could forge a line with another time and nick, a right-to-left override make
// `evil\u202etxt.exe` read as `evilexe.txt`. The CLI escapes the same characters the same way.

/// Control characters (tab and newline included), DEL, C1 controls and the bidirectional
/// formatting characters.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
const NAMED = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/// `text` with every unsafe character written as a visible escape (`\n`, `\e`, `\u{202e}`).
export function visible(text) {
  return String(text).replace(UNSAFE, (c) => NAMED[c] ?? `\\u{${c.codePointAt(0).toString(16)}}`);
}

/// Sets a node's text, made `visible`.
export function setText(node, text) {
  node.textContent = visible(text);
}

/// An element with properties and children; strings become text nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'title') node.title = visible(value);
    else node[key] = value;
  }
  for (const child of children) {
    if (typeof child === 'string') node.append(visible(child));
    else if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function humanSize(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

const pad = (n) => String(n).padStart(2, '0');

/// A moment as the page shows it everywhere, chat and files alike: `HH:MM` today,
/// `YYYY-MM-DD HH:MM` any other day (local time).
export function clock(date = new Date()) {
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return time;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}
