/* Document viewer: bring the cited passage (?chunk=ID) into view and give it focus for screen readers. */
const cited = document.querySelector(".passage--cited");
if (cited) {
  cited.scrollIntoView({ block: "center" });
  cited.focus({ preventScroll: true });
}
