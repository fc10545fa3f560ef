// The one tag table: how each element lays out as text (block, paragraph, void), which ones take
// their content with them, and which ones the stored HTML keeps with which attributes. Read by
// tree.ts (parsing), sanitize.ts (the stored HTML), text.ts (text layout) and the reply rules.

export interface TagRole {
  /** Starts and ends a line of text. */
  block?: true;
  /** Leaves a blank line before and after (a paragraph, a heading, a table). */
  paragraph?: true;
  /** Has no content and no end tag. */
  void?: true;
  /** Its content is not text a reader sees: dropped with the element. */
  hidden?: true;
  /** Kept in the stored HTML, with these attributes (anything else is unwrapped: its text stays). */
  keep?: readonly string[];
}

const ALL: Record<string, TagRole> = {
  // text-level elements kept in the stored HTML
  a: { keep: ['href'] },
  b: { keep: [] },
  i: { keep: [] },
  u: { keep: [] },
  s: { keep: [] },
  strong: { keep: [] },
  em: { keep: [] },
  small: { keep: [] },
  sub: { keep: [] },
  sup: { keep: [] },
  span: { keep: [] },
  code: { keep: [] },
  br: { void: true, keep: [] },
  img: { void: true, keep: ['src', 'alt', 'width', 'height'] },
  // blocks kept in the stored HTML
  p: { block: true, paragraph: true, keep: [] },
  div: { block: true, keep: [] },
  blockquote: { block: true, keep: [] },
  pre: { block: true, keep: [] },
  ul: { block: true, keep: [] },
  ol: { block: true, keep: [] },
  li: { block: true, keep: [] },
  hr: { block: true, void: true, keep: [] },
  table: { block: true, paragraph: true, keep: [] },
  caption: { block: true, keep: [] },
  thead: { block: true, keep: [] },
  tbody: { block: true, keep: [] },
  tfoot: { block: true, keep: [] },
  tr: { block: true, keep: [] },
  td: { keep: ['colspan', 'rowspan'] },
  th: { keep: ['colspan', 'rowspan'] },
  h1: { block: true, paragraph: true, keep: [] },
  h2: { block: true, paragraph: true, keep: [] },
  h3: { block: true, paragraph: true, keep: [] },
  h4: { block: true, paragraph: true, keep: [] },
  h5: { block: true, paragraph: true, keep: [] },
  h6: { block: true, paragraph: true, keep: [] },
  // blocks whose text is kept but whose markup is not
  address: { block: true },
  article: { block: true },
  aside: { block: true },
  center: { block: true },
  dd: { block: true },
  details: { block: true },
  dir: { block: true },
  dl: { block: true },
  dt: { block: true },
  fieldset: { block: true },
  figcaption: { block: true },
  figure: { block: true },
  footer: { block: true },
  form: { block: true },
  header: { block: true },
  main: { block: true },
  menu: { block: true },
  nav: { block: true },
  section: { block: true },
  summary: { block: true },
  // void elements that are not kept
  area: { void: true },
  base: { void: true },
  col: { void: true },
  embed: { void: true, hidden: true },
  input: { void: true },
  link: { void: true },
  meta: { void: true },
  param: { void: true },
  source: { void: true },
  track: { void: true },
  wbr: { void: true },
  // content that is code, metadata or an embedded document, not text
  script: { hidden: true },
  style: { hidden: true },
  head: { hidden: true },
  title: { hidden: true },
  template: { hidden: true },
  xml: { hidden: true },
  noscript: { hidden: true },
  textarea: { hidden: true },
  select: { hidden: true },
  option: { hidden: true },
  iframe: { hidden: true },
  frame: { hidden: true },
  frameset: { hidden: true },
  object: { hidden: true },
  applet: { hidden: true },
  noembed: { hidden: true },
  noframes: { hidden: true },
};

const NONE: TagRole = {};
const TABLE = new Map(Object.entries(ALL));

export function tagRole(name: string): TagRole {
  return TABLE.get(name) ?? NONE;
}
