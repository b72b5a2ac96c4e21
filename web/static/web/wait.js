// Waiting page: poll the order status; after a few seconds without news ask the server to sync
// with the gateway (the notification may be late). No build step, no library.
(function () {
  var box = document.getElementById("wait");
  if (!box || !window.fetch) return;
  var form = document.getElementById("sync-form");
  var token = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var label = document.getElementById("wait-status");
  var syncAfter = (parseInt(box.dataset.syncAfter, 10) || 5) * 1000;
  var started = Date.now(), lastSync = 0;
  function done(data) {
    if (data && data.done) { window.location.assign(data.result_url); return true; }
    return false;
  }
  function tick() {
    var now = Date.now();
    var request;
    if (now - started >= syncAfter && now - lastSync >= 10000) {
      lastSync = now;
      label.textContent = "Checking with the payment gateway…";
      request = fetch(box.dataset.syncUrl, {method: "POST", credentials: "same-origin",
        headers: {"X-CSRFToken": token, "Accept": "application/json"}});
    } else {
      request = fetch(box.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}});
    }
    request.then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }  // signed out: the page asks to sign in
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (!done(data)) setTimeout(tick, 2000); })
      .catch(function () { setTimeout(tick, 4000); });
  }
  setTimeout(tick, 1500);
})();
