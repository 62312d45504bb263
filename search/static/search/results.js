/* The numbered passages under the answer: title linking to the passage in its document, page and
 * headings, and the server's highlights (HTML-escaped fragments with the query's words in <mark>). */
import { el, passageMeta } from "./dom.js";

const parser = new DOMParser();

export function resultsRender(list, passages) {
  list.replaceChildren(
    ...passages.map((passage) => {
      const meta = passageMeta(passage);
      return el("li", { class: "result", id: "result-" + passage.n, "data-chunk-id": String(passage.chunk_id) }, [
        el("h3", { class: "result__title" }, [
          el("span", { class: "result__n", text: "[" + passage.n + "] " }),
          el("a", { href: passage.url, text: passage.title }),
        ]),
        meta ? el("p", { class: "meta", text: meta }) : null,
        snippet(passage),
      ]);
    })
  );
}

/* The highlights when the full-text search matched the passage; else its text, clamped by CSS. */
function snippet(passage) {
  if (!passage.highlights.length) return el("p", { class: "snippet snippet--clamped", text: passage.text });
  const node = el("p", { class: "snippet" });
  passage.highlights.forEach((fragment, index) => {
    if (index) node.append(" … ");
    highlightAppend(node, fragment);
  });
  return node;
}

/* Only the text and the <mark>s of a fragment are taken: the browser decodes the escaping, and nothing
 * of it is inserted as HTML. */
function highlightAppend(parent, fragment) {
  for (const node of parser.parseFromString(fragment, "text/html").body.childNodes) {
    parent.append(node.nodeName === "MARK" ? el("mark", { class: "hit", text: node.textContent }) : node.textContent);
  }
}
