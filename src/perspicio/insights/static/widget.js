// Notebook glue, appended to ui.js and result.js to form the anywidget module: requests travel as the
// widget's custom messages ({id, route, body}) and Python answers {id, ok, status, body|error}.

function widgetTransport(model) {
  const view = Math.random().toString(36).slice(2);
  const pending = new Map();
  let counter = 0;
  const onMessage = (msg) => {
    if (!msg || !pending.has(msg.id)) return;
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.ok) resolve(msg.body);
    else reject(new Error((msg.error && msg.error.error) || `request failed (${msg.status})`));
  };
  model.on("msg:custom", onMessage);
  const call = (route, body) =>
    new Promise((resolve, reject) => {
      const id = `${view}-${++counter}`;
      pending.set(id, { resolve, reject });
      model.send({ id, route, body });
    });
  return {
    config: () => call("config", null),
    page: (body) => call("result_page", body),
    fetch: (body) => call("fetch", body),
    reattribute: (body) => call("reattribute", body),
    startFetch: (body) => call("job_fetch", body),
    startReattribute: (body) => call("job_reattribute", body),
    jobStatus: (job) => call("job_status", { job }),
    cancelJob: (job) => call("job_cancel", { job }),
    abandon: (job) => model.send({ id: `${view}-cancel-${job}`, route: "job_cancel", body: { job } }),
    close() {
      model.off("msg:custom", onMessage);
      for (const { reject } of pending.values()) reject(new Error("widget closed"));
      pending.clear();
    },
  };
}

export default {
  render({ model, el }) {
    const transport = widgetTransport(model);
    const config = transport.config();
    const view = { ...transport, config: () => config };
    let app = null;
    let closed = false;
    config
      .then((c) => c.mode === "result", () => false)
      .then((isResult) => {
        if (!closed) app = isResult ? mountResult(el, view, parts) : mount(el, view);
      });
    return () => {
      closed = true;
      if (app) app.destroy(); // cancels this view's jobs
      transport.close();
    };
  },
};
