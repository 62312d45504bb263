/* The answer as it streams in: its text, with every [n] marker a button that opens passage n.
 *
 * The server sends markers whole and valid: it holds back a marker split across deltas, drops numbers
 * with no passage and writes the rest as "[1]" or "[1, 2]" (search/citations.py). So each delta is
 * rendered on its own and appended; nothing already shown is redrawn (a focused citation keeps focus). */
import { el } from "./dom.js";

// Linear on any text: every repetition starts with ", ", so a failed match backtracks through its own
// run once and never tries another split of it.
const MARKER = /\[(\d+(?:, \d+)*)\]/g;

/* Appends one delta's text to `container`; `passages` maps n to the numbered passage it cites. Each
 * button carries its marker's place in the answer (data-marker, counted across deltas), which is how
 * the citation check names it. */
export function answerAppend(container, text, passages) {
  let last = 0;
  let marker = Number(container.dataset.markers || 0);
  for (const match of text.matchAll(MARKER)) {
    const numbers = match[1].split(", ").map(Number);
    if (!numbers.every((n) => passages.has(n))) continue; // not a citation: stays plain text
    container.append(text.slice(last, match.index), ...numbers.map((n) => citeButton(n, passages.get(n), marker)));
    marker += 1;
    last = match.index + match[0].length;
  }
  container.dataset.markers = String(marker);
  container.append(text.slice(last));
}

/* The citation check's verdicts (search/citation_check.py): a citation whose passage does not support
 * its sentence is marked and says so; one the server dropped from the answer is removed. Returns how
 * many were flagged. */
export function answerChecksApply(container, checks) {
  let flagged = 0;
  for (const check of checks) {
    if (check.supported) continue;
    const button = container.querySelector('.cite[data-marker="' + check.marker + '"][data-n="' + check.n + '"]');
    if (!button) continue;
    if (check.dropped) {
      button.remove();
      continue;
    }
    flagged += 1;
    const note = " (may not support this sentence: score " + check.score.toFixed(2) + ")";
    button.classList.add("cite--unsupported");
    button.dataset.supported = "false";
    button.setAttribute("aria-label", button.getAttribute("aria-label") + note);
    button.title = button.title + note;
  }
  return flagged;
}

function citeButton(n, passage, marker) {
  const label = "Source " + n + ": " + passage.title + (passage.page ? ", page " + passage.page : "");
  return el("button", {
    type: "button", class: "cite", "data-n": String(n), "data-marker": String(marker), "aria-label": label,
    title: label, "aria-controls": "passage-panel", "aria-expanded": "false", text: "[" + n + "]",
  });
}
