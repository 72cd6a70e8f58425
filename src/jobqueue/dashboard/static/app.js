// The jobqueue dashboard: a page per hash route, drawn from the JSON API.
//
// Everything a job carries (data, title, logs, errors, worker names) reaches the page as
// DOM text nodes or attribute values, never as HTML: there is no innerHTML here, so a job
// titled <script>…</script> shows as those characters. The page polls the API while it is
// visible and stops while the tab is hidden.
"use strict";

(() => {
  const BASE = document.documentElement.dataset.base || "/";
  const POLL_MS = 2000;
  const LATE_HEARTBEAT_S = 5; // dispatchers beat at least every second
  const LEASE_LOW_S = 3; // an active job whose lease ends this soon is not being renewed
  const STATES = ["waiting", "delayed", "active", "completed", "failed", "cancelled"];
  const BULK = {
    retry: { states: ["failed", "cancelled"], verb: "Retry", done: "retried" },
    cancel: { states: ["waiting", "delayed", "active"], verb: "Cancel", done: "cancelled" },
    remove: { states: ["completed", "failed", "cancelled"], verb: "Remove", done: "removed" },
  };

  // -- DOM ---------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
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

  function append(element, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function replace(element, ...children) {
    element.replaceChildren();
    append(element, children);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const element = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      element.setAttribute(key, String(value));
    }
    append(element, children);
    return element;
  }

  function link(hash, ...children) {
    return h("a", { href: "#" + hash }, ...children);
  }

  function linkWith(hash, attrs, ...children) {
    return h("a", { ...attrs, href: "#" + hash }, ...children);
  }

  function jobHash(id) {
    return "/jobs/" + encodeURIComponent(id);
  }

  function listHash(params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") query.set(key, value);
    }
    const text = query.toString();
    return "/jobs" + (text ? "?" + text : "");
  }

  function badge(state) {
    return h("span", { class: "badge state-" + state }, state);
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const past = seconds >= 0;
    let value = Math.abs(seconds);
    let text;
    if (value < 1) text = "now";
    else if (value < 90) text = Math.round(value) + " s";
    else if (value < 90 * 60) text = Math.round(value / 60) + " min";
    else if (value < 36 * 3600) text = Math.round(value / 3600) + " h";
    else text = Math.round(value / 86400) + " d";
    if (text === "now") return text;
    return past ? text + " ago" : "in " + text;
  }

  function when(timestamp, now) {
    if (timestamp === null || timestamp === undefined) return "—";
    const date = new Date(timestamp * 1000);
    return h("time", { datetime: date.toISOString(), title: date.toLocaleString() }, ago(now - timestamp));
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 120) return seconds.toFixed(1) + " s";
    return ago(seconds).replace(" ago", "");
  }

  function json(value) {
    return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
  }

  function table(headings, rows, empty) {
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

  // -- API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, challenge) {
      super(message);
      this.status = status;
      this.challenge = challenge || "";
    }
  }

  const credentials = {
    get() {
      return sessionStorage.getItem("jobqueue.authorization");
    },
    set(value) {
      sessionStorage.setItem("jobqueue.authorization", value);
    },
    clear() {
      sessionStorage.removeItem("jobqueue.authorization");
    },
  };

  let csrfToken = null;

  async function request(method, path, params) {
    const url = new URL(BASE + "api/" + path, location.href);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
    }
    // X-JobQueue-Client: the server then names basic authentication so that the browser
    // does not open its own prompt; the sign-in form below asks instead.
    const headers = { Accept: "application/json", "X-JobQueue-Client": "page" };
    const authorization = credentials.get();
    if (authorization) headers.Authorization = authorization;
    if (method !== "GET") {
      if (csrfToken === null) csrfToken = (await api("GET", "csrf")).token;
      headers["X-JobQueue-CSRF"] = csrfToken;
    }
    const response = await fetch(url, { method, headers, cache: "no-store", credentials: "same-origin" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = (body && body.error) || response.status + " " + response.statusText;
      throw new ApiError(response.status, message, response.headers.get("WWW-Authenticate"));
    }
    return body;
  }

  async function api(method, path, params) {
    try {
      return await request(method, path, params);
    } catch (error) {
      // A restarted server has a new CSRF token: fetch it once and try again.
      if (error instanceof ApiError && error.status === 403 && /CSRF/.test(error.message)) {
        csrfToken = null;
        return await request(method, path, params);
      }
      throw error;
    }
  }

  // -- frame: header, flash messages, live status --------------------------------------------

  const flash = h("div", { id: "flash", role: "status", "aria-live": "polite" });
  const liveStatus = h("span", { id: "live", class: "live" }, "…");
  const main = h("main", { id: "main" });
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

  function say(message, kind) {
    const note = h("p", { class: "flash " + (kind || "info") }, message);
    flash.replaceChildren(note);
    setTimeout(() => note.remove(), 6000);
  }

  function setLive(text, kind) {
    liveStatus.textContent = text;
    liveStatus.className = "live " + (kind || "");
  }

  // In-page confirmation (no window.confirm: the page never opens a dialog).
  function confirmPanel(question, verb, action) {
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

  async function act(label, call, after) {
    try {
      const answer = await call();
      say(label(answer), "ok");
    } catch (error) {
      say(error.message, "error");
    }
    if (after) await after();
  }

  // -- views -------------------------------------------------------------------------------

  let stats = null; // the last /api/stats answer, shared by the views

  function overview() {
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
      stats = current;
      const now = current.now;
      replace(
        totals,
        STATES.map((state) =>
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
                  refreshView,
                ),
            },
            paused ? "Resume" : "Pause",
          );
      return h(
        "tr",
        { "data-name": name, class: paused ? "paused" : "" },
        h("th", { scope: "row" }, link(listHash({ name }), name), paused ? h("span", { class: "badge paused" }, "paused") : null),
        STATES.map((state) =>
          h("td", { class: "num", "data-state": state }, link(listHash({ state, name }), counts[state] || 0)),
        ),
        h("td", { class: "num", title: "age of the oldest due waiting job" }, latency === undefined ? "—" : duration(latency)),
        h("td", {}, button),
      );
    });
    // Registered names without jobs yet have no counts: only names with jobs are listed.
    return table(["Worker", ...STATES, "Latency", ""], rows, "No jobs yet.");
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

  function chart(buckets, period) {
    const width = 720;
    const height = 150;
    const left = 36;
    const bottom = 20;
    const top = 8;
    const plot = height - bottom - top;
    const most = Math.max(1, ...buckets.map((bucket) => bucket.completed + bucket.failed));
    const step = (width - left) / Math.max(buckets.length, 1);
    const label = (start) => {
      const date = new Date(start * 1000);
      return period === "minute"
        ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : date.toLocaleString([], { weekday: "short", hour: "2-digit" });
    };
    const finished = buckets.reduce((sum, bucket) => sum + bucket.completed, 0);
    const failed = buckets.reduce((sum, bucket) => sum + bucket.failed, 0);
    const picture = svg(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${finished} completed, ${failed} failed` },
      svg("line", { x1: left, y1: top + plot, x2: width, y2: top + plot, class: "axis" }),
      svg("text", { x: left - 4, y: top + 10, class: "tick", "text-anchor": "end" }, String(most)),
      svg("text", { x: left - 4, y: top + plot, class: "tick", "text-anchor": "end" }, "0"),
    );
    buckets.forEach((bucket, index) => {
      const x = left + index * step;
      const completedHeight = (plot * bucket.completed) / most;
      const failedHeight = (plot * bucket.failed) / most;
      const tip = `${label(bucket.start)}: ${bucket.completed} completed, ${bucket.failed} failed, ${bucket.retried} retried, ${bucket.cancelled} cancelled`;
      if (bucket.completed) {
        picture.append(
          svg("rect", { x, y: top + plot - completedHeight, width: Math.max(step - 1, 1), height: completedHeight, class: "bar completed" }, svg("title", {}, tip)),
        );
      }
      if (bucket.failed) {
        picture.append(
          svg("rect", { x, y: top + plot - completedHeight - failedHeight, width: Math.max(step - 1, 1), height: failedHeight, class: "bar failed" }, svg("title", {}, tip)),
        );
      }
    });
    if (buckets.length) {
      picture.append(
        svg("text", { x: left, y: height - 4, class: "tick" }, label(buckets[0].start)),
        svg("text", { x: width, y: height - 4, class: "tick", "text-anchor": "end" }, label(buckets[buckets.length - 1].start)),
      );
    }
    return h(
      "figure",
      {},
      picture,
      h(
        "figcaption",
        {},
        h("span", { class: "key completed" }, "completed ", h("b", { "data-total": "completed" }, finished)),
        " ",
        h("span", { class: "key failed" }, "failed ", h("b", { "data-total": "failed" }, failed)),
      ),
    );
  }

  function stuckReason(job, now) {
    if (job.state === "active" && job.lease_expires_at !== null && job.lease_expires_at !== undefined) {
      const left = job.lease_expires_at - now;
      if (left < LEASE_LOW_S) return left < 0 ? "lease expired" : "lease ends in " + duration(left);
    }
    if (job.stalls > 0 && !["completed", "cancelled"].includes(job.state)) {
      return "stalled " + job.stalls + (job.stalls === 1 ? " time" : " times");
    }
    return null;
  }

  function jobList(params) {
    const state = params.get("state") || "";
    const name = params.get("name") || "";
    const q = params.get("q") || "";
    const cursor = params.get("cursor") || "";
    const back = params.get("back") || ""; // the cursors of the earlier pages, for "Previous"

    const nameSelect = h("select", { name: "name", "aria-label": "worker name" }, h("option", { value: "" }, "every worker"));
    const form = h(
      "form",
      { class: "filters", role: "search", onsubmit: filter },
      h(
        "select",
        { name: "state", "aria-label": "state" },
        h("option", { value: "" }, "every state"),
        STATES.map((each) => h("option", { value: each, selected: each === state }, each)),
      ),
      nameSelect,
      h("input", { name: "q", type: "search", value: q, placeholder: "id or title", "aria-label": "id or title" }),
      h("button", { type: "submit" }, "Filter"),
    );
    const bulk = h("div", { class: "bulk" });
    const rows = h("section", { "aria-label": "jobs" });
    const pager = h("nav", { class: "pager", "aria-label": "pages" });
    const heading = [state || "All", " jobs", name ? " of " : "", name];
    replace(main, h("h1", {}, heading), form, bulk, rows, pager);

    function filter(event) {
      event.preventDefault();
      const data = new FormData(form);
      location.hash = listHash({ state: data.get("state"), name: data.get("name"), q: data.get("q") });
    }

    function fillNames() {
      const known = Object.keys(stats ? stats.names : {});
      if (name && !known.includes(name)) known.push(name);
      if (nameSelect.options.length === known.length + 1) return;
      replace(
        nameSelect,
        h("option", { value: "" }, "every worker"),
        known.map((each) => h("option", { value: each, selected: each === name }, each)),
      );
    }

    function bulkBar() {
      if (!state || !stats || stats.read_only || q) return [];
      const count = name ? (stats.names[name] || {})[state] || 0 : stats.states[state] || 0;
      if (!count) return [];
      return Object.entries(BULK)
        .filter(([, how]) => how.states.includes(state))
        .map(([action, how]) => {
          const what = `${count} ${state} job${count === 1 ? "" : "s"}${name ? " of " + name : ""}`;
          return h(
            "button",
            {
              type: "button",
              class: action === "retry" ? "" : "danger",
              "data-bulk": action,
              onclick: () =>
                bulk.append(
                  confirmPanel(`${how.verb} ${what}? This touches ${count} job${count === 1 ? "" : "s"}.`, how.verb + " " + count, () =>
                    act(
                      (answer) => `${answer.count} job${answer.count === 1 ? "" : "s"} ${how.done}`,
                      () => api("POST", "bulk/" + action, { state, name }),
                      refreshView,
                    ),
                  ),
                ),
            },
            `${how.verb} all ${count}`,
          );
        });
    }

    async function refresh() {
      const [current, page] = await Promise.all([
        api("GET", "stats"),
        api("GET", "jobs", { state, name, q, cursor }),
      ]);
      stats = current;
      const now = page.now;
      fillNames();
      if (!bulk.querySelector(".confirm")) replace(bulk, bulkBar());
      const lines = page.jobs.map((job) => {
        const stuck = stuckReason(job, now);
        return h(
          "tr",
          { class: stuck ? "stuck" : "", "data-job": job.id },
          h("td", { class: "mono" }, link(jobHash(job.id), job.id)),
          h("td", {}, job.name),
          h("td", { class: "title" }, job.title || ""),
          h("td", {}, badge(job.state), stuck ? h("span", { class: "badge warn" }, stuck) : null),
          h("td", { class: "num" }, job.attempts_made + "/" + job.attempts),
          h("td", {}, when(job.created_at, now)),
          h("td", {}, when(job.finished_at || job.started_at || job.run_at, now)),
        );
      });
      const note = page.next && page.jobs.length === 0 ? "No match among the jobs read so far: search further with Next." : "No jobs here.";
      replace(rows, table(["Id", "Worker", "Title", "State", "Attempts", "Created", "Last change"], lines, note));
      const here = { state, name, q };
      const earlier = back ? back.split(",") : [];
      replace(
        pager,
        cursor ? link(listHash(here), "Newest") : null,
        earlier.length || cursor
          ? link(listHash({ ...here, cursor: earlier.slice(-1)[0] || "", back: earlier.slice(0, -1).join(",") }), "Previous")
          : null,
        page.next ? linkWith(listHash({ ...here, cursor: page.next, back: [...earlier, cursor].join(",") }), { rel: "next" }, "Next") : null,
      );
    }
    return { refresh };
  }

  function jobPage(id) {
    const body = h("div", {});
    replace(main, body);
    let dispatchersById = new Map();

    function actions(job) {
      if (stats && stats.read_only) return null;
      const path = "jobs/" + encodeURIComponent(job.id);
      const buttons = [];
      const button = (action, label, call, message, danger) =>
        h("button", { type: "button", class: danger ? "danger" : "", "data-action": action, onclick: () => act(message, call, refreshView) }, label);
      if (["failed", "cancelled"].includes(job.state)) {
        buttons.push(button("retry", "Retry", () => api("POST", path + "/retry"), () => "Retried: the job is waiting again"));
      }
      if (job.state === "delayed") {
        buttons.push(button("run-now", "Run now", () => api("POST", path + "/run-now"), () => "The job is due now"));
      }
      if (["waiting", "delayed", "active"].includes(job.state) && !job.cancel_requested) {
        buttons.push(
          button("cancel", "Cancel", () => api("POST", path + "/cancel"), (answer) =>
            answer.state === "cancelled" ? "Cancelled" : "Cancel requested: its dispatcher is stopping it", true),
        );
      }
      const bar = h("div", { class: "actions" }, buttons);
      bar.append(
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "data-action": "remove",
            onclick: () =>
              bar.append(
                confirmPanel("Remove this job? It cannot be undone.", "Remove", () =>
                  act(() => "Removed job " + job.id, () => api("DELETE", path), async () => {
                    location.hash = listHash({ state: job.state });
                  }),
                ),
              ),
          },
          "Remove",
        ),
      );
      return bar;
    }

    function field(label, value) {
      return [h("dt", {}, label), h("dd", {}, value === null || value === undefined || value === "" ? "—" : value)];
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
        stats = current;
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
      const holder = job.dispatcher ? dispatchersById.get(job.dispatcher) : null;
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
        h(
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
        ),
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
        table(
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
        ),
      );
    }
    return { refresh };
  }

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

  function schedulesPage() {
    const rows = h("section", { "aria-label": "schedules" });
    replace(main, h("h1", {}, "Schedules"), rows);

    function buttons(info) {
      if (stats && stats.read_only) return null;
      const path = "schedules/" + encodeURIComponent(info.name);
      const button = (action, label, call, message) =>
        h("button", { type: "button", "data-action": action, onclick: () => act(message, call, refreshView) }, label);
      return [
        info.paused
          ? button("resume", "Resume", () => api("POST", path + "/resume"), () => "Resumed " + info.name)
          : button("pause", "Pause", () => api("POST", path + "/pause"), () => "Paused " + info.name),
        info.worker
          ? button("run", "Run now", () => api("POST", path + "/run"), (job) => "Submitted job " + job.id)
          : null,
      ];
    }

    async function refresh() {
      const [current, answer] = await Promise.all([api("GET", "stats"), api("GET", "schedules")]);
      stats = current;
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

  function signIn(error) {
    const challenge = error.challenge.toLowerCase();
    const fields = [];
    if (challenge.includes("bearer")) {
      fields.push(h("label", {}, "Token ", h("input", { name: "token", type: "password", autocomplete: "current-password" })));
    }
    if (challenge.includes("basic")) {
      fields.push(
        h("label", {}, "User ", h("input", { name: "user", autocomplete: "username" })),
        h("label", {}, "Password ", h("input", { name: "password", type: "password", autocomplete: "current-password" })),
      );
    }
    const form = h(
      "form",
      { class: "signin", onsubmit: submit },
      h("h1", {}, "Sign in"),
      h("p", {}, credentials.get() ? "Those credentials were refused." : "This dashboard needs credentials."),
      fields,
      h("button", { type: "submit" }, "Sign in"),
    );
    function submit(event) {
      event.preventDefault();
      const data = new FormData(form);
      const token = data.get("token");
      if (token) credentials.set("Bearer " + token);
      else {
        const pair = new TextEncoder().encode(data.get("user") + ":" + data.get("password"));
        credentials.set("Basic " + btoa(String.fromCharCode(...pair)));
      }
      csrfToken = null;
      start();
    }
    replace(main, form);
  }

  // -- routing and the live loop ---------------------------------------------------------------

  let view = null;
  let timer = null;
  let generation = 0;

  function route() {
    const [path, query] = (location.hash.slice(1) || "/").split("?");
    const params = new URLSearchParams(query || "");
    if (path === "/jobs") return jobList(params);
    if (path === "/schedules") return schedulesPage();
    if (path.startsWith("/jobs/")) return jobPage(decodeURIComponent(path.slice("/jobs/".length)));
    return overview();
  }

  async function refreshView() {
    if (!view) return;
    const mine = generation;
    try {
      await view.refresh();
      if (mine === generation) setLive("live · " + new Date().toLocaleTimeString(), "ok");
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof ApiError && error.status === 401) {
        stop();
        signIn(error);
        setLive("signed out", "error");
        return;
      }
      setLive(error instanceof ApiError ? error.message : "cannot reach the server", "error");
      if (error instanceof ApiError && error.status === 403) say(error.message, "error");
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (document.visibilityState !== "visible") {
      setLive("paused while hidden", "idle");
      return;
    }
    timer = setTimeout(async () => {
      await refreshView();
      schedule();
    }, POLL_MS);
  }

  function stop() {
    clearTimeout(timer);
    view = null;
  }

  async function start() {
    generation += 1;
    clearTimeout(timer);
    view = route();
    await refreshView();
    if (view) schedule();
  }

  window.addEventListener("hashchange", start);
  document.addEventListener("visibilitychange", async () => {
    if (document.visibilityState === "visible" && view) await refreshView();
    if (view) schedule();
  });
  start();
})();
