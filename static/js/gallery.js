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
})();
