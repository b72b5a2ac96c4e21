// "Copy" next to a long number (order, refund, payment): puts the whole number on the clipboard.
// Works without the async Clipboard API too (plain http on a phone): a hidden textarea and execCommand.
(function () {
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(text); });
    }
    return fallback(text);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    event.preventDefault();
    var label = button.textContent;
    copy(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
      button.classList.add("done");
    }, function () {
      button.textContent = "Select and copy";
    }).then(function () {
      setTimeout(function () { button.textContent = label; button.classList.remove("done"); }, 1800);
    });
  });
})();
