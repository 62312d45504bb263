/* Thumbs up or down on the answer (POST /api/feedback with the `query_id` of the `done` event), then an
 * optional comment and the passage the person expected; sending again changes the same feedback. */
import { el } from "./dom.js";

export function feedbackCreate({ root, url, csrfToken }) {
  const up = root.querySelector("[data-rating='up']");
  const down = root.querySelector("[data-rating='down']");
  const more = root.querySelector(".feedback__more");
  const comment = root.querySelector("textarea");
  const expected = root.querySelector("select");
  const send = root.querySelector(".feedback__send");
  const status = root.querySelector(".feedback__status");
  let queryId = null;
  let rating = null;

  async function post() {
    const body = { query_id: queryId, rating, comment: comment.value.trim() };
    if (expected.value) body.expected_chunk_id = Number(expected.value);
    status.textContent = "Sending…";
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify(body),
      });
      status.textContent = response.ok ? "Thank you: your feedback is saved." : "Your feedback could not be saved.";
      root.dataset.saved = String(response.ok);
    } catch (_) {
      status.textContent = "Your feedback could not be saved.";
      root.dataset.saved = "false";
    }
  }

  function choose(value) {
    rating = value;
    up.setAttribute("aria-pressed", String(value === "up"));
    down.setAttribute("aria-pressed", String(value === "down"));
    more.hidden = false;
    post();
  }
  up.addEventListener("click", () => choose("up"));
  down.addEventListener("click", () => choose("down"));
  send.addEventListener("click", () => rating && post());

  return {
    /* Offer feedback on the answer just finished; `passages` are the numbered passages it was given. */
    offer(id, passages) {
      queryId = id;
      rating = null;
      root.hidden = id === null || id === undefined;
      more.hidden = true;
      comment.value = "";
      status.textContent = "";
      delete root.dataset.saved;
      up.setAttribute("aria-pressed", "false");
      down.setAttribute("aria-pressed", "false");
      expected.replaceChildren(
        el("option", { value: "", text: "None of these / not sure" }),
        ...passages.map((p) => el("option", { value: String(p.chunk_id), text: "[" + p.n + "] " + p.title }))
      );
    },
    hide() {
      root.hidden = true;
      queryId = null;
    },
  };
}
