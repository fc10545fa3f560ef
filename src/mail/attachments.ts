// The attachment rows of one message, from mailparser's attachments: a safe file name, hash,
// Content-ID and whether the HTML shows it inline; and the count and size limits. Pure.
import crypto from 'node:crypto';
import type { Attachment } from 'mailparser';
import type { AttachmentRow } from '../db/queries.js';

export type { AttachmentRow };

const MAX_FILENAME_LENGTH = 255;
const MAX_CONTENT_ID_LENGTH = 998;
// C0 and C1 controls, and the bidirectional overrides that make "exe.pdf" of "fdp.exe".
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const CID_LINK = /\bcid:([^'"\s<>()]{1,998})/gi;

/**
 * `html` is the message's HTML as the parser left it (with keepCidLinks): an attachment is inline
 * when that HTML links to its Content-ID. Without `html`, mailparser's `related` (a Content-ID
 * inside multipart/related) decides. `Content-Disposition: inline` alone does not: Apple Mail
 * and iOS send ordinary attachments that way, and a view that hid them would lose them.
 */
export function attachmentRows(attachments: Attachment[], html?: string | null): AttachmentRow[] {
  if (!attachments.length) return []; // the HTML's links are only read for attachments to match
  const linked = html === undefined || html === null ? null : cidLinks(html);
  return attachments.map((a) => {
    const content = Buffer.isBuffer(a.content) ? a.content : Buffer.alloc(0);
    const contentId = cleanContentId(a.cid ?? a.contentId);
    return {
      filename: cleanFilename(a.filename),
      contentType: (a.contentType || 'application/octet-stream').toLowerCase(),
      size: content.length,
      sha256: crypto.createHash('sha256').update(content).digest(),
      contentId,
      inline: contentId !== null && (linked ? linked.has(contentId) : a.related === true),
      content,
    };
  });
}

export function checkAttachmentLimits(
  rows: AttachmentRow[],
  limits: { maxCount: number; maxTotalBytes: number },
): { ok: true } | { ok: false; reason: string } {
  if (rows.length > limits.maxCount)
    return { ok: false, reason: `${rows.length} attachments, more than the limit of ${limits.maxCount}` };
  const total = rows.reduce((sum, r) => sum + r.size, 0);
  if (total > limits.maxTotalBytes)
    return {
      ok: false,
      reason: `attachments of ${total} bytes in total, more than the limit of ${limits.maxTotalBytes} bytes`,
    };
  return { ok: true };
}

/** The last path component, without control characters; null when nothing is left of it. */
export function cleanFilename(name: string | null | undefined): string | null {
  if (!name) return null;
  const base = name.replace(UNSAFE_CHARACTERS, '').split(/[/\\]/).pop()!.trim();
  if (base === '' || base === '.' || base === '..') return null;
  const chars = Array.from(base);
  if (chars.length <= MAX_FILENAME_LENGTH) return base;
  // Too long to be a name anyone typed: keep its start and its extension.
  const dot = base.lastIndexOf('.');
  const extension = dot > 0 && base.length - dot <= 16 ? base.slice(dot) : '';
  return chars.slice(0, MAX_FILENAME_LENGTH - extension.length).join('') + extension;
}

function cleanContentId(value: string | undefined): string | null {
  if (!value) return null;
  const id = value.replace(UNSAFE_CHARACTERS, '').trim().replace(/^<|>$/g, '').trim();
  return id === '' ? null : id.slice(0, MAX_CONTENT_ID_LENGTH);
}

/** Content-IDs the HTML links to, as written and URL-decoded (RFC 2392 cid: URLs are %-encoded). */
function cidLinks(html: string): Set<string> {
  const ids = new Set<string>();
  for (const m of html.matchAll(CID_LINK)) {
    const raw = m[1]!;
    ids.add(raw);
    try {
      ids.add(decodeURIComponent(raw));
    } catch {
      // a stray "%" is no encoding: the id as written is all there is
    }
  }
  return ids;
}
