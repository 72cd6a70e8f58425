// The overview: jobs by state, per worker name its counts and pause button, the chart of
// finished attempts, and the live dispatchers.

import { api, shared, stateNames } from "../api.js";
import { chart } from "../chart.js";
import { duration, h, jobHash, link, linkWith, listHash, replace, table, when } from "../dom.js";
import { act, main } from "../frame.js";

const LATE_HEARTBEAT_S = 5; // dispatchers beat at least every second

export function overview() {
  let period = "minute";
  const totals = h("section", { class: "totals", "aria-label": "jobs by state" });
  const names = h("section", { "aria-label": "worker names" });
  const chartBox = h("div", { class: "chart" });
  const chartTabs = h(
    "div",
    { class: "tabs", role: "group", "aria-label": "chart period" },
    h("button", { type: "button", "data-period": "minute", onclick: () => choose("minute") }, "Last hour"),
    h("button", { type: "button", "data-period": "hour", onclick: () => choose("hour") }, "Last day"),
  );
  const dispatchers = h("section", { "aria-label": "dispatchers" });
  replace(
    main,
    h("h1", {}, "Overview"),
    totals,
    h("h2", {}, "Worker names"),
    names,
    h("h2", {}, "Finished per ", h("span", { id: "chart-unit" }, "minute")),
    chartTabs,
    chartBox,
    h("h2", {}, "Dispatchers"),
    dispatchers,
  );

  async function choose(chosen) {
    period = chosen;
    await refreshChart();
  }

  async function refreshChart() {
    const answer = await api("GET", "throughput", { period });
    document.getElementById("chart-unit").textContent = period;
    for (const button of chartTabs.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.period === period));
    }
    replace(chartBox, chart(answer.buckets, period));
  }

  async function refresh() {
    const [current, workers] = await Promise.all([api("GET", "stats"), api("GET", "workers")]);
    shared.stats = current;
    const now = current.now;
    replace(
      totals,
      stateNames().map((state) =>
        linkWith(
          listHash({ state }),
          { class: "total state-" + state },
          h("span", { class: "count", "data-state": state }, current.states[state] || 0),
          h("span", { class: "label" }, state),
        ),
      ),
    );
    replace(names, nameTable(current));
    replace(dispatchers, dispatcherTable(workers.dispatchers, now));
    await refreshChart();
  }
  return { refresh };
}

function nameTable(current) {
  const states = stateNames();
  const rows = Object.entries(current.names).map(([name, counts]) => {
    const paused = current.paused.includes(name);
    const latency = current.latency[name];
    const button = current.read_only
      ? null
      : h(
          "button",
          {
            type: "button",
            "data-action": paused ? "resume" : "pause",
            onclick: () =>
              act(
                () => (paused ? "Resumed " : "Paused ") + name,
                () => api("POST", "names/" + encodeURIComponent(name) + (paused ? "/resume" : "/pause")),
              ),
          },
          paused ? "Resume" : "Pause",
        );
    return h(
      "tr",
      { "data-name": name, class: paused ? "paused" : "" },
      h("th", { scope: "row" }, link(listHash({ name }), name), paused ? h("span", { class: "badge paused" }, "paused") : null),
      states.map((state) =>
        h("td", { class: "num", "data-state": state }, link(listHash({ state, name }), counts[state] || 0)),
      ),
      h("td", { class: "num", title: "age of the oldest due waiting job" }, latency === undefined ? "—" : duration(latency)),
      h("td", {}, button),
    );
  });
  // Registered names without jobs yet have no counts: only names with jobs are listed.
  return table(["Worker", ...states, "Latency", ""], rows, "No jobs yet.");
}

function dispatcherTable(list, now) {
  const rows = list.map((info) => {
    const silent = now - info.last_seen;
    const late = silent > LATE_HEARTBEAT_S;
    return h(
      "tr",
      { class: late ? "late" : "", "data-dispatcher": info.id },
      h("td", { class: "mono", title: info.id }, info.id.slice(0, 12)),
      h("td", {}, info.host),
      h("td", { class: "num" }, info.pid),
      h("td", {}, info.names.join(", ")),
      h("td", { class: "num" }, info.concurrency),
      h("td", {}, info.jobs.length ? info.jobs.map((id) => [link(jobHash(id), id), " "]) : "idle"),
      h("td", {}, when(info.started_at, now)),
      h(
        "td",
        {},
        when(info.last_seen, now),
        late ? h("span", { class: "badge warn" }, "no heartbeat for " + duration(silent)) : null,
      ),
    );
  });
  return table(
    ["Id", "Host", "Pid", "Names", "Slots", "Holding", "Started", "Last heartbeat"],
    rows,
    "No dispatcher is running.",
  );
}
