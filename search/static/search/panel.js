/* A cited passage opened in place, between its neighbours. The server renders that part
 * (search/page_views.py passage_context: reflowed, the question's words marked); this module fetches
 * it, shows it, and hands the focus back to the citation when it closes. */
import { el, passageMeta, urlFill } from "./dom.js";

const parser = new DOMParser();

export function passagePanelCreate({ panel, urlTemplate, onToggle }) {
  const title = panel.querySelector("#passage-title");
  const meta = panel.querySelector("#passage-meta");
  const body = panel.querySelector("#passage-body");
  const link = panel.querySelector("#passage-link");
  let openN = null;
  let trigger = null;

  async function open(passage, query, opener) {
    openN = passage.n;
    trigger = opener;
    onToggle(openN);
    title.textContent = "[" + passage.n + "] " + passage.title;
    meta.textContent = [passageMeta(passage), "loading the passage…"].filter(Boolean).join(" · ");
    body.replaceChildren();
    link.href = passage.url;
    panel.dataset.chunkId = String(passage.chunk_id);
    panel.hidden = false;
    panel.focus();
    let nodes;
    try {
      const url = urlFill(urlTemplate, passage) + "?" + new URLSearchParams({ q: query });
      const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) {
        throw new Error(response.status === 404 ? "This passage is no longer available to you."
          : response.status === 401 ? "Your session has ended: sign in again to open passages."
          : "The passage could not be loaded.");
      }
      nodes = parser.parseFromString(await response.text(), "text/html").body.childNodes;
    } catch (error) {
      if (openN !== passage.n) return;
      // What the search returned still shows what was cited.
      nodes = [el("p", { class: "field-error", text: error.message }), el("p", { class: "passage-text--fallback", text: passage.text })];
    }
    if (openN !== passage.n) return; // another citation was opened meanwhile
    meta.textContent = passageMeta(passage);
    body.replaceChildren(...nodes);
    const cited = body.querySelector(".passage-text--cited");
    if (cited) cited.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    openN = null;
    onToggle(null);
    if (trigger && trigger.isConnected) trigger.focus();
  }

  return {
    open, close,
    isOpen: (n) => !panel.hidden && openN === n,
    reset() { panel.hidden = true; openN = null; trigger = null; },
  };
}
