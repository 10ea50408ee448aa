// The web page: the shared UI over the JSON API (paths are relative, so a proxy prefix works).
// The session token comes from the page's URL (?token=...); opening that URL also set a cookie.
import { mount, parts } from "./ui.js";
import { mountResult } from "./result.js";

const token = new URLSearchParams(window.location.search).get("token") || "";

async function call(path, body) {
  const headers = token ? { "X-Perspicio-Token": token } : {};
  const init = body === undefined ? { headers } : { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

const jobPath = (id) => `api/jobs/${encodeURIComponent(id)}`;

const config = call("api/config");
const live = {
  config: () => config,
  fetch: (body) => call("api/fetch", body),
  reattribute: (body) => call("api/reattribute", body),
  startFetch: (body) => call("api/jobs/fetch", body),
  startReattribute: (body) => call("api/jobs/reattribute", body),
  jobStatus: (id) => call(jobPath(id)),
  cancelJob: (id) => call(`${jobPath(id)}/cancel`, {}),
  // the page is closing: a beacon still reaches the server (the token rides in the URL)
  abandon: (id) => navigator.sendBeacon(`${jobPath(id)}/cancel?token=${encodeURIComponent(token)}`),
};
// a saved result (perspicio insights --result) is shown read-only by result.js
const saved = { config: () => config, page: (body) => call("api/result/page", body) };
const el = document.getElementById("app");
const app = config
  .then((c) => c.mode === "result", () => false)
  .then((isResult) => (isResult ? mountResult(el, saved, parts) : mount(el, live)));

window.addEventListener("pagehide", () => app.then((a) => a.destroy()));
