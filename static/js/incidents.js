/* Incident Portal: the small amount of behaviour the responder pages need, kept out of inline scripts
   so the Content-Security-Policy can forbid inline code and eval.
   - Polling elements (data-poll-visible) only ask the server while the tab is visible, and catch up at once
     when it becomes visible again.
   - htmx swaps form responses with errors (400/403/409/422) so the field errors appear in place.
   - Countdowns (data-deadline) and elapsed times (data-since) tick every second between refreshes. */
(function () {
  "use strict";

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-poll-visible") && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || !window.htmx) return;
    document.querySelectorAll("[data-poll-visible]").forEach(function (elt) { htmx.trigger(elt, "poll-now"); });
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 403 || status === 409 || status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // A poll and an action's "timeline-refresh" can race; never show the same entry twice.
  document.addEventListener("htmx:afterSettle", function () {
    var list = document.getElementById("timeline-entries");
    if (!list) return;
    var seen = {};
    list.querySelectorAll("li[data-entry-id]").forEach(function (li) {
      var id = li.getAttribute("data-entry-id");
      if (seen[id]) { li.remove(); } else { seen[id] = true; }
    });
  });

  function duration(seconds) {
    seconds = Math.floor(Math.abs(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    function pad(n) { return n < 10 ? "0" + n : "" + n; }
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + pad(m) + "m";
    if (m) return m + "m " + pad(s) + "s";
    return s + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (elt) {
      var left = (Date.parse(elt.getAttribute("data-deadline")) - now) / 1000;
      var windowSeconds = parseFloat(elt.getAttribute("data-window") || "0");
      var state = left < 0 ? "bad" : (windowSeconds && left < windowSeconds / 3 ? "warn" : "ok");
      elt.textContent = left < 0 ? "overdue by " + duration(left) : duration(left) + " left";
      elt.classList.remove("ok", "warn", "bad");
      elt.classList.add(state);
    });
    document.querySelectorAll("[data-since]").forEach(function (elt) {
      elt.textContent = duration((now - Date.parse(elt.getAttribute("data-since"))) / 1000);
    });
  }
  setInterval(tick, 1000);
})();
