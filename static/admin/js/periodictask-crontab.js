// django-celery-beat's periodic task form: shows the chosen crontab in words under the
// field. Upstream ships this as an inline <script>; served from here it runs under
// script-src 'self' (see templates/admin/djcelery/change_periodictask_form.html).
(function () {
  "use strict";
  const script = document.currentScript;
  const $ = django.jQuery;
  const readableCrontabs = JSON.parse($("#readable-crontabs").text());
  const originalCrontabHelp = script.dataset.crontabHelp || "";

  function updateCrontabHelp(additional) {
    const help = $(".field-crontab .help");
    help.text(originalCrontabHelp);
    help.append("<br>", document.createTextNode("Translation: " + additional));
  }

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    updateCrontabHelp(readableCrontabs[$("#id_crontab").val()]);
  });
})();
