/* 知库 web pages: the only script besides vendored htmx. No inline scripts anywhere (CSP script-src 'self'). */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Fallback for http:// on a LAN host: a temporary textarea and execCommand.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy") ? resolve() : reject(new Error("copy failed")); }
      catch (err) { reject(err); }
      finally { document.body.removeChild(area); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (button) {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target) { return; }
      var original = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", original);
      copyText(target.textContent.trim()).then(function () {
        button.textContent = "已复制";
        button.classList.add("copied");
      }, function () {
        button.textContent = "复制失败，请手动选择";
      }).finally(function () {
        window.setTimeout(function () { button.textContent = original; button.classList.remove("copied"); }, 2000);
      });
      return;
    }
    var back = event.target.closest("a[data-back]");
    if (back && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });

  // After htmx swaps in an error message, move focus there so keyboard and screen-reader users notice.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail && event.detail.target && event.detail.target.id === "messages") {
      event.detail.target.setAttribute("tabindex", "-1");
      event.detail.target.focus();
    }
  });
})();
