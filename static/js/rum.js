/* Real-user monitoring. Loaded with `defer` from base.html (no inline script: the CSP allows 'self' only).
 * Measures this page view's Web Vitals (LCP, INP, CLS) and navigation timings (TTFB, DOMContentLoaded, load,
 * all in ms from the start of navigation), counts clicks and form submits on elements carrying data-rum
 * (their data-rum name only, never page text), and sends one beacon when the page is hidden.
 * data-route on this script tag is the page's URL name; data-endpoint is where the beacon goes. */
(function () {
  "use strict";
  var script = document.currentScript;
  var route = script && script.getAttribute("data-route");
  var endpoint = script && script.getAttribute("data-endpoint");
  if (!route || !endpoint || !navigator.sendBeacon || !window.PerformanceObserver) return;

  var MAX_MS = 120000;
  var NAME = /^[a-z][a-z0-9_-]{0,31}$/;
  var metrics = {};
  var clicks = {};
  var submits = {};
  var sent = false;
  var observers = [];

  function observe(type, onEntry, options) {
    try {
      var observer = new PerformanceObserver(function (list) {
        list.getEntries().forEach(onEntry);
      });
      var init = { type: type, buffered: true };
      for (var key in options || {}) init[key] = options[key];
      observer.observe(init);
      observers.push([observer, onEntry]);
      return true;
    } catch (e) {
      return false; // this browser doesn't support the entry type: report nothing rather than a zero
    }
  }

  // LCP: the last candidate before the user first interacts.
  var lcpFinal = false;
  observe("largest-contentful-paint", function (entry) {
    if (!lcpFinal) metrics.lcp = entry.startTime;
  });

  // CLS: the largest session window of unexpected shifts (less than 1 s apart, at most 5 s long).
  var cls = 0, win = 0, winStart = 0, winLast = 0;
  var hasCls = observe("layout-shift", function (entry) {
    if (entry.hadRecentInput) return;
    if (win && entry.startTime - winLast < 1000 && entry.startTime - winStart < 5000) {
      win += entry.value;
    } else {
      win = entry.value;
      winStart = entry.startTime;
    }
    winLast = entry.startTime;
    if (win > cls) cls = win;
  });

  // INP (it replaced FID as a Core Web Vital in March 2024): the longest interaction, skipping one per 50
  // interactions as web-vitals does. first-input catches a first interaction shorter than the threshold.
  var longest = {};
  function onInteraction(entry) {
    if (!entry.interactionId) return;
    var known = longest[entry.interactionId];
    if (known === undefined || entry.duration > known) longest[entry.interactionId] = entry.duration;
  }
  observe("event", onInteraction, { durationThreshold: 16 });
  observe("first-input", onInteraction);

  function inp() {
    var all = Object.keys(longest).map(function (id) { return longest[id]; });
    all.sort(function (a, b) { return b - a; });
    return all.length ? all[Math.min(all.length - 1, Math.floor(all.length / 50))] : undefined;
  }

  function count(event, into, forms) {
    var el = event.target && event.target.closest ? event.target.closest("[data-rum]") : null;
    if (!el || (el.tagName === "FORM") !== forms) return;
    var name = el.getAttribute("data-rum");
    if (NAME.test(name)) into[name] = Math.min(100, (into[name] || 0) + 1);
  }
  function interacted() { lcpFinal = true; }
  addEventListener("keydown", interacted, true);
  addEventListener("pointerdown", interacted, true);
  document.addEventListener("click", function (e) { count(e, clicks, false); }, true);
  document.addEventListener("submit", function (e) { count(e, submits, true); }, true);

  function send() {
    if (sent) return;
    sent = true;
    // Entries not yet delivered to the callbacks (an interaction just before leaving the page).
    observers.forEach(function (pair) { pair[0].takeRecords().forEach(pair[1]); });
    var nav = performance.getEntriesByType("navigation")[0];
    if (nav) {
      metrics.ttfb = nav.responseStart;
      metrics.dcl = nav.domContentLoadedEventEnd;
      metrics.load = nav.loadEventEnd;
    }
    var slowest = inp();
    if (slowest !== undefined) metrics.inp = slowest;
    var out = {};
    for (var name in metrics) {
      var ms = metrics[name];
      if (ms > 0 && ms <= MAX_MS) out[name] = Math.round(ms * 10) / 10;
    }
    if (hasCls) out.cls = Math.round(Math.min(cls, 10) * 10000) / 10000;
    var body = { route: route, metrics: out };
    if (Object.keys(clicks).length) body.clicks = clicks;
    if (Object.keys(submits).length) body.submits = submits;
    navigator.sendBeacon(endpoint, JSON.stringify(body));
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") send();
  });
  addEventListener("pagehide", send);
})();
