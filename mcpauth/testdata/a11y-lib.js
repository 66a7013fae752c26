// a11y-lib.js holds what the a11y-*.js checks share: colour parsing and
// WCAG 2.2 relative luminance and contrast ratio, and visibility. The test
// puts it and one check together in one function body.
const parse = (s) => {
  const m = /rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+)(%?))?\s*\)/.exec(s || "");
  if (!m) return null;
  let a = 1;
  if (m[4] !== undefined) a = m[5] === "%" ? parseFloat(m[4]) / 100 : parseFloat(m[4]);
  return [+m[1], +m[2], +m[3], a];
};
const blend = (fg, bg) => {
  const a = fg[3];
  return [0, 1, 2].map((i) => fg[i] * a + bg[i] * (1 - a)).concat(1);
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => {
  const x = lum(a), y = lum(b);
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
};
const visible = (el) => {
  const s = getComputedStyle(el);
  return s.visibility !== "hidden" && s.display !== "none" && el.getClientRects().length > 0;
};
// The canvas takes the root's background, or failing that the body's.
const canvas = (() => {
  let c = matchMedia("(prefers-color-scheme: dark)").matches ? [18, 18, 18, 1] : [255, 255, 255, 1];
  for (const el of [document.documentElement, document.body]) {
    const bg = parse(getComputedStyle(el).backgroundColor);
    if (bg && bg[3] > 0) return blend(bg, c);
  }
  return c;
})();
// background is the colour behind el: the canvas under every ancestor's
// background, outermost first.
const background = (el) => {
  const chain = [];
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) chain.push(e);
  let bg = canvas;
  for (let i = chain.length - 1; i >= 0; i--) {
    const c = parse(getComputedStyle(chain[i]).backgroundColor);
    if (c && c[3] > 0) bg = blend(c, bg);
  }
  return bg;
};
const focusable = () => [...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea")]
  .filter((el) => !el.disabled && visible(el));
