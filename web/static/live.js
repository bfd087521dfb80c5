/* 知库: the live conversation panel. Cards arrive as server-sent events (HTML rendered and escaped by the
   server) and replace the live card list; EventSource reconnects by itself and the server starts every
   connection with the current cards, so nothing is lost. No inline scripts (CSP script-src 'self'). */
(function () {
  "use strict";
  function connect(panel) {
    var source = new EventSource(panel.getAttribute("data-stream"));
    source.addEventListener("cards", function (event) {
      var target = document.getElementById("live-cards");
      if (!target) { return; }
      target.innerHTML = event.data;
      if (window.htmx) { window.htmx.process(target); }
      target.setAttribute("data-updated", String(Date.now()));
    });
  }
  document.querySelectorAll("[data-stream]").forEach(connect);
  // Clear the typed turn after it was sent.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail && event.detail.elt;
    if (form && form.id === "utterance-form" && event.detail.successful) {
      form.querySelector("#utterance").value = "";
      form.querySelector("#utterance").focus();
    }
  });
})();
