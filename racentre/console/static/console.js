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
        document.getElementById("job-state").textContent = job.state;
        var bar = document.getElementById("job-progress");
        bar.max = job.total || 1; bar.value = job.progress;
        document.getElementById("job-count").textContent = job.progress + "/" + (job.total === null ? "?" : job.total);
        document.getElementById("job-result").textContent = JSON.stringify(job.result, null, 2);
        if (job.state === "queued" || job.state === "running") { window.setTimeout(poll, 1500); }
      });
  }
  var state = document.getElementById("job-state").textContent;
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
