// RA centre console: progressive enhancement only (the pages work without it). Served as a file so
// the Content-Security-Policy can forbid inline script.
"use strict";
document.addEventListener("submit", function (event) {
  var button = event.submitter || event.target.querySelector("[data-confirm]");
  var message = button && button.getAttribute("data-confirm");
  if (message && !window.confirm(message)) { event.preventDefault(); }
});
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("job");
  if (!box || !box.dataset.poll) { return; }
  function poll() {
    fetch(box.dataset.poll, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (job) {
        var shown = document.getElementById("job-state");
        shown.textContent = JSON.parse(shown.dataset.labels || "{}")[job.state] || job.state;
        shown.dataset.state = job.state;
        var bar = document.getElementById("job-progress");
        bar.max = job.total || 1; bar.value = job.progress;
        document.getElementById("job-count").textContent = job.progress + "/" + (job.total === null ? "?" : job.total);
        document.getElementById("job-result").textContent = JSON.stringify(job.result, null, 2);
        if (job.state === "queued" || job.state === "running") { window.setTimeout(poll, 1500); }
        else { window.location.reload(); }   // the finished job's results, as the page words them
      });
  }
  var state = document.getElementById("job-state").dataset.state;
  if (state === "queued" || state === "running") { window.setTimeout(poll, 1000); }
});
document.addEventListener("DOMContentLoaded", function () {
  // "select all on this page" for the queue's approve-selected form (hidden without script)
  Array.prototype.forEach.call(document.querySelectorAll("input[data-select-all]"), function (all) {
    var boxes = all.form.querySelectorAll("input[type=checkbox][name='" + all.dataset.selectAll + "']");
    if (!boxes.length) { return; }
    all.hidden = false;
    all.addEventListener("change", function () {
      Array.prototype.forEach.call(boxes, function (box) { box.checked = all.checked; });
    });
  });
});
// Forms keep their input on an error (issue 17): what a form sends is kept in this tab's sessionStorage
// (never passwords, one-time codes, CSRF tokens or files); when the answer is an error page and the officer
// goes back to the form, the fields are filled in again. A page that is not an error forgets it.
(function () {
  var KEY = "racentre.form", FAILED = "racentre.form.failed";
  var SKIP = {password: 1, file: 1, hidden: 1, submit: 1, button: 1};
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || form.id === "login-form") { return; }
    var fields = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || SKIP[el.type] || el.name === "otp") { return; }
      fields.push({name: el.name, type: el.type, value: el.value, checked: el.checked});
    });
    try {
      sessionStorage.setItem(KEY, JSON.stringify({action: form.getAttribute("action"), fields: fields}));
      sessionStorage.removeItem(FAILED);
    } catch (e) { /* storage disabled: nothing kept */ }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var error = document.getElementById("error-page");
    try {
      if (error) {
        if (error.dataset.formError === "1") { sessionStorage.setItem(FAILED, "1"); }
        return;
      }
      var saved = sessionStorage.getItem(KEY), failed = sessionStorage.getItem(FAILED);
      sessionStorage.removeItem(KEY); sessionStorage.removeItem(FAILED);
      if (!saved || !failed) { return; }
      saved = JSON.parse(saved);
      Array.prototype.forEach.call(document.forms, function (form) {
        if (form.getAttribute("action") !== saved.action) { return; }
        saved.fields.forEach(function (f) {
          var el = form.elements.namedItem(f.name);
          if (!el || el.length !== undefined && !el.tagName) { el = el && el[0]; }
          if (!el) { return; }
          if (f.type === "checkbox" || f.type === "radio") { el.checked = f.checked; } else { el.value = f.value; }
        });
      });
    } catch (e) { /* nothing to restore */ }
  });
})();
