// pilothouse console: small progressive enhancements; every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Filter selects apply as soon as they change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }

  // The time-range picker: a preset applies at once; "custom" shows its from/to fields.
  for (const select of document.querySelectorAll("select[data-range]")) {
    const custom = select.form.querySelectorAll("[data-custom-range]");
    const show = () => {
      for (const field of custom) {
        field.hidden = select.value !== "custom";
      }
    };
    show();
    select.addEventListener("change", () => {
      show();
      if (select.value !== "custom") {
        select.form.requestSubmit();
      }
    });
  }

  // A span name in the waterfall opens that span's attributes below it.
  const openSpan = (hash) => {
    const target = hash && document.getElementById(decodeURIComponent(hash.slice(1)));
    if (target instanceof HTMLDetailsElement) {
      target.open = true;
    }
  };
  for (const link of document.querySelectorAll("a[data-open-span]")) {
    link.addEventListener("click", () => openSpan(link.hash));
  }
  openSpan(window.location.hash);
});
