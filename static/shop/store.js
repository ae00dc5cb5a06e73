/* Affinity storefront: small progressive enhancements; every page works without this. */
(function () {
  "use strict";
  // On a phone the filters start folded (unless some are in use), so products come first.
  var narrow = window.matchMedia && window.matchMedia("(max-width: 899px)").matches;
  if (narrow) {
    document.querySelectorAll("details.filters[data-fold-on-phone]").forEach(function (box) {
      box.open = false;
    });
  }
})();
