// a11y-audit.js lists the accessibility problems of the current page that a
// script can measure (WCAG 2.2 level AA): contrast of text (1.4.3), of
// placeholders, of control boundaries and focus rings (1.4.11); names of
// controls (4.1.2); target sizes (2.5.8); language, title, headings and
// landmarks (3.1.1, 2.4.2, 1.3.1); positive tabindex (2.4.3); sideways
// scrolling at a phone's width (1.4.10). TestBrowserAccessibility runs it
// on every page in light and dark mode, after a11y-lib.js. It returns an
// array of strings, empty when the page passes.
const problems = [];
const opacity = (el) => {
  let o = 1;
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
  return o;
};
const hidden = (el) => { // visually hidden text: still read by screen readers, never seen
  const r = el.getBoundingClientRect();
  return r.width <= 1 && r.height <= 1;
};
const what = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
  (typeof el.className === "string" && el.className ? "." + el.className.trim().split(/\s+/).join(".") : "") +
  ' "' + (el.textContent || el.value || el.placeholder || "").trim().slice(0, 40) + '"';
const need = (s) => {
  const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
  return size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
};

// Text contrast, every element that holds text.
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement;
  if (!n.textContent.trim() || seen.has(el) || el.closest("script,style,noscript,title") || !visible(el) || hidden(el)) continue;
  seen.add(el);
  const s = getComputedStyle(el), bg = background(el), fg = parse(s.color);
  fg[3] *= opacity(el);
  const r = ratio(blend(fg, bg), bg);
  if (r < need(s)) problems.push(`text contrast ${r.toFixed(2)} < ${need(s)}: ${what(el)}`);
}

const controls = focusable();
for (const el of controls) {
  const s = getComputedStyle(el);
  let name = el.getAttribute("aria-label") || "";
  if (!name && el.labels) name = [...el.labels].map((l) => l.textContent).join(" ");
  if (!name && el.tagName !== "INPUT") name = el.textContent;
  if (!name.trim()) problems.push(`control without an accessible name: ${what(el)}`);
  if (el.tagName === "A") continue; // links in text are exempt from target size
  const box = el.getBoundingClientRect();
  if (box.width < 24 || box.height < 24) problems.push(`target ${box.width.toFixed(0)}x${box.height.toFixed(0)} smaller than 24x24: ${what(el)}`);
  // The control's boundary: its border or its fill, against what is around it.
  const around = background(el.parentElement);
  let best = 0;
  const fill = parse(s.backgroundColor);
  if (fill && fill[3] > 0) best = Math.max(best, ratio(blend(fill, around), around));
  const border = parse(s.borderTopColor);
  if (border && parseFloat(s.borderTopWidth) > 0) best = Math.max(best, ratio(blend(border, around), around));
  if (best < 3) problems.push(`control boundary contrast ${best.toFixed(2)} < 3: ${what(el)}`);
  if (el.placeholder) {
    const pc = parse(getComputedStyle(el, "::placeholder").color), bg = background(el);
    const r = ratio(blend(pc, bg), bg);
    if (r < 4.5) problems.push(`placeholder contrast ${r.toFixed(2)} < 4.5: ${what(el)}`);
  }
}

for (const el of document.querySelectorAll("[tabindex]")) {
  if (el.tabIndex > 0) problems.push(`positive tabindex: ${what(el)}`);
}
if (!document.documentElement.lang) problems.push("html element without lang");
if (!document.title.trim()) problems.push("empty title");
const h1 = document.querySelectorAll("h1").length;
if (h1 !== 1) problems.push(`${h1} h1 elements, want 1`);
if (!document.querySelector("main")) problems.push("no main landmark");
for (const img of document.querySelectorAll("img")) {
  if (!img.hasAttribute("alt")) problems.push("img without alt");
}
for (const th of document.querySelectorAll("th")) {
  if (!th.textContent.trim()) problems.push("empty table header cell");
}
for (const el of document.querySelectorAll("[aria-label]")) {
  if (["DIV", "SPAN", "P"].includes(el.tagName) && !el.getAttribute("role")) {
    problems.push(`aria-label on a ${el.tagName.toLowerCase()} without a role (ignored by screen readers): ${what(el)}`);
  }
}
const root = document.documentElement;
if (root.scrollWidth > root.clientWidth + 1) problems.push(`the page scrolls sideways: ${root.scrollWidth}px wide in ${root.clientWidth}px`);
return problems;
return problems;
