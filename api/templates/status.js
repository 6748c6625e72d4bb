(function () {
  "use strict";
  // Re-fetches this same page every 2 s and swaps in its #live part (server-rendered, so the
  // numbers come from one place). Same-origin fetch: a reverse proxy that adds the bearer
  // header to the page adds it to these requests too. Paused while the tab is hidden; off
  // for a page whose #live says data-refresh="off" (one that reads Kafka, an error page).
  var PERIOD_MS = 2000;
  var state = document.getElementById("refresh-state");
  function schedule() { window.setTimeout(tick, PERIOD_MS); }
  function tick() {
    var live = document.getElementById("live");
    if (!live || live.getAttribute("data-refresh") === "off") { return; }
    if (document.hidden) { schedule(); return; }
    window.fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        var now = document.getElementById("live");
        if (next && now) { now.replaceWith(document.importNode(next, true)); }
        state.textContent = "updated " + new Date().toLocaleTimeString();
        state.className = "refresh";
      })
      .catch(function (err) {
        state.textContent = "refresh failed (" + err.message + "); showing the last answer";
        state.className = "refresh bad";
      })
      .then(schedule);
  }
  if (document.getElementById("live").getAttribute("data-refresh") === "off") {
    state.textContent = "not refreshed automatically";
  } else {
    schedule();
  }
}());
