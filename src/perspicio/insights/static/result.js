// perspicio insights, result mode: a saved Explanation, read-only.
// No imports (the notebook widget concatenates ui.js, this file and widget.js): the drawing
// helpers of ui.js come in as `parts`. All text from the server goes in with textContent.

const ORDERS = [
  ["index", "Dataset order"],
  ["target", "Target"],
  ["output", "Output (largest first)"],
  ["attribution", "Total |attribution| (largest first)"],
];
const RESULT_PAGE_SIZES = [1, 2, 4, 8, 16, 32];

function argumentText(args) {
  const entries = Object.entries(args || {});
  if (!entries.length) return "no arguments";
  return entries.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

export function mountResult(el, transport, parts) {
  const { h, fmt, featureView, contributions, spinner } = parts;
  const state = { config: null, info: null, start: 0, prev: null, next: null, busy: false };
  const root = h("div", { class: "psp-root psp-result-mode" });
  el.append(root);
  const errorBox = h("div", { class: "psp-error", role: "alert", hidden: true });
  const results = h("main", { class: "psp-results", "aria-live": "polite" });
  const cards = h("div", { class: "psp-cards" });
  const status = h("span", { class: "psp-status" });
  const targetSelect = h("select", { class: "psp-target-filter", "aria-label": "Target", onchange: () => load(0) });
  const orderSelect = h("select", { class: "psp-order", "aria-label": "Order", onchange: () => load(0) });
  const pageSize = h("select", { class: "psp-page-size", "aria-label": "Examples per page", onchange: () => load(0) });
  const prevButton = h("button", { class: "psp-prev", type: "button", disabled: true, onclick: () => load(state.prev) }, "Previous");
  const nextButton = h("button", { class: "psp-next", type: "button", disabled: true, onclick: () => load(state.next) }, "Next");

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  function updateButtons() {
    prevButton.disabled = state.busy || state.prev === null;
    nextButton.disabled = state.busy || state.next === null;
    root.classList.toggle("is-busy", state.busy);
  }

  function exampleCard(example) {
    const info = state.info;
    const scores = [];
    if (info.has_output) scores.push(`output ${fmt(example.output)}`);
    if (info.has_base_value) scores.push(`base value ${fmt(example.base_value)}`);
    return h(
      "article",
      { class: "psp-example", "data-example": example.index },
      h(
        "header",
        {},
        h("span", { class: "psp-example-id", text: `Example ${example.index}` }),
        h("span", { class: "psp-label" }, "Target: ", h("strong", { class: "psp-card-target", text: example.target === null ? "–" : example.target })),
      ),
      h(
        "section",
        { class: "psp-model" },
        h("p", { class: "psp-target" }, h("strong", { text: info.method }), ` (${argumentText(info.arguments)})`),
        scores.length ? h("p", { class: "psp-result-scores", text: scores.join(" · ") }) : null,
        example.features.length > 1 ? contributions(example.features) : null,
        h("div", { class: "psp-features" }, example.features.map(featureView)),
      ),
    );
  }

  function importancePanel(items) {
    if (!items.length) return null;
    const peak = Math.max(1e-12, ...items.map((i) => Math.abs(Number(i.value) || 0)));
    return h(
      "section",
      { class: "psp-importance psp-contrib" },
      h("div", { class: "psp-section-title", text: `Global importance: mean |attribution|, top ${items.length}` }),
      items.map((item) => {
        const fill = h("div", { class: "psp-cbar-fill" });
        fill.style.width = `${((100 * Math.abs(Number(item.value) || 0)) / peak).toFixed(1)}%`;
        return h(
          "div",
          { class: "psp-crow" },
          h("span", { class: "psp-clabel", text: item.name, title: item.name }),
          h("div", { class: "psp-cbar", role: "img", "aria-label": `${item.name} ${fmt(item.value)}` }, fill),
          h("span", { class: "psp-cvalue", text: fmt(item.value) }),
        );
      }),
    );
  }

  async function load(start) {
    if (state.busy || start === null || start === undefined) return;
    state.busy = true;
    updateButtons();
    showError("");
    status.textContent = "Loading…";
    const body = { start, count: Number(pageSize.value), order: orderSelect.value, targets: targetSelect.value ? [targetSelect.value] : [] };
    try {
      const page = await transport.page(body);
      state.start = page.start;
      state.prev = page.prev_start;
      state.next = page.next_start;
      cards.replaceChildren(...page.examples.map(exampleCard));
      if (!page.examples.length) cards.append(h("p", { class: "psp-empty", text: "No example matches this filter." }));
      const last = page.start + page.examples.length;
      status.textContent = page.total ? `Examples ${page.start + 1}–${last} of ${page.total}` : "";
    } catch (err) {
      state.prev = null;
      state.next = null;
      cards.replaceChildren(h("p", { class: "psp-empty", text: "The last request failed: nothing to show." }));
      showError(err.message);
      status.textContent = "";
    } finally {
      state.busy = false;
      updateButtons();
    }
  }

  function controls(info) {
    const method = h("select", { class: "psp-method", "aria-label": "Attribution method", disabled: true }, h("option", { text: info.method }));
    targetSelect.replaceChildren(h("option", { value: "", text: "All targets" }), ...info.targets.map((t) => h("option", { value: t, text: t })));
    targetSelect.disabled = !info.targets.length;
    orderSelect.replaceChildren(...ORDERS.map(([value, label]) => h("option", { value, disabled: value === "output" && !info.has_output }, label)));
    pageSize.replaceChildren(...RESULT_PAGE_SIZES.map((n) => h("option", { value: n, selected: n === 4 }, String(n))));
    return h(
      "aside",
      { class: "psp-controls" },
      h(
        "section",
        {},
        h("h2", { text: "Attribution" }),
        method,
        h("p", { class: "psp-summary psp-arguments", text: argumentText(info.arguments) }),
        h("p", { class: "psp-unavailable psp-readonly-note", text: info.note }),
      ),
      h("section", {}, h("h2", { text: "Filter and order" }), h("label", { class: "psp-field-label" }, "Target ", targetSelect), h("label", { class: "psp-field-label" }, "Order ", orderSelect)),
      h("section", { class: "psp-paging" }, h("label", { class: "psp-field-label" }, "Per page ", pageSize)),
      h("div", { class: "psp-actions" }, prevButton, nextButton),
      status,
      errorBox,
    );
  }

  function build(config) {
    state.config = config;
    state.info = config.result;
    const info = config.result;
    const subtitle = `saved result — ${info.method}, ${info.examples} example(s), ${config.features.length} input(s)`;
    results.replaceChildren(importancePanel(info.importance) || "", cards);
    root.replaceChildren(
      h("header", { class: "psp-header" }, h("h1", { text: "perspicio insights" }), h("span", { class: "psp-subtitle", text: subtitle })),
      h("div", { class: "psp-body" }, controls(info), results),
    );
    load(0);
  }

  root.append(h("p", { class: "psp-loading" }, spinner(), " Loading…"));
  transport.config().then(build, (err) => { root.replaceChildren(errorBox); showError(err.message); });

  return {
    destroy() {
      root.remove();
    },
  };
}
