// a11y-focus.js describes the focused element for TestBrowserAccessibility:
// its index among the page's focusable elements in document order (-1 when
// nothing is focused), their count, and whether its focus ring is visible
// (2.4.7): an outline at least 2px wide whose colour contrasts 3:1 with the
// page behind it. It runs after a11y-lib.js.
const list = focusable();
const el = document.activeElement;
const out = {index: list.indexOf(el), count: list.length, ring: false, contrast: 0,
  what: el ? el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + (el.textContent || "").trim().slice(0, 30) : ""};
if (out.index < 0) return out;
const s = getComputedStyle(el), bg = background(el.parentElement), oc = parse(s.outlineColor);
out.contrast = oc ? ratio(blend(oc, bg), bg) : 0;
out.ring = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2 && out.contrast >= 3;
return out;
