// A list of jobs: filtered by state, worker name and text, paged with the API's cursor,
// with the bulk actions the server allows for the state shown. The failed list shows each
// job's error (its type and the first line of its message), as Sidekiq's retries list does.

import { api, shared, stateInfo, stateNames } from "../api.js";
import { badge, h, jobHash, link, linkWith, listHash, replace, table, when } from "../dom.js";
import { act, confirmPanel, main } from "../frame.js";
import { errorCell, stuckReason } from "../job.js";

// How the page words each bulk action; which states allow which comes from GET /api/meta.
const BULK_WORDS = {
  retry: { verb: "Retry", done: "retried" },
  cancel: { verb: "Cancel", done: "cancelled" },
  remove: { verb: "Remove", done: "removed" },
};

function bulkWords(action) {
  return BULK_WORDS[action] || { verb: action.charAt(0).toUpperCase() + action.slice(1), done: "done (" + action + ")" };
}

const plural = (count) => (count === 1 ? "" : "s");

export function jobList(params) {
  const state = params.get("state") || "";
  const name = params.get("name") || "";
  const q = params.get("q") || "";
  const cursor = params.get("cursor") || "";
  const back = params.get("back") || ""; // the cursors of the earlier pages, for "Previous"
  const showErrors = state === "failed";

  const nameSelect = h("select", { name: "name", "aria-label": "worker name" }, h("option", { value: "" }, "every worker"));
  const form = h(
    "form",
    { class: "filters", role: "search", onsubmit: filter },
    h(
      "select",
      { name: "state", "aria-label": "state" },
      h("option", { value: "" }, "every state"),
      stateNames().map((each) => h("option", { value: each, selected: each === state }, each)),
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
    const known = Object.keys(shared.stats ? shared.stats.names : {});
    if (name && !known.includes(name)) known.push(name);
    if (nameSelect.options.length === known.length + 1) return;
    replace(
      nameSelect,
      h("option", { value: "" }, "every worker"),
      known.map((each) => h("option", { value: each, selected: each === name }, each)),
    );
  }

  function bulkBar() {
    const stats = shared.stats;
    if (!state || !stats || stats.read_only || q) return [];
    const count = name ? (stats.names[name] || {})[state] || 0 : stats.states[state] || 0;
    if (!count) return [];
    const what = `${count} ${state} job${plural(count)}${name ? " of " + name : ""}`;
    return stateInfo(state).bulk.map((action) => {
      const words = bulkWords(action);
      const run = () =>
        act(
          (answer) => `${answer.count} job${plural(answer.count)} ${words.done}`,
          () => api("POST", "bulk/" + action, { state, name }),
        );
      const question = `${words.verb} ${what}? This touches ${count} job${plural(count)}.`;
      return h(
        "button",
        {
          type: "button",
          class: action === "retry" ? "" : "danger",
          "data-bulk": action,
          onclick: () => bulk.append(confirmPanel(question, words.verb + " " + count, run)),
        },
        `${words.verb} all ${count}`,
      );
    });
  }

  function line(job, now) {
    const stuck = stuckReason(job, now);
    return h(
      "tr",
      { class: stuck ? "stuck" : "", "data-job": job.id },
      h("td", { class: "mono" }, link(jobHash(job.id), job.id)),
      h("td", {}, job.name),
      h("td", { class: "title" }, job.title || ""),
      h("td", {}, badge(job.state), stuck ? h("span", { class: "badge warn" }, stuck) : null),
      showErrors ? errorCell(job.error) : null,
      h("td", { class: "num" }, job.attempts_made + "/" + job.attempts),
      h("td", {}, when(job.created_at, now)),
      h("td", {}, when(job.finished_at || job.started_at || job.run_at, now)),
    );
  }

  async function refresh() {
    const [current, page] = await Promise.all([
      api("GET", "stats"),
      api("GET", "jobs", { state, name, q, cursor }),
    ]);
    shared.stats = current;
    fillNames();
    if (!bulk.querySelector(".confirm")) replace(bulk, bulkBar());
    const lines = page.jobs.map((job) => line(job, page.now));
    const note = page.next && page.jobs.length === 0 ? "No match among the jobs read so far: search further with Next." : "No jobs here.";
    const headings = ["Id", "Worker", "Title", "State", ...(showErrors ? ["Error"] : []), "Attempts", "Created", "Last change"];
    replace(rows, table(headings, lines, note));
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
