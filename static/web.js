// Reader pages: a form's hidden time zone field takes the browser's IANA zone, so a
// reader in reader-time mode gets the issue at the local hour without being asked.
document.addEventListener("DOMContentLoaded", function () {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  document.querySelectorAll("input[data-browser-timezone]").forEach(function (field) {
    if (!field.value) field.value = zone;
  });
});
