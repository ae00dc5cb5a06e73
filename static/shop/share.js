// Share buttons of the product page: copy the link, or the device's own share sheet
// (Web Share API) where there is one. No third-party script; the platform links are
// plain links.
(function () {
  "use strict";
  function say(root, text) {
    var status = root.querySelector(".share-status");
    if (status) { status.textContent = text; }
  }
  function init(root) {
    var copy = root.querySelector("[data-share-copy]");
    if (copy) {
      copy.addEventListener("click", function () {
        var input = document.getElementById(copy.getAttribute("data-share-copy"));
        var url = input.value;
        function fallback() {
          input.focus();
          input.select();
          var ok = false;
          try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
          say(root, ok ? "Link copied." : "Press Ctrl+C to copy the link.");
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(url).then(function () { say(root, "Link copied."); }, fallback);
        } else {
          fallback();
        }
      });
    }
    var native = root.querySelector("[data-share-native]");
    if (native && navigator.share) {
      native.hidden = false;
      native.addEventListener("click", function () {
        navigator.share({ title: native.getAttribute("data-title"), url: native.getAttribute("data-url") })
          .catch(function () { /* the shopper closed the sheet */ });
      });
    }
  }
  document.querySelectorAll(".share").forEach(init);
})();
