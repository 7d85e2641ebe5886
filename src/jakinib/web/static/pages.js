// Behaviour for the pages, kept out of the HTML so the Content-Security-Policy can forbid inline script.
document.querySelectorAll("select[data-autosubmit]").forEach((el) => el.addEventListener("change", () => el.form.submit()));
document.querySelectorAll("[data-print]").forEach((el) => el.addEventListener("click", () => window.print()));
