/* The answer as it streams in: its text, with every [n] marker a button that opens passage n.
 *
 * The server sends markers whole and valid: it holds back a marker split across deltas, drops numbers
 * with no passage and writes the rest as "[1]" or "[1, 2]" (search/citations.py). So each delta is
 * rendered on its own and appended; nothing already shown is redrawn (a focused citation keeps focus). */
import { el } from "./dom.js";

// Linear on any text: every repetition starts with ", ", so a failed match backtracks through its own
// run once and never tries another split of it.
const MARKER = /\[(\d+(?:, \d+)*)\]/g;

/* Appends one delta's text to `container`; `passages` maps n to the numbered passage it cites. */
export function answerAppend(container, text, passages) {
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const numbers = match[1].split(", ").map(Number);
    if (!numbers.every((n) => passages.has(n))) continue; // not a citation: stays plain text
    container.append(text.slice(last, match.index), ...numbers.map((n) => citeButton(n, passages.get(n))));
    last = match.index + match[0].length;
  }
  container.append(text.slice(last));
}

function citeButton(n, passage) {
  const label = "Source " + n + ": " + passage.title + (passage.page ? ", page " + passage.page : "");
  return el("button", {
    type: "button", class: "cite", "data-n": String(n), "aria-label": label, title: label,
    "aria-controls": "passage-panel", "aria-expanded": "false", text: "[" + n + "]",
  });
}
