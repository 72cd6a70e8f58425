// The periodic schedules: when each runs, its last tick and job, missed and skipped ticks;
// pause, resume, run now.

import { api, shared } from "../api.js";
import { badge, duration, h, jobHash, link, listHash, replace, table, when } from "../dom.js";
import { act, main } from "../frame.js";

function whenText(definition) {
  try {
    const fields = JSON.parse(definition);
    if (fields.cron) return fields.cron + " (" + (fields.tz || "UTC") + ")";
    if (fields.every) return "every " + duration(fields.every);
  } catch (_) {
    // an older or foreign record: show it as stored
  }
  return definition;
}

function buttons(info) {
  if (shared.stats && shared.stats.read_only) return null;
  const path = "schedules/" + encodeURIComponent(info.name);
  const button = (action, label, call, message) =>
    h("button", { type: "button", "data-action": action, onclick: () => act(message, call) }, label);
  return [
    info.paused
      ? button("resume", "Resume", () => api("POST", path + "/resume"), () => "Resumed " + info.name)
      : button("pause", "Pause", () => api("POST", path + "/pause"), () => "Paused " + info.name),
    info.worker
      ? button("run", "Run now", () => api("POST", path + "/run"), (job) => "Submitted job " + job.id)
      : null,
  ];
}

export function schedulesPage() {
  const rows = h("section", { "aria-label": "schedules" });
  replace(main, h("h1", {}, "Schedules"), rows);

  async function refresh() {
    const [current, answer] = await Promise.all([api("GET", "stats"), api("GET", "schedules")]);
    shared.stats = current;
    const now = answer.now;
    const lines = answer.schedules.map((info) =>
      h(
        "tr",
        { "data-schedule": info.name, class: info.paused ? "paused" : "" },
        h("th", { scope: "row" }, info.name, info.paused ? h("span", { class: "badge paused" }, "paused") : null),
        h("td", {}, info.worker ? link(listHash({ name: info.worker }), info.worker) : "not declared here"),
        h("td", { class: "mono" }, whenText(info.definition)),
        h("td", {}, info.next_run === null ? "—" : when(info.next_run, now)),
        h("td", {}, when(info.last_tick, now)),
        h(
          "td",
          {},
          info.last_job_id ? [link(jobHash(info.last_job_id), info.last_job_id), " "] : "—",
          info.last_job_state ? badge(info.last_job_state) : null,
        ),
        h("td", { class: "num", "data-missed": info.missed }, info.missed),
        h("td", { class: "num" }, info.skipped),
        h("td", {}, buttons(info)),
      ),
    );
    replace(
      rows,
      table(["Schedule", "Worker", "When", "Next", "Last tick", "Last job", "Missed", "Skipped", ""], lines, "No schedules."),
    );
  }
  return { refresh };
}
