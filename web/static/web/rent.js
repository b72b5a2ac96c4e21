// Cabinet page: show the server's total as soon as a compartment and the hours are chosen.
(function () {
  var form = document.getElementById("rent-form");
  if (!form || !window.fetch) return;
  var total = document.getElementById("total"), billed = document.getElementById("billed");
  var quoteButton = document.getElementById("quote-button");
  if (quoteButton) quoteButton.hidden = true;
  var latest = 0;  // answers can arrive out of order: only the newest question's answer is shown
  function update() {
    var asked = ++latest;
    var picked = form.querySelector("input[name=compartment]:checked");
    var hours = form.querySelector("input[name=hours]");
    if (!picked || !hours || !hours.value) { total.textContent = "–"; return; }
    var url = form.dataset.quoteUrl + "?compartment=" + encodeURIComponent(picked.value) +
      "&hours=" + encodeURIComponent(hours.value);
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (q) {
        if (asked !== latest) return;
        if (q.error) { total.textContent = q.error.message; billed.textContent = ""; return; }
        total.textContent = "¥" + q.total;
        billed.textContent = q.billed_hours !== q.hours ? "(" + q.billed_hours + " h billed)" : "";
      })
      .catch(function () { if (asked === latest) total.textContent = "–"; });
  }
  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
})();
