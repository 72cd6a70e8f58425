// Talking to the JSON API: credentials, the CSRF token, errors, and the answers every view
// shares (the server's state lists, read once; the last /api/stats).

const BASE = document.documentElement.dataset.base || "/";

export class ApiError extends Error {
  constructor(status, message, challenge) {
    super(message);
    this.status = status;
    this.challenge = challenge || "";
  }
}

export const credentials = {
  get() {
    return sessionStorage.getItem("jobqueue.authorization");
  },
  set(value) {
    sessionStorage.setItem("jobqueue.authorization", value);
    csrfToken = null; // another user may hold another token's rights
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
  // does not open its own prompt; the sign-in form asks instead.
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

export async function api(method, path, params) {
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

// What the views share: `meta` is GET /api/meta (the job states in display order and the
// actions each allows), read once; `stats` the last GET /api/stats answer.
export const shared = { meta: null, stats: null };

export async function loadMeta() {
  if (shared.meta === null) shared.meta = await api("GET", "meta");
  return shared.meta;
}

// The job states' names, in the order the server displays them.
export function stateNames() {
  return shared.meta.states.map((state) => state.name);
}

// The meta entry of one state ({name, finished, actions, bulk}); an empty one for a state
// this server does not know (a record from a newer release), which then allows nothing.
export function stateInfo(name) {
  return shared.meta.states.find((state) => state.name === name) || { name, finished: false, actions: [], bulk: [] };
}
