// The live calls on top of the list: Server-Sent Events from /api/live, drawn with DOM calls
// (never HTML from data). A call that ends leaves the live table and the list below reloads.
"use strict";
(function () {
  var section = document.getElementById("live");
  var body = document.querySelector("#live-table tbody");
  var count = document.getElementById("live-count");
  var more = document.getElementById("live-more");
  var status = document.getElementById("live-status");
  var known = new Set();
  if (!section || !window.EventSource) return;

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }
  function meter(row, level, label) {
    var td = document.createElement("td");
    if (level === null) { td.textContent = "—"; row.appendChild(td); return; }
    var m = document.createElement("meter");
    m.min = -60; m.max = 0; m.low = -40; m.high = -6; m.optimum = -20;
    m.value = Math.max(-60, level);
    m.setAttribute("aria-label", label + " " + level.toFixed(0) + " dBFS");
    m.title = level.toFixed(0) + " dBFS";
    td.appendChild(m);
    row.appendChild(td);
  }
  function elapsed(seconds) {
    var s = Math.floor(seconds), m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }
  var reloading = null;
  function reloadList() {  // at most one reload a second, however many calls start or end
    if (reloading === null) reloading = setTimeout(function () { reloading = null; fetchList(); }, 1000);
  }
  function fetchList() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("#calls tbody");
        var current = document.querySelector("#calls tbody");
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(function () { /* the next end retries */ });
  }
  function show(snapshot) {
    var ids = new Set();
    var rows = document.createDocumentFragment();
    snapshot.calls.forEach(function (call) {
      ids.add(call.call_id);
      var row = document.createElement("tr");
      row.dataset.call = call.call_id;
      var first = document.createElement("td");
      var link = document.createElement("a");
      link.href = "/ui/calls/" + encodeURIComponent(call.call_id);
      link.textContent = call.call_id;
      first.appendChild(link);
      row.appendChild(first);
      cell(row, call.from_number || "—");
      cell(row, call.to_number || "—");
      cell(row, elapsed(call.elapsed), "num");
      meter(row, call.level_caller, "caller level");
      meter(row, call.level_heard, "heard level");
      cell(row, call.events.map(function (e) { return e.text; }).join(" · "), "events");
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
    var total = snapshot.calls.length + snapshot.more;
    section.hidden = total === 0;
    count.textContent = total ? "(" + total + ")" : "";
    more.hidden = snapshot.more === 0;
    more.textContent = snapshot.more ? snapshot.more + " more live calls not shown" : "";
    var ended = [], started = [];
    known.forEach(function (id) { if (!ids.has(id)) ended.push(id); });
    ids.forEach(function (id) { if (!known.has(id)) started.push(id); });
    if (ended.length) status.textContent = ended.length + " call(s) ended";
    if (ended.length || started.length) reloadList();
    known = ids;
  }
  var feed = new EventSource("/api/live");
  feed.onmessage = function (message) { show(JSON.parse(message.data)); };
})();
