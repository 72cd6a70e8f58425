// Routing and the live loop: the hash picks a view; the view is drawn again every
// POLL_MS while the tab is visible, and not at all while it is hidden. The server's state
// lists (GET /api/meta) are read once, before the first view.

import { ApiError, loadMeta } from "./api.js";
import { say, setLive, setRedraw } from "./frame.js";
import { jobPage } from "./views/job.js";
import { jobList } from "./views/jobs.js";
import { overview } from "./views/overview.js";
import { schedulesPage } from "./views/schedules.js";
import { signIn } from "./views/signin.js";

const POLL_MS = 2000;

let view = null;
let next = null; // what each tick does: draw the view again, or start again; null: signed out
let timer = null;
let generation = 0; // bumped by each start(): answers for an older view are dropped

function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  if (path === "/jobs") return jobList(params);
  if (path === "/schedules") return schedulesPage();
  if (path.startsWith("/jobs/")) return jobPage(decodeURIComponent(path.slice("/jobs/".length)));
  return overview();
}

// Says what went wrong; on a 401 shows the sign-in form and stops polling.
function trouble(error) {
  if (error instanceof ApiError && error.status === 401) {
    stop();
    signIn(error, start);
    setLive("signed out", "error");
    return;
  }
  setLive(error instanceof ApiError ? error.message : "cannot reach the server", "error");
  if (error instanceof ApiError && error.status === 403) say(error.message, "error");
}

async function refreshView() {
  if (!view) return;
  const mine = generation;
  try {
    await view.refresh();
    if (mine === generation) setLive("live · " + new Date().toLocaleTimeString(), "ok");
  } catch (error) {
    if (mine === generation) trouble(error);
  }
}

function schedule() {
  clearTimeout(timer);
  if (!next) return;
  if (document.visibilityState !== "visible") {
    setLive("paused while hidden", "idle");
    return;
  }
  const mine = generation;
  timer = setTimeout(async () => {
    if (next) await next();
    if (mine === generation) schedule();
  }, POLL_MS);
}

function stop() {
  clearTimeout(timer);
  view = null;
  next = null;
}

export async function start() {
  generation += 1;
  const mine = generation;
  stop();
  try {
    await loadMeta();
  } catch (error) {
    if (mine !== generation) return;
    // The server is away (try again in a while), or wants credentials first (sign in).
    next = start;
    trouble(error);
    schedule();
    return;
  }
  if (mine !== generation) return;
  view = route();
  next = refreshView;
  await refreshView();
  if (mine === generation) schedule();
}

export function run() {
  setRedraw(refreshView);
  window.addEventListener("hashchange", start);
  document.addEventListener("visibilitychange", async () => {
    if (document.visibilityState === "visible" && next) await next();
    schedule();
  });
  start();
}
