/* The messages the page shows instead of (or after) an answer, and which failure maps to which. */
import { el } from "./dom.js";

const MESSAGES = {
  "not-found": ["Nothing found.", "No passage in the selected collections matches this question. Try other words or another collection."],
  "not-allowed": ["You are not allowed to search here.", "Your account cannot read the selected collection. Ask an administrator for access."],
  "provider-down": ["The answer service is unavailable.", "The language model provider did not respond. Please try again in a moment."],
  "signed-out": ["Your session has ended.", "Sign in again to keep searching."],
  "rate-limited": ["Too many questions at once.", "Please wait a few seconds and ask again."],
  "invalid": ["This question cannot be asked.", "Please check the question."],
  "error": ["Something went wrong.", "The answer could not be produced."],
};

const TONE = { "not-found": "info", "not-allowed": "warning" };

/* The message for an HTTP error of /api/ask, by status (the codes the schema documents for it). */
export function messageKindForStatus(status) {
  if (status === 400) return "invalid";
  if (status === 401) return "signed-out";
  if (status === 403) return "not-allowed";
  if (status === 429) return "rate-limited";
  if (status === 502 || status === 503 || status === 504) return "provider-down";
  return "error";
}

/* The message for a streamed `error` event, by its code (search.services.error_code). */
export function messageKindForCode(code) {
  if (code === "provider_rate_limited") return "rate-limited";
  if (code.startsWith("provider_")) return "provider-down";
  return "error";
}

export function messageShow(container, kind, detail = "") {
  const [title, defaultText] = MESSAGES[kind];
  const children = [el("p", {}, [el("strong", { text: title })]), el("p", { text: detail || defaultText })];
  if (kind === "signed-out") {
    const next = window.location.pathname + window.location.search;
    children.push(el("p", {}, [el("a", { href: "/login/?next=" + encodeURIComponent(next), text: "Sign in" })]));
  }
  container.replaceChildren(...children);
  container.className = "message message--" + (TONE[kind] || "error");
  container.dataset.kind = kind;
  container.hidden = false;
}

export function messageClear(container) {
  container.hidden = true;
  container.replaceChildren();
  delete container.dataset.kind;
}
