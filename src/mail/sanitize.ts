// The stored HTML and text from HTML, as the DATA path calls them. The work lives in html/: one
// tree (tree.ts), one tag table (tags.ts), the allow-list (sanitize.ts) and the layout (text.ts).
export { sanitizeHtml } from './html/sanitize.js';
export { htmlToText } from './html/text.js';
export { MAX_HTML_ATTRIBUTES, MAX_HTML_ELEMENTS, MAX_HTML_LENGTH, MAX_HTML_NESTING } from './html/tree.js';
