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

// -- the app --------------------------------------------------------------------------------

export function mount(el, transport) {
  const state = { config: null, method: null, classes: [], instance: "all", nextStart: null, busy: false };
  const root = h("div", { class: "psp-root" });
  el.append(root);
  const errorBox = h("div", { class: "psp-error", role: "alert", hidden: true });
  const results = h("main", { class: "psp-results", "aria-live": "polite" });
  const argsBox = h("div", { class: "psp-args" });
  const summary = h("p", { class: "psp-summary" });
  const methodSelect = h("select", { class: "psp-method", "aria-label": "Attribution method", onchange: () => selectMethod(methodSelect.value) });
  const chips = h("div", { class: "psp-chips" });
  const datalist = h("datalist", { id: `psp-classes-${Math.random().toString(36).slice(2)}` });
  const classInput = h("input", { class: "psp-class-input", type: "text", list: datalist.id, placeholder: "Type a class name", "aria-label": "Add a class filter" });
  const fetchButton = h("button", { class: "psp-fetch psp-primary", type: "button", onclick: () => load(0) }, spinner(), h("span", { text: "Fetch" }));
  const nextButton = h("button", { class: "psp-next", type: "button", disabled: true, onclick: () => load(state.nextStart) }, "Next");
  const status = h("span", { class: "psp-status" });

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  function addClass(name) {
    const known = state.config && state.config.classes.includes(name);
    if (!known || state.classes.includes(name)) return false;
    state.classes.push(name);
    renderChips();
    return true;
  }

  function renderChips() {
    chips.replaceChildren(
      ...state.classes.map((name) =>
        h(
          "span",
          { class: "psp-chip" },
          name,
          h("button", { type: "button", class: "psp-chip-x", "aria-label": `Remove ${name}`, onclick: () => { state.classes = state.classes.filter((c) => c !== name); renderChips(); } }, "×"),
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
    return h("div", { class: `psp-arg psp-arg-${arg.type}`, title: arg.help || "" }, h("label", { for: id, text: arg.name }), input);
  }

  function readArgs() {
    const out = {};
    for (const input of argsBox.querySelectorAll("[data-arg]")) {
      const { arg, type } = input.dataset;
      if (type === "bool") out[arg] = input.checked;
      else if (type === "choice") out[arg] = input.value;
      else if (type === "ints") {
        const text = input.value.trim();
        if (text) out[arg] = text.split(/[\s,x×]+/).filter(Boolean).map(Number);
      } else if (input.value !== "") out[arg] = Number(input.value);
    }
    return out;
  }

  function selectMethod(name) {
    const method = state.config.methods.find((m) => m.name === name);
    state.method = method || null;
    summary.textContent = method ? method.summary : "";
    argsBox.replaceChildren(...(method ? method.args.map(argInput) : []));
  }

  function request(extra) {
    return { method: state.method ? state.method.name : null, arguments: readArgs(), ...extra };
  }

  function setBusy(busy) {
    state.busy = busy;
    fetchButton.disabled = busy;
    fetchButton.classList.toggle("is-busy", busy);
    nextButton.disabled = busy || state.nextStart === null;
    root.classList.toggle("is-busy", busy);
  }

  async function load(start) {
    if (state.busy || start === null) return;
    showError("");
    setBusy(true);
    status.textContent = "Computing attributions…";
    try {
      const body = request({ classes: state.classes, instance_type: state.instance, start, count: 4 });
      const response = await transport.fetch(body);
      state.nextStart = response.next_start;
      results.replaceChildren(...response.examples.map(exampleCard));
      if (!response.examples.length) results.append(h("p", { class: "psp-empty", text: "No example matches these filters." }));
      status.textContent = `${response.examples.length} example(s), ${response.scanned} scanned`;
    } catch (err) {
      showError(err.message);
      status.textContent = "";
    } finally {
      setBusy(false);
    }
  }

  async function reattribute(section, exampleIndex, modelIndex, target) {
    if (section.classList.contains("is-busy")) return;
    showError("");
    section.classList.add("is-busy");
    try {
      const response = await transport.reattribute(request({ example: exampleIndex, model: modelIndex, target }));
      section.replaceWith(modelSection(exampleIndex, response.view));
    } catch (err) {
      showError(err.message);
      section.classList.remove("is-busy");
    }
  }

  function modelSection(exampleIndex, view) {
    const section = h("section", { class: "psp-model", "data-model": view.model });
    const verdict = view.correct === null ? null : h("span", { class: `psp-badge ${view.correct ? "is-ok" : "is-bad"}`, text: view.correct ? "correct" : "incorrect" });
    const preds = view.predictions.map((p) => {
      const fill = h("span", { class: "psp-pred-fill" });
      fill.style.width = pct(Math.max(0, Math.min(1, p.score)));
      return h(
        "button",
        { type: "button", class: `psp-pred${p.index === view.target.index ? " is-target" : ""}`, title: `Attribute to ${p.name}`, "data-class": p.index, onclick: () => reattribute(section, exampleIndex, view.model, p.index) },
        h("span", { class: "psp-pred-name", text: p.name }),
        h("span", { class: "psp-pred-bar" }, fill),
        h("span", { class: "psp-pred-score", text: fmt(p.score) }),
      );
    });
    section.append(
      h("div", { class: "psp-overlay" }, spinner()),
      h("h3", {}, h("span", { text: view.model_name }), verdict),
      h("div", { class: "psp-section-title", text: "Predicted (click to attribute)" }),
      h("div", { class: "psp-preds" }, preds),
      h("p", { class: "psp-target" }, "Attributing ", h("strong", { text: view.target.name }), ` with ${view.method}`),
      contributions(view.features),
      h("div", { class: "psp-features" }, view.features.map(featureView)),
    );
    return section;
  }

  function exampleCard(example) {
    const label = example.label ? example.label.name : "unknown";
    return h(
      "article",
      { class: "psp-example", "data-example": example.index },
      h("header", {}, h("span", { class: "psp-example-id", text: `Example ${example.index}` }), h("span", { class: "psp-label" }, "True label: ", h("strong", { text: label }))),
      h("div", { class: "psp-models" }, example.models.map((view) => modelSection(example.index, view))),
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
        } }, label),
      ),
    );
    return h(
      "aside",
      { class: "psp-controls" },
      h("section", {}, h("h2", { text: "Filter" }), h("label", { class: "psp-field-label", text: "Classes" }), chips, classInput, datalist, h("label", { class: "psp-field-label", text: "Instances" }), segmented),
      h("section", {}, h("h2", { text: "Attribution" }), methodSelect, summary, argsBox),
      h("div", { class: "psp-actions" }, fetchButton, nextButton),
      status,
      errorBox,
    );
  }

  function build(config) {
    state.config = config;
    datalist.replaceChildren(...config.classes.map((c) => h("option", { value: c })));
    methodSelect.replaceChildren(...config.methods.map((m) => h("option", { value: m.name, selected: m.name === config.selected_method }, m.name)));
    const subtitle = `${config.models.join(" · ")} — ${config.classes.length} classes, ${config.features.length} feature(s)`;
    root.replaceChildren(
      h("header", { class: "psp-header" }, h("h1", { text: "perspicio insights" }), h("span", { class: "psp-subtitle", text: subtitle })),
      h("div", { class: "psp-body" }, controls(), results),
    );
    results.replaceChildren(h("p", { class: "psp-empty", text: "Pick a method and press Fetch." }));
    if (config.selected_method) selectMethod(config.selected_method);
    if (!config.methods.length) showError("No attribution method is available.");
  }

  root.append(h("p", { class: "psp-loading" }, spinner(), " Loading…"));
  transport.config().then(build, (err) => { root.replaceChildren(errorBox); showError(err.message); });

  return {
    destroy() { root.remove(); },
  };
}
