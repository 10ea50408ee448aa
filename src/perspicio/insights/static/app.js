// The web page: the shared UI over the JSON API (paths are relative, so a proxy prefix works).
import { mount } from "./ui.js";

async function call(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
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

mount(document.getElementById("app"), {
  config: () => call("api/config"),
  fetch: (body) => call("api/fetch", body),
  reattribute: (body) => call("api/reattribute", body),
});
