// DOM helpers. Values only ever become text nodes or attribute values:
// nothing here parses HTML, so data cannot turn into markup.

/**
 * Builds an element. props: "class", "text", "on<event>" (a function),
 * anything else an attribute (true: present, false/null/undefined: absent).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = String(value);
    else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      element.addEventListener(key.slice(2), value);
    } else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

/** Appends nodes and strings (as text) to an element. */
export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replaces an element's children (null and undefined skipped; strings as text). */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

function pad(number, width = 2) {
  return String(number).padStart(width, "0");
}

/** "2026-11-30 03:12:45" in local time, or "" for a missing or bad timestamp. */
export function formatTime(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** A <time> element for a timestamp, or an em dash. */
export function timeNode(value) {
  if (!value) return h("span", { class: "muted", "aria-label": "none", text: "—" });
  return h("time", { datetime: String(value), title: String(value), text: formatTime(value) });
}

/** Seconds between two timestamps, as "1.25 s", or "". */
export function elapsed(from, to) {
  const start = new Date(from).getTime();
  const end = new Date(to).getTime();
  if (!Number.isFinite(start) || !Number.isFinite(end)) return "";
  const seconds = (end - start) / 1000;
  return seconds < 60 ? `${seconds.toFixed(2)} s` : `${(seconds / 60).toFixed(1)} min`;
}

/** A text value for any JSON value (objects as indented JSON). */
export function jsonText(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

/** Shows or hides a banner with a message (text only). */
export function banner(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}
