/* Incident Portal: the small amount of behaviour the responder pages need, kept out of inline scripts
   so the Content-Security-Policy can forbid inline code and eval.
   - Polling elements (data-poll-visible) only ask the server while the tab is visible, and catch up at once
     when it becomes visible again.
   - htmx swaps form responses with errors (400/403/409/422) so the field errors appear in place.
   - Countdowns (data-deadline) and elapsed times (data-since) tick every second between refreshes.
   - Live push: an element with sse-connect (htmx's SSE extension) streams "incident" events from /events/;
     elements inside it with data-live refresh on them (hx-trigger "sse:incident"). While the stream is open
     the timed polls are skipped; when it drops they run again, and when it (re)opens the page catches up once. */
(function () {
  "use strict";

  function liveSource(elt) {
    return elt && elt.closest ? elt.closest("[sse-connect]") : null;
  }

  function isLive(elt) {
    var source = liveSource(elt);
    return !!source && source.getAttribute("data-live-state") === "open";
  }

  // Elements that got an event while their refresh was under way (htmx marks it with .htmx-request): hx-sync
  // would drop that request, and the change it announces could be missed, so it is made once the first is done.
  var again = {};

  // htmx:confirm comes before hx-sync decides, and knows what triggered the request.
  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute) return;
    if (elt.hasAttribute("data-poll-visible") && document.visibilityState !== "visible") {
      event.preventDefault();
      return;
    }
    // A timed poll has no triggering event; while the stream is open the stream says when to ask.
    if (!event.detail.triggeringEvent && elt.hasAttribute("data-poll-visible") && isLive(elt)) {
      event.preventDefault();
      return;
    }
    if (elt.hasAttribute("data-live") && elt.id && elt.classList.contains("htmx-request")) {
      again[elt.id] = true;
      event.preventDefault();
    }
  });

  // After any request (a swapped element reports on its parent), make the refreshes that had to wait.
  function flushAgain() {
    Object.keys(again).forEach(function (id) {
      var elt = document.getElementById(id);
      if (again[id] && elt && !elt.classList.contains("htmx-request")) {
        again[id] = false;
        refresh(elt);
      }
    });
  }
  function soon() { setTimeout(flushAgain, 50); }
  document.addEventListener("htmx:afterRequest", soon);
  document.addEventListener("htmx:sendError", soon);

  function refresh(elt) {
    if (elt && window.htmx) htmx.trigger(elt, "poll-now");
  }

  function catchUp(source) {
    source.querySelectorAll("[data-live]").forEach(refresh);
  }

  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail.elt || event.target;
    var stream = event.detail.source;
    source.setAttribute("data-live-state", "open");
    // The stream's first event means the server is subscribed: whatever committed before it is fetched now.
    if (stream && !stream.liveReadyHandler) {
      stream.liveReadyHandler = function () { catchUp(source); };
      stream.addEventListener("ready", stream.liveReadyHandler);
    }
  });
  document.addEventListener("htmx:sseError", function (event) {
    var source = event.detail.elt || event.target;
    if (source && source.setAttribute) source.setAttribute("data-live-state", "down");
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

  // Small screens: the navigation collapses behind a "Menu" button (without this script it simply stays open).
  var header = document.querySelector(".site-header");
  var toggle = header && header.querySelector(".nav-toggle");
  if (toggle) {
    header.classList.add("nav-ready");
    toggle.addEventListener("click", function () {
      var open = header.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && header.classList.contains("nav-open")) {
        header.classList.remove("nav-open");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
  }

  // First visit: store the browser's time zone as the user's (once; they can change it on their profile page).
  var guessUrl = document.body.getAttribute("data-time-zone-guess");
  var browserZone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (guessUrl && browserZone && window.fetch) {
    var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["x-csrftoken"];
    fetch(guessUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRFToken": csrf, "Content-Type": "application/x-www-form-urlencoded"},
      body: "time_zone=" + encodeURIComponent(browserZone)
    }).then(function (response) {
      if (response.status === 204) document.body.removeAttribute("data-time-zone-guess");
    });
  }

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
