// a11y-focus.js describes the focused element for TestBrowserAccessibility:
// its index among the page's focusable elements in document order (-1 when
// nothing is focused), their count, and whether its focus ring is visible
// (2.4.7): an outline at least 2px wide whose colour contrasts 3:1 with the
// page behind it.
(() => {
  const visible = (el) => {
    const s = getComputedStyle(el);
    return s.visibility !== "hidden" && s.display !== "none" && el.getClientRects().length > 0;
  };
  const list = [...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea")]
    .filter((el) => !el.disabled && visible(el));
  const el = document.activeElement;
  const out = {index: list.indexOf(el), count: list.length, ring: false, what: el ? el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + (el.textContent || "").trim().slice(0, 30) : ""};
  if (out.index < 0) return out;
  const parse = (s) => {
    const m = /rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+))?\s*\)/.exec(s || "");
    return m ? [+m[1], +m[2], +m[3], m[4] === undefined ? 1 : +m[4]] : null;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  let bg = null;
  for (let e = el.parentElement; e && !bg; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] === 1) bg = c;
  }
  bg = bg || (matchMedia("(prefers-color-scheme: dark)").matches ? [18, 18, 18, 1] : [255, 255, 255, 1]);
  const s = getComputedStyle(el), oc = parse(s.outlineColor);
  const x = lum(oc || bg), y = lum(bg);
  out.contrast = (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  out.ring = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2 && out.contrast >= 3;
  return out;
})()
