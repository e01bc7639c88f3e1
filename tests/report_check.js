window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth;
  const widths = [...document.images].map(i => i.naturalWidth);
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > vw + 0.5 && !el.closest('.scroll, pre')) {
      wide.push(`${el.tagName}.${el.className} right=${Math.round(r.right)}`);
    }
  }
  const verdict = document.getElementById('verdict');
  const table = document.querySelector('table');
  const first = !!verdict && (!table ||
    !!(verdict.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING));
  const toc = [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href').slice(1));
  const out = {viewport: vw, page_width: document.documentElement.scrollWidth,
               images: widths.length, undecoded: widths.filter(w => !(w > 0)).length,
               wide: wide, verdict_first: first, toc: toc,
               missing: toc.filter(id => !document.getElementById(id)),
               errors: window.__errors};
  const pre = document.createElement('pre');
  pre.id = 'dejavu-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
