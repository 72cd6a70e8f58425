// The sign-in form, drawn when the API answers 401: asks for what the challenge names (a
// bearer token, basic credentials) and keeps it in the tab's sessionStorage.

import { credentials } from "../api.js";
import { h, replace } from "../dom.js";
import { main } from "../frame.js";

export function signIn(error, retry) {
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
    retry();
  }
  replace(main, form);
}
