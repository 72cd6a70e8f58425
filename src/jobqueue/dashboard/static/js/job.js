// What the views say about one job: whether it looks stuck, and its error in one line.

import { duration, h } from "./dom.js";

const LEASE_LOW_S = 3; // an active job whose lease ends this soon is not being renewed

export function stuckReason(job, now) {
  if (job.state === "active" && job.lease_expires_at !== null && job.lease_expires_at !== undefined) {
    const left = job.lease_expires_at - now;
    if (left < LEASE_LOW_S) return left < 0 ? "lease expired" : "lease ends in " + duration(left);
  }
  if (job.stalls > 0 && !["completed", "cancelled"].includes(job.state)) {
    return "stalled " + job.stalls + (job.stalls === 1 ? " time" : " times");
  }
  return null;
}

// The first line of an error's message: what a list has room for (the job page shows the
// whole message and its traceback).
export function firstLine(message) {
  const text = String(message === null || message === undefined ? "" : message);
  const end = text.indexOf("\n");
  return end === -1 ? text : text.slice(0, end);
}

// A list's cell for a job's error: its type in bold, then the first line of its message,
// as text; the whole first line in the tooltip when the cell cuts it short (two lines).
export function errorCell(error) {
  if (!error) return h("td", { class: "error-line" }, "");
  const line = firstLine(error.message);
  return h(
    "td",
    { class: "error-line", title: error.type + ": " + line },
    h("span", { class: "clamp" }, h("b", {}, error.type), line ? ": " + line : ""),
  );
}
