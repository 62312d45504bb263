/* Small DOM helpers shared by the page's modules. Text always goes in as text (never innerHTML):
 * answers and passages are untrusted. */

/* An element with attributes ("class", "text" or any attribute name) and children (nodes or strings). */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/* "/documents/{document_id}" with {document_id: 7} → "/documents/7". */
export function urlFill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(values[key]));
}

/* "page 3 · Setup › Keys" from a passage's page and heading path (either may be empty). */
export function passageMeta(passage) {
  return [passage.page ? "page " + passage.page : "", passage.heading_path].filter(Boolean).join(" · ");
}
