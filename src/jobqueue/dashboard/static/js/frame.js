// The frame around every view: header and navigation, flash messages, the live status,
// in-page confirmations, and running an action the user asked for.

import { h, link } from "./dom.js";

const flash = h("div", { id: "flash", role: "status", "aria-live": "polite" });
const liveStatus = h("span", { id: "live", class: "live" }, "…");

// Where the views draw.
export const main = h("main", { id: "main" });

export function mountFrame() {
  const nav = h(
    "nav",
    {},
    link("/", "Overview"),
    link("/jobs?state=failed", "Failed"),
    link("/jobs?state=active", "Active"),
    link("/jobs", "All jobs"),
    link("/schedules", "Schedules"),
  );
  document.body.append(
    h("header", {}, h("a", { class: "brand", href: "#/" }, "jobqueue"), nav, liveStatus),
    flash,
    main,
  );
}

export function say(message, kind) {
  const note = h("p", { class: "flash " + (kind || "info") }, message);
  flash.replaceChildren(note);
  setTimeout(() => note.remove(), 6000);
}

export function setLive(text, kind) {
  liveStatus.textContent = text;
  liveStatus.className = "live " + (kind || "");
}

// The router's "draw the current view again", set by the router: views call it after an
// action without importing the router (which imports them).
let redraw = async () => {};

export function setRedraw(callback) {
  redraw = callback;
}

export function refreshView() {
  return redraw();
}

// In-page confirmation (no window.confirm: the page never opens a dialog).
export function confirmPanel(question, verb, action) {
  const panel = h(
    "div",
    { class: "confirm", role: "alertdialog", "aria-label": question },
    h("p", {}, question),
    h("button", { class: "danger", type: "button", "data-confirm": "yes", onclick: run }, verb),
    h("button", { type: "button", onclick: () => panel.remove() }, "Keep them"),
  );
  async function run() {
    panel.remove();
    await action();
  }
  return panel;
}

// Runs an action, says how it went, then draws the view again (or runs `after`).
export async function act(label, call, after) {
  try {
    const answer = await call();
    say(label(answer), "ok");
  } catch (error) {
    say(error.message, "error");
  }
  await (after || refreshView)();
}
