// perspicio insights: the explorer's user interface.
// Plain DOM, no framework and no imports: the notebook widget uses this file as is, followed
// by its own glue (widget.js), and the web page imports it (app.js). All text from the server
// is inserted with textContent, never parsed as HTML.

// the colours of perspicio.viz: green for positive attribution, red for negative
const POS = [13, 140, 38];
const NEG = [191, 13, 13];
const INSTANCE_TYPES = [
  ["all", "All"],
  ["correct", "Correct"],
  ["incorrect", "Incorrect"],
];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  const mag = Math.abs(value);
  if (mag !== 0 && (mag >= 1e4 || mag < 1e-3)) return value.toExponential(2);
  return value.toFixed(mag >= 100 ? 1 : 3);
}

function pct(frac) {
  return `${(100 * (Number.isFinite(frac) ? frac : 0)).toFixed(1)}%`;
}

function attrColor(normalized, maxAlpha = 0.85) {
  const v = Math.max(-1, Math.min(1, Number(normalized) || 0));
  const [r, g, b] = v >= 0 ? POS : NEG;
  return `rgba(${r}, ${g}, ${b}, ${(Math.abs(v) * maxAlpha).toFixed(3)})`;
}

function safeImage(url) {
  return typeof url === "string" && url.startsWith("data:image/png;base64,") ? url : "";
}

function spinner() {
  return h("span", { class: "psp-spinner", "aria-hidden": "true" });
}

// -- feature views --------------------------------------------------------------------------

function imageView(feature) {
  const base = feature.base || {};
  const mod = feature.modified || {};
  const small = (mod.width || 0) < 96;
  const figure = (label, url) =>
    h(
      "figure",
      { class: "psp-figure" },
      h("img", { src: safeImage(url), alt: `${feature.name}: ${label}`, class: small ? "psp-pixelated" : null }),
      h("figcaption", { text: label }),
    );
  const legend = mod.legend || { min: -1, max: 1, colors: ["#bf0d0d", "#ffffff", "#0d8c26"] };
  const bar = h("div", { class: "psp-legend-bar" });
  bar.style.background = `linear-gradient(to right, ${legend.colors.join(", ")})`;
  return h(
    "div",
    { class: "psp-image-view" },
    h(
      "div",
      { class: "psp-figures" },
      figure("Original", base.original),
      figure("Heat map", mod.heat_map),
      figure("Blended", mod.blended),
    ),
    h(
      "div",
      { class: "psp-legend", title: "attribution colour scale" },
      h("span", { text: fmt(legend.min) }),
      bar,
      h("span", { text: fmt(legend.max) }),
    ),
  );
}

function textView(feature) {
  const tokens = Array.isArray(feature.base) ? feature.base : [];
  const mod = feature.modified || {};
  const norm = mod.normalized || [];
  const raw = mod.values || [];
  return h(
    "p",
    { class: "psp-tokens" },
    tokens.map((token, i) => {
      const span = h("span", { class: "psp-token", title: `${token}: ${fmt(raw[i])}`, text: String(token) });
      span.style.backgroundColor = attrColor(norm[i]);
      if (Math.abs(Number(norm[i]) || 0) > 0.6) span.classList.add("is-strong");
      return span;
    }),
  );
}

function generalView(feature) {
  const base = feature.base || {};
  const mod = feature.modified || {};
  const cats = base.categories || [];
  const norm = mod.normalized || [];
  const raw = mod.values || [];
  const rows = cats.map((cat, i) => {
    const v = Math.max(-1, Math.min(1, Number(norm[i]) || 0));
    const fill = h("div", { class: `psp-gbar-fill ${v >= 0 ? "is-pos" : "is-neg"}` });
    fill.style.width = `${(Math.abs(v) * 50).toFixed(2)}%`;
    fill.style.left = v >= 0 ? "50%" : `${(50 - Math.abs(v) * 50).toFixed(2)}%`;
    const value = base.values ? ` = ${fmt(base.values[i])}` : "";
    return h(
      "div",
      { class: "psp-grow", title: `attribution ${fmt(raw[i])}` },
      h("span", { class: "psp-glabel", text: `${cat}${value}` }),
      h("div", { class: "psp-gbar" }, h("div", { class: "psp-gbar-axis" }), fill),
      h("span", { class: "psp-gvalue", text: fmt(raw[i]) }),
    );
  });
  return h("div", { class: "psp-general" }, rows);
}

function featureView(feature) {
  let body;
  if (feature.type === "image") body = imageView(feature);
  else if (feature.type === "text") body = textView(feature);
  else if (feature.type === "general") body = generalView(feature);
  else if (feature.type === "empty") return null;
  else body = h("pre", { class: "psp-raw", text: JSON.stringify({ base: feature.base, modified: feature.modified }, null, 1) });
  return h("div", { class: `psp-feature psp-feature-${feature.type}` }, h("h4", { text: feature.name }), body);
}

function contributions(features) {
  return h(
    "div",
    { class: "psp-contrib" },
    h("div", { class: "psp-section-title", text: "Contribution by feature" }),
    features.map((f) => {
      const fill = h("div", { class: "psp-cbar-fill" });
      fill.style.width = pct(f.contribution);
      return h(
        "div",
        { class: "psp-crow" },
        h("span", { class: "psp-clabel", text: f.name }),
        h("div", { class: "psp-cbar", role: "img", "aria-label": `${f.name} ${pct(f.contribution)}` }, fill),
        h("span", { class: "psp-cvalue", text: pct(f.contribution) }),
      );
    }),
  );
}

// -- arguments -----------------------------------------------------------------------------

function range(arg) {
  const lo = arg.min === null || arg.min === undefined ? null : arg.min;
  const hi = arg.max === null || arg.max === undefined ? null : arg.max;
  if (lo !== null && hi !== null) return ` from ${lo} to ${hi}`;
  if (lo !== null) return ` of at least ${lo}`;
  if (hi !== null) return ` of at most ${hi}`;
  return "";
}

function inRange(arg, x) {
  return (arg.min === null || arg.min === undefined || x >= arg.min) && (arg.max === null || arg.max === undefined || x <= arg.max);
}

// the value of one argument input, or {error} with a sentence for the user
function readArg(arg, input) {
  if (arg.type === "bool") return { value: input.checked };
  if (arg.type === "choice") return { value: input.value };
  const text = input.value.trim();
  if (text === "") return arg.default === null ? { skip: true } : { error: `${arg.name}: enter a value${range(arg)}.` };
  if (arg.type === "ints") {
    const parts = text.split(/[\s,x×]+/).filter(Boolean);
    const values = parts.map(Number);
    if (!parts.length || parts.length > 8 || values.some((v) => !Number.isInteger(v) || !inRange(arg, v)))
      return { error: `${arg.name}: enter 1 to 8 whole numbers${range(arg)}, separated by commas (for example 1,3,3).` };
    return { value: values };
  }
  const value = Number(text);
  if (!Number.isFinite(value) || (arg.type === "int" && !Number.isInteger(value)))
    return { error: `${arg.name}: "${text}" is not ${arg.type === "int" ? "a whole number" : "a number"}.` };
  if (!inRange(arg, value)) return { error: `${arg.name}: ${text} is out of range; use a ${arg.type === "int" ? "whole number" : "number"}${range(arg)}.` };
  return { value };
}

// -- the app --------------------------------------------------------------------------------

const PAGE_SIZES = [1, 2, 4, 8, 16, 32];

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Cancelled extends Error {}

export function mount(el, transport) {
  const state = { config: null, method: null, classes: [], instance: "all", nextStart: null, pages: [], busy: false, jobs: new Set(), alive: true };
  const root = h("div", { class: "psp-root" });
  el.append(root);
  const errorBox = h("div", { class: "psp-error", role: "alert", hidden: true });
  const warningText = h("span");
  const confirmButton = h("button", { class: "psp-confirm", type: "button" }, "Run anyway");
  const warningBox = h("div", { class: "psp-warning", role: "alert", hidden: true }, warningText, confirmButton);
  const results = h("main", { class: "psp-results", "aria-live": "polite" });
  const argsBox = h("div", { class: "psp-args" });
  const summary = h("p", { class: "psp-summary" });
  const unavailableBox = h("p", { class: "psp-unavailable" });
  const methodSelect = h("select", { class: "psp-method", "aria-label": "Attribution method", onchange: () => selectMethod(methodSelect.value) });
  const chips = h("div", { class: "psp-chips" });
  const datalist = h("datalist", { id: `psp-classes-${Math.random().toString(36).slice(2)}` });
  const classInput = h("input", { class: "psp-class-input", type: "text", list: datalist.id, placeholder: "Type a class name", "aria-label": "Add a class filter" });
  const pageSize = h("select", { class: "psp-page-size", "aria-label": "Examples per page", onchange: filtersChanged });
  const topK = h("input", { class: "psp-top-k", type: "number", min: 1, max: 50, step: 1, value: 3, "aria-label": "Predicted classes shown" });
  const fetchButton = h("button", { class: "psp-fetch psp-primary", type: "button", onclick: () => load(0, "fresh") }, spinner(), h("span", { text: "Fetch" }));
  const prevButton = h("button", { class: "psp-prev", type: "button", disabled: true, onclick: () => load(state.pages[state.pages.length - 2], "prev") }, "Previous");
  const nextButton = h("button", { class: "psp-next", type: "button", disabled: true, onclick: () => load(state.nextStart, "next") }, "Next");
  const cancelButton = h("button", { class: "psp-cancel", type: "button", hidden: true, onclick: cancelAll }, "Cancel");
  const progress = h("progress", { class: "psp-progress", max: 1, value: 0, hidden: true });
  const status = h("span", { class: "psp-status" });

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  function showWarning(message, onConfirm) {
    warningText.textContent = message || "";
    warningBox.hidden = !message;
    confirmButton.onclick = onConfirm ? () => { showWarning(""); onConfirm(); } : null;
  }

  // a new filter or page size starts paging again from the first example
  function filtersChanged() {
    state.pages = [];
    state.nextStart = null;
    updateButtons();
    if (results.querySelector(".psp-example")) status.textContent = "Filters changed: press Fetch to start from the first example.";
  }

  function addClass(name) {
    const known = state.config && state.config.classes.includes(name);
    if (!known || state.classes.includes(name)) return false;
    state.classes.push(name);
    renderChips();
    filtersChanged();
    return true;
  }

  function renderChips() {
    chips.replaceChildren(
      ...state.classes.map((name) =>
        h(
          "span",
          { class: "psp-chip" },
          name,
          h("button", { type: "button", class: "psp-chip-x", "aria-label": `Remove ${name}`, onclick: () => { state.classes = state.classes.filter((c) => c !== name); renderChips(); filtersChanged(); } }, "×"),
        ),
      ),
    );
  }

  classInput.addEventListener("change", () => { if (addClass(classInput.value.trim())) classInput.value = ""; });
  classInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); if (addClass(classInput.value.trim())) classInput.value = ""; }
  });

  function argInput(arg) {
    const id = `psp-arg-${arg.name}-${Math.random().toString(36).slice(2, 8)}`;
    let input;
    if (arg.type === "bool") {
      input = h("input", { id, type: "checkbox", checked: arg.default === true });
    } else if (arg.type === "choice") {
      input = h("select", { id }, arg.choices.map((c) => h("option", { value: c, selected: c === arg.default }, c)));
    } else if (arg.type === "ints") {
      input = h("input", { id, type: "text", inputmode: "numeric", placeholder: arg.default ? arg.default.join(",") : "auto", value: "" });
    } else {
      const step = arg.type === "int" ? "1" : "any";
      input = h("input", { id, type: "number", step, min: arg.min, max: arg.max, placeholder: arg.default === null ? "auto" : null, value: arg.default === null ? "" : arg.default });
    }
    input.dataset.arg = arg.name;
    input.dataset.type = arg.type;
    input.addEventListener("input", () => { input.classList.remove("is-invalid"); input.removeAttribute("aria-invalid"); });
    return h("div", { class: `psp-arg psp-arg-${arg.type}`, title: arg.help || "" }, h("label", { for: id, text: arg.name }), input);
  }

  // the method's arguments, checked here so that mistakes read as sentences
  function readArgs() {
    const out = {};
    const errors = [];
    const specs = state.method ? state.method.args : [];
    for (const input of argsBox.querySelectorAll("[data-arg]")) {
      const arg = specs.find((a) => a.name === input.dataset.arg);
      if (!arg) continue;
      const read = readArg(arg, input);
      input.classList.toggle("is-invalid", Boolean(read.error));
      if (read.error) { input.setAttribute("aria-invalid", "true"); errors.push(read.error); }
      else if (!read.skip) out[arg.name] = read.value;
    }
    return { values: out, errors };
  }

  function selectMethod(name) {
    const method = state.config.methods.find((m) => m.name === name);
    state.method = method || null;
    summary.textContent = method ? method.summary : "";
    argsBox.replaceChildren(...(method ? method.args.map(argInput) : []));
  }

  function readTopK() {
    const k = Number(topK.value);
    return Number.isInteger(k) && k >= 1 && k <= 50 ? k : null;
  }

  function updateButtons() {
    fetchButton.disabled = state.busy;
    fetchButton.classList.toggle("is-busy", state.busy);
    nextButton.disabled = state.busy || state.nextStart === null;
    prevButton.disabled = state.busy || state.pages.length < 2;
    cancelButton.hidden = state.jobs.size === 0;
    progress.hidden = state.jobs.size === 0;
  }

  function setBusy(busy) {
    state.busy = busy;
    root.classList.toggle("is-busy", busy);
    updateButtons();
  }

  // start a job, follow its progress, and return its result (throws Cancelled or Error)
  async function runJob(start, onProgress) {
    const started = await start();
    if (started.job === null) return { warning: started.warning };
    state.jobs.add(started.job);
    updateButtons();
    try {
      let delay = 100;
      for (;;) {
        await sleep(delay);
        delay = Math.min(500, delay * 1.5);
        if (!state.alive) throw new Cancelled("closed");
        const job = await transport.jobStatus(started.job);
        if (onProgress) onProgress(job);
        if (job.state === "done") return { result: job.result };
        if (job.state === "cancelled") throw new Cancelled("cancelled");
        if (job.state === "failed") throw new Error(job.error || "the job failed");
      }
    } finally {
      state.jobs.delete(started.job);
      updateButtons();
    }
  }

  function cancelAll() {
    for (const id of state.jobs) transport.cancelJob(id).catch(() => {});
    status.textContent = "Cancelling…";
  }

  function showProgress(job) {
    progress.value = job.progress;
    status.textContent = `${job.message} (${Math.round(100 * job.progress)}%)`;
  }

  async function load(start, mode, confirm = false) {
    if (state.busy || start === null || start === undefined) return;
    const args = readArgs();
    const k = readTopK();
    if (k === null) args.errors.push("Top-k: enter a whole number from 1 to 50.");
    if (args.errors.length) { showError(args.errors.join(" ")); return; }
    showError("");
    showWarning("");
    setBusy(true);
    progress.value = 0;
    status.textContent = "Starting…";
    const request = { method: state.method ? state.method.name : null, arguments: args.values, top_k: k };
    try {
      const body = { ...request, classes: state.classes, instance_type: state.instance, start, count: Number(pageSize.value), confirm };
      const outcome = await runJob(() => transport.startFetch(body), showProgress);
      if (outcome.warning) {
        status.textContent = "";
        showWarning(outcome.warning, () => load(start, mode, true));
        return;
      }
      const response = outcome.result;
      if (mode === "fresh") state.pages = [start];
      else if (mode === "next") state.pages.push(start);
      else if (mode === "prev") state.pages.pop();
      state.nextStart = response.next_start;
      results.replaceChildren(...response.examples.map((example) => exampleCard(example, request)));
      if (!response.examples.length) {
        const where = start > 0 ? `from example ${start} to the end of the dataset` : "in the whole dataset";
        results.append(h("p", { class: "psp-empty", text: `No example ${where} matches these filters (${response.scanned} scanned).` }));
      }
      if (response.dataset_error) showError(response.dataset_error);
      status.textContent = `${response.examples.length} example(s), ${response.scanned} scanned`;
    } catch (err) {
      if (err instanceof Cancelled) {
        status.textContent = "Cancelled.";
      } else {
        // what is shown must never look like the answer to the request that failed
        state.nextStart = null;
        state.pages = [];
        results.replaceChildren(h("p", { class: "psp-empty", text: "The last request failed: nothing to show." }));
        showError(err.message);
        status.textContent = "";
      }
    } finally {
      setBusy(false);
    }
  }

  async function reattribute(section, exampleIndex, modelIndex, target, request) {
    if (section.classList.contains("is-busy")) return;
    showError("");
    section.classList.add("is-busy");
    try {
      const body = { ...request, example: exampleIndex, model: modelIndex, target, confirm: true };
      const outcome = await runJob(() => transport.startReattribute(body), showProgress);
      section.replaceWith(modelSection(exampleIndex, outcome.result.view, request));
      status.textContent = "";
    } catch (err) {
      section.classList.remove("is-busy");
      if (err instanceof Cancelled) status.textContent = "Cancelled.";
      else showError(err.message);
    }
  }

  function predictionBars(view) {
    const raw = state.config.scores === "raw";
    const peak = Math.max(1e-12, ...view.predictions.map((p) => Math.abs(Number(p.score) || 0)));
    return view.predictions.map((p) => {
      const fill = h("span", { class: "psp-pred-fill" });
      const score = Number(p.score) || 0;
      fill.style.width = pct(raw ? Math.abs(score) / peak : Math.max(0, Math.min(1, score)));
      if (raw && score < 0) fill.classList.add("is-neg");
      return [p, fill];
    });
  }

  function modelSection(exampleIndex, view, request) {
    const section = h("section", { class: "psp-model", "data-model": view.model });
    const verdict = view.correct === null ? null : h("span", { class: `psp-badge ${view.correct ? "is-ok" : "is-bad"}`, text: view.correct ? "correct" : "incorrect" });
    const preds = predictionBars(view).map(([p, fill]) =>
      h(
        "button",
        { type: "button", class: `psp-pred${p.index === view.target.index ? " is-target" : ""}`, title: `Attribute to ${p.name} with ${view.method}`, "data-class": p.index, onclick: () => reattribute(section, exampleIndex, view.model, p.index, request) },
        h("span", { class: "psp-pred-name", text: p.name }),
        h("span", { class: "psp-pred-bar" }, fill),
        h("span", { class: "psp-pred-score", text: fmt(p.score) }),
      ),
    );
    const scoreTitle = state.config.scores === "raw" ? "Model outputs (click to attribute)" : "Predicted (click to attribute)";
    section.append(
      h("div", { class: "psp-overlay" }, spinner()),
      h("h3", {}, h("span", { text: view.model_name }), verdict),
      h("div", { class: "psp-section-title", text: scoreTitle }),
      h("div", { class: "psp-preds" }, preds),
      h("p", { class: "psp-target" }, "Attributing ", h("strong", { text: view.target.name }), ` with ${view.method}`),
      contributions(view.features),
      h("div", { class: "psp-features" }, view.features.map(featureView)),
    );
    return section;
  }

  function exampleCard(example, request) {
    const label = example.label ? example.label.name : "unknown";
    return h(
      "article",
      { class: "psp-example", "data-example": example.index },
      h("header", {}, h("span", { class: "psp-example-id", text: `Example ${example.index}` }), h("span", { class: "psp-label" }, "True label: ", h("strong", { text: label }))),
      h("div", { class: "psp-models" }, example.models.map((view) => modelSection(example.index, view, request))),
    );
  }

  function controls() {
    const segmented = h(
      "div",
      { class: "psp-segmented", role: "radiogroup", "aria-label": "Instances" },
      INSTANCE_TYPES.map(([value, label]) =>
        h("button", { type: "button", role: "radio", "aria-checked": value === state.instance ? "true" : "false", "data-value": value, onclick: (event) => {
          state.instance = value;
          for (const b of segmented.children) b.setAttribute("aria-checked", b === event.currentTarget ? "true" : "false");
          filtersChanged();
        } }, label),
      ),
    );
    const sizes = PAGE_SIZES.filter((n) => n <= (state.config.max_count || 32));
    pageSize.replaceChildren(...sizes.map((n) => h("option", { value: n, selected: n === 4 }, String(n))));
    return h(
      "aside",
      { class: "psp-controls" },
      h("section", {}, h("h2", { text: "Filter" }), h("label", { class: "psp-field-label", text: "Classes" }), chips, classInput, datalist, h("label", { class: "psp-field-label", text: "Instances" }), segmented),
      h("section", {}, h("h2", { text: "Attribution" }), methodSelect, summary, argsBox, unavailableBox),
      h("section", { class: "psp-paging" }, h("label", { class: "psp-field-label" }, "Per page ", pageSize), h("label", { class: "psp-field-label" }, "Top-k ", topK)),
      h("div", { class: "psp-actions" }, fetchButton, cancelButton),
      h("div", { class: "psp-actions" }, prevButton, nextButton),
      progress,
      status,
      warningBox,
      errorBox,
    );
  }

  function methodOption(m) {
    const label = m.unavailable ? `${m.name} (not available)` : m.name;
    return h("option", { value: m.name, selected: m.name === state.config.selected_method, disabled: Boolean(m.unavailable), title: m.unavailable || m.summary }, label);
  }

  function build(config) {
    state.config = config;
    datalist.replaceChildren(...config.classes.map((c) => h("option", { value: c })));
    methodSelect.replaceChildren(...config.methods.map(methodOption));
    const blocked = config.methods.filter((m) => m.unavailable);
    unavailableBox.replaceChildren(
      ...(blocked.length ? [h("strong", { text: "Not available for these models:" })] : []),
      ...blocked.map((m) => h("span", { class: "psp-unavailable-item", text: `${m.name}: ${m.unavailable}` })),
    );
    const subtitle = `${config.models.join(" · ")} — ${config.classes.length} classes, ${config.features.length} feature(s)`;
    root.replaceChildren(
      h("header", { class: "psp-header" }, h("h1", { text: "perspicio insights" }), h("span", { class: "psp-subtitle", text: subtitle })),
      h("div", { class: "psp-body" }, controls(), results),
    );
    results.replaceChildren(h("p", { class: "psp-empty", text: "Pick a method and press Fetch." }));
    if (config.selected_method) selectMethod(config.selected_method);
    if (!config.methods.some((m) => !m.unavailable)) showError("No attribution method can explain these models.");
  }

  root.append(h("p", { class: "psp-loading" }, spinner(), " Loading…"));
  transport.config().then(build, (err) => { root.replaceChildren(errorBox); showError(err.message); });

  return {
    // stop this view's jobs: the page or the widget is going away
    destroy() {
      state.alive = false;
      for (const id of state.jobs) {
        try {
          Promise.resolve(transport.abandon ? transport.abandon(id) : transport.cancelJob(id)).catch(() => {});
        } catch {
          // the transport is already closed
        }
      }
      state.jobs.clear();
      root.remove();
    },
  };
}

// the drawing helpers that result mode (result.js, which has no imports) is given
export const parts = { h, fmt, pct, featureView, contributions, spinner };
