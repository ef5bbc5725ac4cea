/* Sigma Playground: progressive enhancement, under the CSP (a file from 'self', no inline code).
 *
 * 1. Forms marked data-inplace (favorite, unfavorite, follow, unfollow) post the same form with fetch and
 *    swap in the new button; without JavaScript, or if the request fails, the form posts as before.
 * 2. Links marked data-load-more fetch the next keyset page as an HTML fragment and append it (see
 *    loadMore below); without JavaScript they are the plain next-page link.
 */
(function () {
  "use strict";
  var status = document.getElementById("live-status");

  function announce(text) {
    if (!status || !text) return;
    status.textContent = "";
    setTimeout(function () { status.textContent = text; }, 50);
  }

  function plural(n, word) {
    return n.toLocaleString("en-US") + " " + word + (n === 1 ? "" : "s");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-inplace]") || !window.fetch || !window.FormData) return;
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (data) {
      var holder = document.createElement("div");
      holder.innerHTML = data.html;  // our own template's output
      var replacement = holder.querySelector("form");
      if (!replacement) throw new Error("no form");
      form.replaceWith(replacement);
      var next = replacement.querySelector("button");
      if (next) next.focus();
      if (typeof data.count === "number") {
        var id = replacement.action.match(/\/workbooks\/(\d+)\//);
        if (id) {
          document.querySelectorAll('[data-favorite-count="' + id[1] + '"]').forEach(function (el) {
            el.textContent = "★ " + plural(data.count, "favorite");
          });
        }
      }
      announce(data.message);
    }).catch(function () {
      form.submit();  // the plain POST: the server answers with a redirect as without JavaScript
    });
  });

  // --- "Load more" ------------------------------------------------------------------------------------
  // The list is the element just before nav.pagination (a <ul> of cards or people). Each load fetches the
  // next page's URL with ?fragment=1 (the page's cached fragment, or the whole page for uncached lists),
  // appends its items, swaps in its pagination, puts the page's URL in the address bar (a reload or a
  // shared link lands on that page; Back reloads the page before) and moves focus to the first new item.
  // At most MAX_ITEMS stay in the DOM: the oldest loaded pages are released, and an "Earlier" link at the
  // top leads back to the first page still shown.
  var MAX_ITEMS = 100;

  function listOf(nav) {
    var list = nav && nav.previousElementSibling;
    return list && list.tagName === "UL" ? list : null;
  }

  function fragmentUrl(href) {
    var url = new URL(href, location.href);
    url.searchParams.set("fragment", "1");
    return url.toString();
  }

  // ``anchor`` (the first new item) stays where it is on the screen. Measured rather than computed from the
  // height removed: browsers with scroll anchoring already keep it in place, others do not, and a grid
  // reflows when a page does not fill whole rows.
  function release(list, anchor) {
    var items = list.children;
    if (items.length <= MAX_ITEMS) return;
    var top = anchor.getBoundingClientRect().top;
    while (items.length > MAX_ITEMS) {
      var page = items[0].getAttribute("data-page-url");
      while (items.length && items[0].getAttribute("data-page-url") === page) list.removeChild(items[0]);
    }
    var earlier = list.previousElementSibling;
    if (!earlier || !earlier.classList.contains("load-earlier")) {
      earlier = document.createElement("p");
      earlier.className = "load-earlier";
      earlier.appendChild(document.createElement("a"));
      list.parentNode.insertBefore(earlier, list);
    }
    earlier.firstChild.href = items[0].getAttribute("data-page-url");
    earlier.firstChild.textContent = "↑ Earlier results";
    window.scrollBy(0, anchor.getBoundingClientRect().top - top);
  }

  function prepare(nav) {
    var link = nav && nav.querySelector("a[data-load-more]");
    var list = listOf(nav);
    if (!link || !list || !window.fetch || !window.DOMParser) return;
    Array.prototype.forEach.call(list.children, function (li) {
      if (!li.hasAttribute("data-page-url")) li.setAttribute("data-page-url", location.href);
    });
    link.textContent = "Load more";
    link.setAttribute("role", "button");
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-load-more]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || !window.fetch) return;
    var nav = link.closest("nav.pagination");
    var list = listOf(nav);
    if (!list) return;
    event.preventDefault();
    if (link.getAttribute("aria-busy") === "true") return;
    link.setAttribute("aria-busy", "true");
    var href = link.href;
    fetch(fragmentUrl(href), { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var newNav = doc.querySelector("nav.pagination");
      var newList = listOf(newNav) || doc.querySelector("ul.card-grid, ul.people-list, ul.people-grid");
      if (!newList) throw new Error("no list");
      var first = null;
      Array.prototype.slice.call(newList.children).forEach(function (li) {
        li.setAttribute("data-page-url", href);
        list.appendChild(document.adoptNode(li));
        first = first || li;
      });
      if (newNav) {
        var adopted = document.adoptNode(newNav);
        nav.replaceWith(adopted);
        prepare(adopted);
      } else {
        nav.remove();
      }
      history.pushState({ loadMore: true }, "", href);
      shownSearch = location.search;
      var target = first && first.querySelector("a:not([tabindex='-1'])");
      if (target) target.focus();
      announce("More results loaded.");
      if (first) release(list, first);
    }).catch(function () {
      location.href = href;  // the plain next page
    });
  });

  // Back and Forward between loaded pages: show that page as the server renders it. Only a change of the
  // query string (the cursor) reloads; moving to #main (the skip link) does not.
  var shownSearch = location.search;
  window.addEventListener("popstate", function () {
    if (location.search !== shownSearch) location.reload();
  });
  prepare(document.querySelector("nav.pagination"));
})();
