// Keeps /register/done's "Your welcome email" up to date (backend/web/registered_page.py):
// fetches the page again, every 2 s and then less often, and swaps in its new
// #mail-status section, until that says the state is final. A file, not an inline script,
// so that the page's Content-Security-Policy needs no 'unsafe-inline'. Without
// JavaScript, the page's "Check again" link does the same by hand.
"use strict";
(() => {
  const section = document.getElementById("mail-status");
  if (!section || section.dataset.final === "true") return;
  let delay = 2000;
  const poll = async () => {
    try {
      const response = await fetch(window.location.pathname, {
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("mail-status");
        if (!fresh) return;
        if (fresh.innerHTML !== section.innerHTML) {
          section.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
        }
        section.dataset.final = fresh.dataset.final;
        if (fresh.dataset.final === "true") return;
      }
    } catch (error) {
      // Offline for a moment: the next try may get through.
    }
    delay = Math.min(delay * 1.5, 30000);
    window.setTimeout(poll, delay);
  };
  window.setTimeout(poll, delay);
})();
