/* Citable search page: asks /api/ask, reads the server-sent events as they arrive, renders the answer
 * with clickable [n] citations, the passages list with highlighted snippets, and opens a cited passage
 * (with its neighbours) in place. Plain DOM, no framework, no build step; text is always inserted as
 * text (never innerHTML) because answers and passages are untrusted. */
(function () {
  "use strict";

  const form = document.getElementById("ask-form");
  if (!form) return;

  const input = document.getElementById("question");
  const select = document.getElementById("collection");
  const askButton = document.getElementById("ask-button");
  const statusEl = document.getElementById("status");
  const messageEl = document.getElementById("message");
  const noCollectionsEl = document.getElementById("no-collections");
  const answerSection = document.getElementById("answer-section");
  const answerEl = document.getElementById("answer");
  const resultsSection = document.getElementById("results-section");
  const resultsEl = document.getElementById("results");
  const panel = document.getElementById("passage-panel");
  const panelTitle = document.getElementById("passage-title");
  const panelMeta = document.getElementById("passage-meta");
  const panelBody = document.getElementById("passage-body");
  const panelLink = document.getElementById("passage-link");
  const panelClose = document.getElementById("passage-close");

  const ASK_URL = form.dataset.askUrl;
  const CHUNK_URL = form.dataset.chunkUrl;
  const DOCUMENT_URL = form.dataset.documentUrl;

  const STOPWORDS = new Set(
    ("a an and are as at be but by can could did do does for from had has have how i if in into is it its " +
      "me my of on or our should so than that the their them then there these they this to was we were what " +
      "when where which who whom why will with would you your about after before between does doing not no")
      .split(" ")
  );

  const MESSAGES = {
    "not-found": ["Nothing found.", "No passage in the selected collections matches this question. Try other words or another collection."],
    "not-allowed": ["You are not allowed to search here.", "Your account cannot read the selected collection. Ask an administrator for access."],
    "provider-down": ["The answer service is unavailable.", "The language model provider did not respond. Please try again in a moment."],
    "signed-out": ["Your session has ended.", "Sign in again to keep searching."],
    "rate-limited": ["Too many questions at once.", "Please wait a few seconds and ask again."],
    "invalid": ["This question cannot be asked.", ""],
    "error": ["Something went wrong.", "The answer could not be produced."],
  };

  let state = freshState();

  function freshState() {
    return {
      controller: null, passages: [], citations: new Map(), text: "", terms: [], lastTrigger: null, openKey: null,
      failed: false, finished: false, notFound: false,
    };
  }

  // ---- small DOM helpers --------------------------------------------------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function fill(url, values) {
    return url.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(values[key]));
  }

  function csrfToken() {
    const field = form.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function setStatus(text) {
    statusEl.textContent = text;
  }

  function showMessage(kind, detail) {
    const [title, defaultText] = MESSAGES[kind] || MESSAGES.error;
    messageEl.replaceChildren(
      el("p", {}, [el("strong", { text: title })]),
      ...[detail || defaultText].filter(Boolean).map((text) => el("p", { text }))
    );
    if (kind === "signed-out") {
      const next = window.location.pathname + window.location.search;
      messageEl.append(el("p", {}, [el("a", { href: "/login/?next=" + encodeURIComponent(next), text: "Sign in" })]));
    }
    messageEl.className = "message message--" + (kind === "not-found" ? "info" : kind === "not-allowed" ? "warning" : "error");
    messageEl.dataset.kind = kind;
    messageEl.hidden = false;
  }

  function clearMessage() {
    messageEl.hidden = true;
    messageEl.replaceChildren();
    delete messageEl.dataset.kind;
  }

  function setBusy(busy) {
    answerEl.setAttribute("aria-busy", busy ? "true" : "false");
    askButton.disabled = false; // a new question may always replace the running one
    form.classList.toggle("is-busy", busy);
  }

  // ---- highlighting ---------------------------------------------------------------------------------
  function queryTerms(question) {
    const words = question.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
    const terms = new Set();
    for (const word of words) {
      if (STOPWORDS.has(word) || (word.length < 3 && !/^\p{N}+$/u.test(word))) continue;
      // A crude stem so "embeddings" also marks "embedding" and "embedded".
      terms.add(word.length > 5 ? word.replace(/(ings|ing|ies|es|ed|s)$/u, "") : word);
    }
    return [...terms].sort((a, b) => b.length - a.length);
  }

  function termsPattern(terms) {
    if (!terms.length) return null;
    const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return new RegExp("(?<![\\p{L}\\p{N}])(?:" + escaped.join("|") + ")[\\p{L}\\p{N}]*", "giu");
  }

  /* Appends `text` to `parent`, wrapping each word that matches the question in <mark>. */
  function appendHighlighted(parent, text, terms) {
    const pattern = termsPattern(terms);
    if (!pattern) {
      parent.append(document.createTextNode(text));
      return;
    }
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
      parent.append(el("mark", { class: "hit", text: match[0] }));
      last = match.index + match[0].length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  /* Source line wrapping is not meaning: single newlines become spaces unless the next line starts a
   * heading or a list item; blank lines (paragraphs) stay. */
  function reflow(text) {
    return (text || "").replace(/([^\n])\n(?![\n#>*\-+|]|\s*\d+[.)]\s)/g, "$1 ");
  }

  function unescapeHtml(text) {
    return text.replace(/&(amp|lt|gt|quot|#x27|#39);/g, (_, name) =>
      ({ amp: "&", lt: "<", gt: ">", quot: '"', "#x27": "'", "#39": "'" })[name]);
  }

  /* Server highlights are HTML-escaped fragments with <mark>…</mark> markers: split on the markers and
   * unescape the text between them, never parse it as HTML. */
  function appendMarked(parent, text) {
    const parts = text.split(/<\/?mark>/i).map(unescapeHtml);
    parts.forEach((part, index) => {
      if (!part) return;
      parent.append(index % 2 === 1 ? el("mark", { class: "hit", text: part }) : document.createTextNode(part));
    });
  }

  function snippetOf(text, terms, size) {
    const clean = (text || "").replace(/\s+/g, " ").trim();
    if (clean.length <= size) return clean;
    const pattern = termsPattern(terms);
    const match = pattern ? pattern.exec(clean) : null;
    let start = match ? Math.max(0, match.index - Math.floor(size / 3)) : 0;
    if (start > 0) {
      const space = clean.indexOf(" ", start);
      start = space > 0 && space - start < 20 ? space + 1 : start;
    }
    const end = Math.min(clean.length, start + size);
    return (start > 0 ? "… " : "") + clean.slice(start, end).trim() + (end < clean.length ? " …" : "");
  }

  // ---- data shapes --------------------------------------------------------------------------------
  function passageList(data) {
    if (Array.isArray(data)) return data;
    return data.passages || data.sources || data.results || [];
  }

  function citationList(data) {
    if (Array.isArray(data)) return data;
    return data.citations || [];
  }

  /* The source numbered n: the citation if the server sent one, else the n-th passage of `sources`. */
  function sourceFor(n) {
    if (state.citations.has(n)) return state.citations.get(n);
    const passage = state.passages[n - 1];
    return passage ? Object.assign({ n }, passage) : null;
  }

  function documentHref(source) {
    return fill(DOCUMENT_URL, { document_id: source.document_id }) +
      "?chunk=" + encodeURIComponent(source.chunk_id) + "#chunk-" + encodeURIComponent(source.chunk_id);
  }

  function pageLabel(source) {
    return source.page ? "page " + source.page : "";
  }

  // ---- rendering ----------------------------------------------------------------------------------
  function renderAnswer() {
    const fragment = document.createDocumentFragment();
    const marker = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
    let last = 0;
    for (const match of state.text.matchAll(marker)) {
      if (match.index > last) fragment.append(document.createTextNode(state.text.slice(last, match.index)));
      const numbers = match[1].split(",").map((s) => parseInt(s.trim(), 10));
      for (const n of numbers) {
        const source = sourceFor(n);
        if (!source) continue; // an unknown number is dropped, never invented
        const label = "Source " + n + ": " + (source.title || "passage") + (source.page ? ", page " + source.page : "");
        fragment.append(
          el("button", {
            type: "button", class: "cite", "data-n": String(n), "aria-label": label, title: label,
            "aria-controls": "passage-panel", "aria-expanded": state.openKey === n ? "true" : "false",
            text: "[" + n + "]",
          })
        );
      }
      last = match.index + match[0].length;
    }
    // A marker cut in half by streaming ("[1") waits for the next delta before showing.
    const tail = state.text.slice(last);
    const partial = tail.match(/\[[\d,\s]*$/);
    fragment.append(document.createTextNode(partial ? tail.slice(0, partial.index) : tail));
    const focusedN = document.activeElement && document.activeElement.classList.contains("cite")
      ? document.activeElement.dataset.n : null;
    answerEl.replaceChildren(fragment);
    if (focusedN) {
      const again = answerEl.querySelector('.cite[data-n="' + focusedN + '"]');
      if (again) again.focus();
    }
  }

  function renderResults() {
    resultsEl.replaceChildren();
    state.passages.forEach((passage, index) => {
      const n = index + 1;
      const title = el("h3", { class: "result__title" }, [
        el("span", { class: "result__n", text: "[" + n + "] " }),
        el("a", { href: documentHref(passage), text: passage.title || "Untitled document" }),
      ]);
      const metaParts = [pageLabel(passage), (passage.metadata && passage.metadata.heading_path) || passage.heading_path || ""]
        .filter(Boolean);
      const snippet = el("p", { class: "snippet" });
      const highlights = passage.highlights;
      const serverMarked = typeof highlights === "string" ? highlights
        : Array.isArray(highlights) && highlights.length && typeof highlights[0] === "string" &&
          /<mark>/i.test(highlights.join(" ")) ? highlights.join(" … ") : null;
      if (serverMarked) appendMarked(snippet, serverMarked);
      else appendHighlighted(snippet, snippetOf(passage.text, state.terms, 320), state.terms);
      resultsEl.append(
        el("li", { class: "result", id: "result-" + n, "data-chunk-id": String(passage.chunk_id) }, [
          title,
          metaParts.length ? el("p", { class: "meta", text: metaParts.join(" · ") }) : null,
          snippet,
        ])
      );
    });
    resultsSection.hidden = state.passages.length === 0;
  }

  // ---- the cited passage, in place ----------------------------------------------------------------
  function neighbourParts(data, source) {
    const main = data.passage || data.chunk || data.target || null;
    const before = data.before || (data.neighbours && data.neighbours.before) || (data.neighbors && data.neighbors.before);
    const after = data.after || (data.neighbours && data.neighbours.after) || (data.neighbors && data.neighbors.after);
    if (main && (before || after)) return { before: before || [], main, after: after || [], document: data.document };
    // A flat, ordered list with the cited passage somewhere inside it.
    const list = Array.isArray(data) ? data : data.passages || data.chunks || data.neighbours || data.neighbors;
    if (Array.isArray(list)) {
      const id = String(source.chunk_id);
      const at = list.findIndex((p) => p.cited || p.is_target || String(p.chunk_id || p.id) === id);
      if (at >= 0) return { before: list.slice(0, at), main: list[at], after: list.slice(at + 1), document: data.document };
    }
    return { before: [], main: main || data, after: [], document: data.document };
  }

  async function openPassage(n, trigger) {
    const source = sourceFor(n);
    if (!source) return;
    state.lastTrigger = trigger || null;
    state.openKey = n;
    answerEl.querySelectorAll(".cite").forEach((b) => b.setAttribute("aria-expanded", b.dataset.n === String(n) ? "true" : "false"));
    panelTitle.textContent = "[" + n + "] " + (source.title || "Passage");
    panelMeta.textContent = [pageLabel(source), "loading the passage…"].filter(Boolean).join(" · ");
    panelBody.replaceChildren();
    panelLink.href = documentHref(source);
    panel.hidden = false;
    panel.dataset.chunkId = String(source.chunk_id);
    panel.focus();
    let data;
    try {
      const response = await fetch(fill(CHUNK_URL, { document_id: source.document_id, chunk_id: source.chunk_id }), {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) throw new Error(response.status === 404 || response.status === 403
        ? "This passage is no longer available to you." : "The passage could not be loaded.");
      data = await response.json();
    } catch (error) {
      if (state.openKey !== n) return;
      panelMeta.textContent = pageLabel(source);
      // Without the neighbours the snippet still shows what was cited.
      const fallback = el("p", { class: "passage-text passage-text--cited" });
      appendHighlighted(fallback, source.snippet || source.text || "", state.terms);
      panelBody.replaceChildren(el("p", { class: "field-error", text: error.message }), fallback);
      return;
    }
    if (state.openKey !== n) return; // another citation was opened meanwhile
    const parts = neighbourParts(data, source);
    const title = (parts.document && parts.document.title) || parts.main.title || source.title;
    const page = parts.main.page || source.page;
    panelTitle.textContent = "[" + n + "] " + (title || "Passage");
    panelMeta.textContent = [page ? "page " + page : "", parts.main.heading_path || ""].filter(Boolean).join(" · ");
    const body = [];
    for (const p of parts.before) body.push(el("p", { class: "passage-text passage-text--context", text: reflow(p.text) }));
    const cited = el("mark", { class: "passage-text passage-text--cited", "data-chunk-id": String(source.chunk_id) });
    appendHighlighted(cited, reflow(parts.main.text || source.snippet || ""), state.terms);
    body.push(el("div", { class: "cited-wrap" }, [el("span", { class: "visually-hidden", text: "Cited passage: " }), cited]));
    for (const p of parts.after) body.push(el("p", { class: "passage-text passage-text--context", text: reflow(p.text) }));
    panelBody.replaceChildren(...body);
    cited.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function closePassage() {
    if (panel.hidden) return;
    panel.hidden = true;
    const n = state.openKey;
    state.openKey = null;
    answerEl.querySelectorAll(".cite").forEach((b) => b.setAttribute("aria-expanded", "false"));
    let target = state.lastTrigger && state.lastTrigger.isConnected ? state.lastTrigger : null;
    if (!target && n !== null) target = answerEl.querySelector('.cite[data-n="' + n + '"]');
    if (target) target.focus();
  }

  answerEl.addEventListener("click", (event) => {
    const button = event.target.closest(".cite");
    if (!button) return;
    const n = parseInt(button.dataset.n, 10);
    if (state.openKey === n && !panel.hidden) closePassage();
    else openPassage(n, button);
  });
  panelClose.addEventListener("click", closePassage);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      event.preventDefault();
      closePassage();
    }
  });

  // ---- asking -------------------------------------------------------------------------------------
  async function errorMessage(response) {
    try {
      const body = await response.json();
      const error = body.error || body;
      return { code: error.code || "", message: error.message || error.detail || "" };
    } catch (_) {
      return { code: "", message: "" };
    }
  }

  async function handleHttpError(response) {
    const { code, message } = await errorMessage(response);
    if (response.status === 401) showMessage("signed-out");
    else if (response.status === 403) showMessage("not-allowed", message && !/permission|credentials/i.test(message) ? message : "");
    else if (response.status === 429) showMessage("rate-limited");
    else if (response.status >= 500) showMessage("provider-down");
    else if (response.status === 400) showMessage("invalid", message || "Please check the question.");
    else showMessage("error", message || code || "HTTP " + response.status);
    setStatus("");
  }

  function handleEvent(name, data) {
    switch (name) {
      case "sources":
        state.passages = passageList(data);
        renderResults();
        setStatus(state.passages.length ? "Found " + state.passages.length + " passages; writing the answer…" : "");
        break;
      case "delta":
        state.text += (data && (data.text ?? data.delta)) || "";
        // Counted so tests (and curious people in devtools) can see the answer arrived in pieces.
        answerEl.dataset.deltas = String(Number(answerEl.dataset.deltas || 0) + 1);
        answerSection.hidden = false;
        renderAnswer();
        break;
      case "citations":
        state.citations = new Map(citationList(data).map((c) => [Number(c.n), c]));
        renderAnswer();
        break;
      case "error": {
        const code = (data && data.code) || "";
        if (/forbidden|permission|not_allowed/i.test(code)) showMessage("not-allowed");
        else if (/rate/i.test(code)) showMessage("rate-limited");
        else showMessage("provider-down");
        state.failed = true;
        break;
      }
      case "done":
        state.finished = true;
        if (data && data.found === false) state.notFound = true;
        break;
      default:
        break; // usage and future events need no rendering
    }
  }

  function parseFrame(frame) {
    let name = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch (_) {
      payload = { text: data.join("\n") };
    }
    return [name, payload];
  }

  async function readStream(response, controller) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (controller.signal.aborted) return;
      if (value) buffer += decoder.decode(value, { stream: true });
      buffer = buffer.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) handleEvent(event[0], event[1]);
      }
      if (done) break;
    }
    if (buffer.trim()) {
      const event = parseFrame(buffer);
      if (event) handleEvent(event[0], event[1]);
    }
  }

  function reset() {
    if (state.controller) state.controller.abort();
    state = freshState();
    clearMessage();
    if (!panel.hidden) panel.hidden = true;
    answerEl.replaceChildren();
    answerEl.dataset.deltas = "0";
    answerSection.hidden = true;
    resultsEl.replaceChildren();
    resultsSection.hidden = true;
    delete form.dataset.state;
  }

  async function ask() {
    const question = input.value.trim();
    if (!question) {
      input.focus();
      return;
    }
    reset();
    if (noCollectionsEl) {
      // Nothing is readable: say so rather than answer "nothing found" from an empty knowledge base.
      showMessage("not-allowed", "Your account cannot read any collection yet. Ask an administrator for access.");
      form.dataset.state = "message";
      return;
    }
    const controller = new AbortController();
    state.controller = controller;
    state.terms = queryTerms(question);
    form.dataset.state = "asking";
    setBusy(true);
    setStatus("Searching…");

    const params = new URLSearchParams({ q: question });
    if (select.value) params.set("collection", select.value);
    history.replaceState(null, "", "?" + params.toString());

    const body = { question };
    if (select.value) body.collections = [select.value];
    try {
      const response = await fetch(ASK_URL, {
        method: "POST",
        credentials: "same-origin",
        signal: controller.signal,
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRFToken": csrfToken(),
          "X-Requested-With": "fetch",
        },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        await handleHttpError(response);
      } else {
        await readStream(response, controller);
        if (controller.signal.aborted) return;
        if (!state.failed && (state.notFound || state.passages.length === 0)) showMessage("not-found");
        setStatus(state.failed ? "" : state.passages.length ? "Answer complete." : "");
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      // A connection dropped mid-stream keeps what arrived and says the rest failed.
      showMessage("provider-down", "The connection was interrupted before the answer was complete.");
      setStatus("");
    } finally {
      if (state.controller === controller) {
        setBusy(false);
        form.dataset.state = messageEl.hidden ? "done" : "message";
      }
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });

  // The question in the address bar (after a reload or a shared link) is asked again.
  const initial = new URLSearchParams(window.location.search);
  if (initial.get("collection") && select.querySelector('option[value="' + CSS.escape(initial.get("collection")) + '"]')) {
    select.value = initial.get("collection");
  }
  if (initial.get("q")) {
    input.value = initial.get("q");
    ask();
  }
  if (noCollectionsEl) noCollectionsEl.setAttribute("role", "note");
})();
