/* Suanwang jobs: open the collapsed submit form when its button (or #submit in the address) asks for it. */
(function () {
  "use strict";

  function openPanel(id) {
    var panel = document.getElementById(id);
    if (panel && panel.tagName === "DETAILS") {
      panel.open = true;
      var first = panel.querySelector("select, input:not([type=hidden])");
      if (first) first.focus({ preventScroll: true });
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-fd-open]");
    if (link) openPanel(link.getAttribute("data-fd-open"));
  });

  // The page head's "Submit a job" button is only needed while the form is folded away.
  document.addEventListener("toggle", function (event) {
    var panel = event.target;
    if (!panel.id) return;
    document.querySelectorAll('[data-fd-open="' + panel.id + '"]').forEach(function (button) {
      button.hidden = panel.open;
    });
  }, true);

  if (window.location.hash === "#submit") {
    document.addEventListener("DOMContentLoaded", function () { openPanel("submit"); });
  }
})();
