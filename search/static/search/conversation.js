/* The conversation the page asks in: created on the first question (POST /api/conversations), continued
 * by sending `conversation_id` with each /api/ask, and its earlier turns shown above the current answer
 * (GET /api/conversations/{id}). Payloads as the API schema documents them (ConversationDetail). */
import { el } from "./dom.js";

const MARKER = /\[(\d+(?:, \d+)*)\]/g;

async function jsonFetch(url, options, csrfToken) {
  const response = await fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken },
  });
  if (!response.ok) throw Object.assign(new Error("HTTP " + response.status), { status: response.status });
  return response.status === 204 ? null : response.json();
}

export function conversationsCreate({ url, csrfToken }) {
  return {
    create: (collections) =>
      jsonFetch(url, { method: "POST", body: JSON.stringify(collections.length ? { collections } : {}) }, csrfToken),
    load: (id) => jsonFetch(url + "/" + encodeURIComponent(id), { method: "GET" }, csrfToken),
    list: () => jsonFetch(url + "?limit=20", { method: "GET" }, csrfToken),
  };
}

/* One earlier turn: the question, how it was searched when rewritten, and the answer as plain text with
 * its [n] markers linking to the cited passages' documents. */
export function turnRender(turn) {
  const byN = new Map((turn.citations || []).map((c) => [c.n, c]));
  const answer = el("p", { class: "turn__answer" });
  let last = 0;
  for (const match of (turn.answer || "").matchAll(MARKER)) {
    answer.append(turn.answer.slice(last, match.index));
    match[1].split(", ").map(Number).forEach((n, index) => {
      const citation = byN.get(n);
      if (index) answer.append(" ");
      answer.append(citation ? el("a", { href: citation.url, title: citation.title, text: "[" + n + "]" }) : "[" + n + "]");
    });
    last = match.index + match[0].length;
  }
  answer.append((turn.answer || "").slice(last));
  return el("li", { class: "turn", "data-turn-id": turn.id ? String(turn.id) : null }, [
    el("p", { class: "turn__question", text: turn.question }),
    rewriteNote(turn.rewrite_method, turn.search_query),
    turn.error ? el("p", { class: "turn__error", text: "This question was not answered." }) : answer,
  ]);
}

/* "Searched for …" when a follow-up was rewritten, so people see what was actually looked up. */
export function rewriteNote(method, query) {
  if (!method || method === "none") return null;
  const how = method === "model" ? "rewritten by the model" : "with the earlier question's words";
  return el("p", { class: "rewrite meta" }, ["Searched for ", el("q", { text: query }), " (" + how + ")"]);
}

/* The list of the person's conversations, each a link that opens it on this page. */
export function conversationListRender(list, conversations) {
  list.replaceChildren(
    ...conversations.map((c) =>
      el("li", {}, [el("a", { href: "?c=" + encodeURIComponent(c.id), text: c.title || "Untitled conversation" })])
    )
  );
  if (!conversations.length) list.append(el("li", { class: "meta", text: "No conversations yet." }));
}
