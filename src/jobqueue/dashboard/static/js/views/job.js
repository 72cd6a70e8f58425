// One job's page: its state and the actions the server allows in it, progress, fields,
// data, result, error with traceback, log lines and every finished attempt.

import { ApiError, api, shared, stateInfo } from "../api.js";
import { badge, duration, h, jobHash, json, link, listHash, replace, table, when } from "../dom.js";
import { act, confirmPanel, main } from "../frame.js";
import { stuckReason } from "../job.js";

export function jobPage(id) {
  const body = h("div", {});
  replace(main, body);
  let dispatchersById = new Map();

  // Per action the server may allow (GET /api/meta): its button. Unknown ones are skipped.
  function button(job, action, bar) {
    const path = "jobs/" + encodeURIComponent(job.id);
    const make = (label, call, message, danger) =>
      h("button", { type: "button", class: danger ? "danger" : "", "data-action": action, onclick: () => act(message, call) }, label);
    if (action === "retry") {
      return make("Retry", () => api("POST", path + "/retry"), () => "Retried: the job is waiting again");
    }
    if (action === "run-now") {
      return make("Run now", () => api("POST", path + "/run-now"), () => "The job is due now");
    }
    if (action === "cancel") {
      if (job.cancel_requested) return null; // asked already: its dispatcher is stopping it
      return make("Cancel", () => api("POST", path + "/cancel"), (answer) =>
        answer.state === "cancelled" ? "Cancelled" : "Cancel requested: its dispatcher is stopping it", true);
    }
    if (action === "remove") {
      const gone = async () => {
        location.hash = listHash({ state: job.state });
      };
      const remove = () => act(() => "Removed job " + job.id, () => api("DELETE", path), gone);
      return h(
        "button",
        {
          type: "button",
          class: "danger",
          "data-action": "remove",
          onclick: () => bar.append(confirmPanel("Remove this job? It cannot be undone.", "Remove", remove)),
        },
        "Remove",
      );
    }
    return null;
  }

  function actions(job) {
    if (shared.stats && shared.stats.read_only) return null;
    const bar = h("div", { class: "actions" });
    for (const action of stateInfo(job.state).actions) {
      const made = button(job, action, bar);
      if (made) bar.append(made);
    }
    return bar;
  }

  function field(label, value) {
    return [h("dt", {}, label), h("dd", {}, value === null || value === undefined || value === "" ? "—" : value)];
  }

  function fields(job, now) {
    const holder = job.dispatcher ? dispatchersById.get(job.dispatcher) : null;
    return h(
      "dl",
      { class: "fields" },
      field("Id", h("span", { class: "mono" }, job.id)),
      field("Worker", link(listHash({ name: job.name }), job.name)),
      field("Priority", job.priority),
      field("Attempts", `${job.attempts_made} of ${job.attempts}`),
      field("Stalls", job.stalls),
      field("Unique key", job.unique_key),
      field("Created", when(job.created_at, now)),
      field("Due", when(job.run_at, now)),
      field("Started", when(job.started_at, now)),
      field("Finished", when(job.finished_at, now)),
      field("Held by", job.dispatcher ? [h("span", { class: "mono" }, job.dispatcher), holder ? ` (${holder.host}, pid ${holder.pid})` : " (not live)"] : null),
      field("Lease ends", job.state === "active" ? when(job.lease_expires_at, now) : null),
      field("Timeout", job.timeout === null ? null : duration(job.timeout)),
    );
  }

  function attempts(job, now) {
    return table(
      ["#", "Dispatcher", "Started", "Ended", "Took", "Outcome", "Error"],
      // Oldest first; numbers start again at 1 after a retry, so rows are keyed by place.
      job.history.map((attempt, index) =>
        h(
          "tr",
          { "data-attempt": index + 1 },
          h("td", { class: "num" }, attempt.number),
          h("td", { class: "mono" }, attempt.dispatcher || "—"),
          h("td", {}, when(attempt.started_at, now)),
          h("td", {}, when(attempt.finished_at, now)),
          h("td", {}, attempt.started_at ? duration(attempt.finished_at - attempt.started_at) : "—"),
          h("td", {}, h("span", { class: "badge outcome-" + attempt.outcome }, attempt.outcome)),
          h("td", {}, attempt.error ? attempt.error.type + ": " + attempt.error.message : ""),
        ),
      ),
      "No finished attempt yet.",
    );
  }

  // A flow's jobs, each with its dependencies and, for a blocked job, what it still waits
  // for (the path that blocks it); the whole flow can be cancelled or retried from here.
  function flowSection(job, flow) {
    if (!flow) return null;
    const states = new Map(flow.jobs.map((member) => [member.id, member.state]));
    const edge = ([id, rule]) =>
      h("span", { class: "edge" }, link(jobHash(id), id), " ", badge(states.get(id) || "?"), rule === "cancel" ? "" : " (" + rule + ")", " ");
    const rows = flow.jobs.map((member) =>
      h(
        "tr",
        { "data-flow-job": member.id, class: member.id === job.id ? "current" : "" },
        h("td", { class: "mono" }, member.id === job.id ? member.id : link(jobHash(member.id), member.id)),
        h("td", {}, member.title || member.name),
        h("td", {}, badge(member.state)),
        h("td", {}, member.depends_on.length ? member.depends_on.map(edge) : "—"),
        h("td", { class: "waits", "data-waits-for": member.waits_for.join(" ") }, member.waits_for.join(", ")),
      ),
    );
    const path = "flows/" + encodeURIComponent(flow.id);
    const bar = shared.stats && shared.stats.read_only
      ? null
      : h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "danger", "data-action": "cancel-flow", onclick: () => act((answer) => "Cancelled " + answer.count + " job(s) of the flow", () => api("POST", path + "/cancel")) }, "Cancel flow"),
          h("button", { type: "button", "data-action": "retry-flow", onclick: () => act((answer) => "Retried " + answer.count + " job(s) of the flow", () => api("POST", path + "/retry")) }, "Retry flow"),
        );
    return [
      h("h2", {}, "Flow ", h("span", { class: "mono" }, flow.id)),
      bar,
      table(["Job", "Title", "State", "Depends on", "Waits for"], rows, "No jobs."),
    ];
  }

  async function refresh() {
    let job;
    try {
      const [answer, workers, current] = await Promise.all([
        api("GET", "jobs/" + encodeURIComponent(id)),
        api("GET", "workers"),
        api("GET", "stats"),
      ]);
      job = answer;
      job.flow = job.flow_id ? await api("GET", "flows/" + encodeURIComponent(job.flow_id)).catch(() => null) : null;
      shared.stats = current;
      dispatchersById = new Map(workers.dispatchers.map((info) => [info.id, info]));
      job.now = workers.now;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(body, h("h1", {}, "No such job"), h("p", {}, error.message), link("/jobs", "All jobs"));
        return;
      }
      throw error;
    }
    const now = job.now;
    const stuck = stuckReason(job, now);
    const progress = Math.max(0, Math.min(100, Number(job.progress) || 0));
    replace(
      body,
      h("p", { class: "crumbs" }, link(listHash({ name: job.name }), job.name), " / ", link(listHash({ state: job.state, name: job.name }), job.state)),
      h("h1", { class: "job-title" }, job.title || job.name + " #" + job.id),
      h("p", {}, badge(job.state), job.cancel_requested ? h("span", { class: "badge warn" }, "cancel requested") : null, stuck ? h("span", { class: "badge warn" }, stuck) : null),
      actions(job),
      job.state === "active" || progress > 0
        ? h(
            "div",
            { class: "progress" },
            h("progress", { max: 100, value: progress, "aria-label": "progress" }, progress + "%"),
            h("span", {}, progress + "%", job.progress_message ? " — " : "", job.progress_message || ""),
          )
        : null,
      fields(job, now),
      flowSection(job, job.flow),
      h("h2", {}, "Data"),
      json(job.data),
      job.result !== null ? [h("h2", {}, "Result"), json(job.result)] : null,
      job.error
        ? [
            h("h2", {}, job.state === "failed" ? "Error" : "Last error"),
            h("p", { class: "error" }, h("b", {}, job.error.type), ": ", job.error.message),
            job.error.traceback ? h("pre", { class: "traceback" }, job.error.traceback) : null,
          ]
        : null,
      h("h2", {}, "Logs"),
      job.logs.length
        ? h("ol", { class: "logs" }, job.logs.map((line) => h("li", {}, h("span", { class: "at" }, new Date(line.at * 1000).toLocaleTimeString()), " ", line.message)))
        : h("p", { class: "empty" }, "No log lines."),
      h("h2", {}, "Attempts"),
      attempts(job, now),
    );
  }
  return { refresh };
}
