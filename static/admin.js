// Editor workspace behaviour. Served as a file: the CSP allows no inline script
// and no on...="" attributes, so forms opt in with data- attributes instead.
"use strict";

document.addEventListener("submit", function (event) {
  const form = event.target;
  if (form.dataset.confirm !== undefined && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  if (form.dataset.submitOnce !== undefined) {
    // A double click makes one request.
    form.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
  }
});

// The issue report: refresh from the delivery ledger until every row is final.
document.addEventListener("DOMContentLoaded", function () {
  const report = document.getElementById("report");
  const status = document.getElementById("status");
  if (!report || !status || !report.dataset.progressUrl) return;
  // The counts read every row of the issue: on a large send the page waits ten times
  // as long as the last count took, so watching costs the database a tenth at most.
  let took = 0;
  async function refresh() {
    let p;
    const started = performance.now();
    try {
      const response = await fetch(report.dataset.progressUrl, {headers: {Accept: "application/json"}});
      if (!response.ok) throw new Error(response.status);
      p = await response.json();
      took = performance.now() - started;
    } catch (error) {
      return setTimeout(refresh, 3000);
    }
    const total = Math.max(p.total, 1);
    const done = Math.round((p.total - p.remaining) / total * 100);
    for (const key of ["sent", "deferred", "failed", "unknown", "skipped", "remaining",
                       "resent_after_crash"]) {
      document.getElementById("n-" + key).textContent = p[key];
    }
    const parts = [["sent", p.sent], ["failed", p.failed + p.unknown], ["skipped", p.skipped],
                   ["deferred", p.deferred]];
    let x = 0;
    for (const [kind, count] of parts) {
      const rect = document.getElementById("bar-" + kind);
      const width = count / total * 100;
      rect.setAttribute("x", x);
      rect.setAttribute("width", width);
      x += width;
    }
    document.getElementById("bar").setAttribute("aria-valuenow", done);
    document.getElementById("percent").textContent = done + "%";
    status.textContent = p.status;
    status.className = "pill " + p.status;
    if (p.status === "sending") setTimeout(refresh, Math.max(1000, 10 * took));
  }
  if (status.textContent === "sending") setTimeout(refresh, 500);
});

// The compose page: the preview follows typing (a pause of 400 ms, then the compose
// form itself is posted to the preview, so the preview is exactly what the buttons
// would send), and "Leave out" comes back to the form as typed.
document.addEventListener("DOMContentLoaded", function () {
  const form = document.getElementById("compose");
  if (!form) return;
  const frame = document.getElementById("preview-html");
  const text = document.getElementById("preview-text");
  const previewUrl = form.dataset.previewUrl;
  let timer = null;
  let latest = 0;
  function showHtml() {
    // A plain submit() fires no submit event, so no confirm or submit-once handler runs.
    const [action, target] = [form.action, form.target];
    form.action = previewUrl;
    form.target = frame.name;
    form.submit();
    [form.action, form.target] = [action, target];
  }
  async function showText() {
    const asked = ++latest;  // an older, slower answer never overwrites a newer one
    try {
      const response = await fetch(previewUrl + "?part=text",
                                   {method: "POST", body: new FormData(form)});
      if (response.ok && asked === latest) text.textContent = await response.text();
    } catch (error) {
      // The HTML frame still updates; the text part catches up on the next keystroke.
    }
  }
  function refresh() {
    showHtml();
    showText();
    const query = new URLSearchParams();
    for (const name of ["subject", "headline", "intro", "as_topics"]) {
      const value = form.elements[name].value;
      if (value) query.set(name, value);
    }
    const back = form.dataset.composeUrl + (query.toString() ? "?" + query : "");
    document.querySelectorAll("input[data-compose-back]").forEach(function (input) {
      input.value = back;
    });
  }
  form.addEventListener("input", function (event) {
    if (!["subject", "headline", "intro", "as_topics"].includes(event.target.name)) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
});

// The article form: the body as it will be stored (rendered and sanitised by the
// server), shown while the editor types. The form is posted into the preview frame,
// whose document has a policy of its own (https images show there, not here).
document.addEventListener("DOMContentLoaded", function () {
  const body = document.getElementById("body");
  const preview = document.getElementById("preview");
  if (!body || !preview || !body.dataset.previewUrl) return;
  const form = body.form;
  let timer = null;
  function refresh() {
    // A plain submit() fires no submit event, so no confirm or submit-once handler runs.
    const [action, target] = [form.action, form.target];
    form.action = body.dataset.previewUrl;
    form.target = preview.name;
    form.submit();
    [form.action, form.target] = [action, target];
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }
  body.addEventListener("input", later);
  form.querySelectorAll("input[name=body_format]").forEach(function (radio) {
    radio.addEventListener("change", refresh);
  });
  refresh();
});

// The segment builder: how many readers the conditions select, as the editor types.
document.addEventListener("DOMContentLoaded", function () {
  const form = document.getElementById("segment-form");
  const shown = document.getElementById("segment-count");
  if (!form || !shown || !form.dataset.countUrl) return;
  let timer = null;
  async function refresh() {
    try {
      const response = await fetch(form.dataset.countUrl, {
        method: "POST", body: new FormData(form), headers: {Accept: "application/json"}});
      const answer = await response.json();
      shown.textContent = answer.count !== undefined
        ? answer.count + " reader(s) now: " + answer.description : answer.error;
    } catch (error) {
      shown.textContent = "The count is not available.";
    }
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  refresh();
});
