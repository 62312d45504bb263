/* The search page: asks POST /api/ask with "stream": true in a conversation (conversation.js: earlier
 * turns shown above, follow-ups rewritten by the server), reads the server-sent events as they arrive,
 * and shows the answer (answer.js), the numbered passages (results.js), a cited passage in place
 * (panel.js) and thumbs up/down (feedback.js). Every payload is read as the API schema documents it
 * (/api/schema/ and search.services.answer_stream): `turn`, `sources` {passages, search_query,
 * rewrite_method}, `delta` {text}, `citations` {citations, checks}, `usage`, `done` {answer, found,
 * query_id}, or `error` {code, message}; HTTP errors are {error: {code, message}}. */
import { answerAppend, answerChecksApply } from "./answer.js";
import { conversationListRender, conversationsCreate, rewriteNote, turnRender } from "./conversation.js";
import { eventsRead } from "./events.js";
import { feedbackCreate } from "./feedback.js";
import { messageClear, messageKindForCode, messageKindForStatus, messageShow } from "./messages.js";
import { passagePanelCreate } from "./panel.js";
import { resultsRender } from "./results.js";

const form = document.getElementById("ask-form");
const input = document.getElementById("question");
const select = document.getElementById("collection");
const statusEl = document.getElementById("status");
const messageEl = document.getElementById("message");
const noCollections = document.getElementById("no-collections");
const answerSection = document.getElementById("answer-section");
const answerEl = document.getElementById("answer");
const checkNote = document.getElementById("citation-check");
const resultsSection = document.getElementById("results-section");
const resultsEl = document.getElementById("results");
const rewriteEl = document.getElementById("rewrite");
const threadSection = document.getElementById("thread-section");
const threadEl = document.getElementById("thread");
const newConversationButton = document.getElementById("new-conversation");
const conversationsEl = document.getElementById("conversations");
const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
const conversations = conversationsCreate({ url: form.dataset.conversationsUrl, csrfToken });
const feedback = feedbackCreate({ root: document.getElementById("feedback"), url: form.dataset.feedbackUrl, csrfToken });
let conversationId = null;

const panel = passagePanelCreate({
  panel: document.getElementById("passage-panel"),
  urlTemplate: form.dataset.passageUrl,
  onToggle(n) {
    for (const button of answerEl.querySelectorAll(".cite")) {
      button.setAttribute("aria-expanded", String(button.dataset.n === String(n)));
    }
  },
});

let state = stateFresh();

function stateFresh() {
  return {
    controller: null, passages: new Map(), searchQuery: "", rewriteMethod: "none", found: true, finished: false,
    failed: false, question: "", text: "", citations: [], dropped: false,
  };
}

function statusSet(text) {
  statusEl.textContent = text;
}

function eventHandle({ name, data }) {
  switch (name) {
    case "sources":
      state.passages = new Map(data.passages.map((p) => [p.n, p]));
      state.searchQuery = data.search_query;
      state.rewriteMethod = data.rewrite_method || "none";
      rewriteEl.replaceChildren(...[rewriteNote(state.rewriteMethod, state.searchQuery)].filter(Boolean));
      resultsRender(resultsEl, data.passages);
      resultsSection.hidden = data.passages.length === 0;
      statusSet(data.passages.length ? "Found " + data.passages.length + " passages; writing the answer…" : "");
      break;
    case "delta":
      state.text += data.text;
      answerAppend(answerEl, data.text, state.passages);
      // Counted so tests (and curious people in devtools) can see the answer arrived in pieces.
      answerEl.dataset.deltas = String(Number(answerEl.dataset.deltas) + 1);
      answerSection.hidden = false;
      break;
    case "citations": {
      state.citations = data.citations;
      const checks = data.checks || [];
      state.dropped = checks.some((check) => check.dropped);
      const flagged = answerChecksApply(answerEl, checks);
      checkNote.textContent = flagged
        ? flagged + (flagged === 1 ? " citation" : " citations") + " may not support the sentence citing it (marked)."
        : "";
      checkNote.hidden = !flagged;
      break;
    }
    case "done":
      state.finished = true;
      state.found = data.found;
      if (state.dropped) {
        // Unsupported citations were dropped: show (and keep in the thread) the final text.
        state.text = data.answer;
        answerEl.replaceChildren();
        answerEl.dataset.markers = "0";
        answerAppend(answerEl, data.answer, state.passages);
      }
      feedback.offer(data.query_id, [...state.passages.values()]);
      break;
    case "error":
      state.failed = true;
      messageShow(messageEl, messageKindForCode(data.code));
      break;
    default:
      break; // turn and usage: nothing to show
  }
}

/* The finished answer moves up into the thread before the next question replaces it. */
function turnArchive() {
  if (!state.finished || !state.question) return;
  threadEl.append(turnRender({
    question: state.question, answer: state.text, citations: state.citations,
    rewrite_method: state.rewriteMethod, search_query: state.searchQuery,
  }));
  threadSection.hidden = false;
}

function reset() {
  if (state.controller) state.controller.abort();
  turnArchive();
  state = stateFresh();
  feedback.hide();
  rewriteEl.replaceChildren();
  messageClear(messageEl);
  panel.reset();
  answerEl.replaceChildren();
  answerEl.dataset.deltas = "0";
  answerEl.dataset.markers = "0";
  checkNote.textContent = "";
  checkNote.hidden = true;
  answerSection.hidden = true;
  resultsEl.replaceChildren();
  resultsSection.hidden = true;
  delete form.dataset.state;
}

async function httpErrorShow(response) {
  let message = "";
  try {
    message = (await response.json()).error.message;
  } catch (_) {
    // A proxy's error page is not the API's JSON: the status alone decides the message.
  }
  const kind = messageKindForStatus(response.status);
  messageShow(messageEl, kind, kind === "invalid" || kind === "error" ? message : "");
}

async function ask() {
  const question = input.value.trim();
  if (!question) {
    input.focus();
    return;
  }
  reset();
  if (noCollections) {
    // Nothing is readable: say so rather than answer "nothing found" from an empty knowledge base.
    messageShow(messageEl, "not-allowed", "Your account cannot read any collection yet. Ask an administrator for access.");
    form.dataset.state = "message";
    return;
  }
  const controller = new AbortController();
  state.controller = controller;
  state.question = question;
  form.dataset.state = "asking";
  answerEl.setAttribute("aria-busy", "true");
  statusSet("Searching…");

  const body = { question, stream: true };
  if (select.value) body.collections = [select.value];
  try {
    if (conversationId === null) {
      try {
        conversationId = (await conversations.create(body.collections || [])).id;
      } catch (error) {
        // Asked on its own when the thread cannot be started; the answer matters more than the thread.
        if (!error.status) throw error;
      }
    }
    if (conversationId !== null) body.conversation_id = conversationId;
    newConversationButton.hidden = conversationId === null;
    const params = new URLSearchParams({ q: question });
    if (select.value) params.set("collection", select.value);
    if (conversationId !== null) params.set("c", String(conversationId));
    history.replaceState(null, "", "?" + params.toString());
    const response = await fetch(form.dataset.askUrl, {
      method: "POST",
      credentials: "same-origin",
      signal: controller.signal,
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json", // errors as JSON; the answer itself streams because of "stream": true
        "X-CSRFToken": csrfToken,
      },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      await httpErrorShow(response);
    } else {
      for await (const event of eventsRead(response)) eventHandle(event);
      // `done` or `error` always ends the stream: without either the connection was cut.
      if (!state.finished && !state.failed) throw new Error("stream ended early");
      if (!state.found) messageShow(messageEl, "not-found");
    }
    statusSet(state.finished && state.found ? "Answer complete." : "");
  } catch (_) {
    if (controller.signal.aborted) return;
    // A connection dropped mid-stream keeps what arrived and says the rest failed.
    messageShow(messageEl, "provider-down", "The connection was interrupted before the answer was complete.");
    statusSet("");
  } finally {
    if (state.controller === controller) {
      answerEl.setAttribute("aria-busy", "false");
      form.dataset.state = messageEl.hidden ? "done" : "message";
    }
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  ask();
});

answerEl.addEventListener("click", (event) => {
  const button = event.target.closest(".cite");
  if (!button) return;
  const n = Number(button.dataset.n);
  if (panel.isOpen(n)) panel.close();
  else panel.open(state.passages.get(n), state.searchQuery, button);
});
document.getElementById("passage-close").addEventListener("click", () => panel.close());
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !document.getElementById("passage-panel").hidden) {
    event.preventDefault();
    panel.close();
  }
});

newConversationButton.addEventListener("click", () => {
  reset();
  state = stateFresh(); // the answer on screen stays out of the new thread
  conversationId = null;
  threadEl.replaceChildren();
  threadSection.hidden = true;
  newConversationButton.hidden = true;
  history.replaceState(null, "", window.location.pathname);
  input.value = "";
  input.focus();
});

conversationsEl.addEventListener("toggle", async () => {
  if (!conversationsEl.open) return;
  const list = document.getElementById("conversation-list");
  try {
    conversationListRender(list, (await conversations.list()).results);
  } catch (_) {
    list.replaceChildren("Your conversations could not be loaded.");
  }
});

/* A conversation in the address bar (?c=): its turns, to be continued. Not yours or gone: a fresh page. */
async function conversationOpen(id) {
  try {
    const conversation = await conversations.load(id);
    conversationId = conversation.id;
    threadEl.replaceChildren(...conversation.turns.map(turnRender));
    threadSection.hidden = conversation.turns.length === 0;
    newConversationButton.hidden = false;
    return true;
  } catch (_) {
    return false;
  }
}

async function start() {
  const initial = new URLSearchParams(window.location.search);
  if ([...select.options].some((option) => option.value === initial.get("collection"))) {
    select.value = initial.get("collection");
  }
  if (initial.get("c") && (await conversationOpen(initial.get("c")))) {
    if (initial.get("q")) input.value = initial.get("q");
  } else if (initial.get("q")) {
    // The question in the address bar (a shared link) is asked again.
    input.value = initial.get("q");
    ask();
  }
  // Every handler is attached: until now Enter submitted the form natively (a page load). Tests wait for it.
  form.dataset.ready = "true";
}

start();
