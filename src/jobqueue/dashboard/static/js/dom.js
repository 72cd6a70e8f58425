// Building the page: elements from tags, attributes and children, and the small formats
// every view shares (times, durations, badges, tables, links).
//
// Everything a job carries reaches the page through h()/svg() as DOM text nodes or
// attribute values, never as HTML: no module of the dashboard uses innerHTML, so a job
// titled <script>…</script> shows as those characters.

export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

export function link(hash, ...children) {
  return h("a", { href: "#" + hash }, ...children);
}

export function linkWith(hash, attrs, ...children) {
  return h("a", { ...attrs, href: "#" + hash }, ...children);
}

export function jobHash(id) {
  return "/jobs/" + encodeURIComponent(id);
}

export function listHash(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return "/jobs" + (text ? "?" + text : "");
}

export function badge(state) {
  return h("span", { class: "badge state-" + state }, state);
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const past = seconds >= 0;
  const value = Math.abs(seconds);
  let text;
  if (value < 1) text = "now";
  else if (value < 90) text = Math.round(value) + " s";
  else if (value < 90 * 60) text = Math.round(value / 60) + " min";
  else if (value < 36 * 3600) text = Math.round(value / 3600) + " h";
  else text = Math.round(value / 86400) + " d";
  if (text === "now") return text;
  return past ? text + " ago" : "in " + text;
}

export function when(timestamp, now) {
  if (timestamp === null || timestamp === undefined) return "—";
  const date = new Date(timestamp * 1000);
  return h("time", { datetime: date.toISOString(), title: date.toLocaleString() }, ago(now - timestamp));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 120) return seconds.toFixed(1) + " s";
  return ago(seconds).replace(" ago", "");
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function table(headings, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headings.map((heading) => h("th", { scope: "col" }, heading)))),
      h("tbody", {}, rows),
    ),
  );
}
