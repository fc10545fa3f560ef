// The entry point the DATA path calls; the extractor lives in reply-text/ (index.ts).
export { extractReply, type Forwarded, type ReplyInput, type ReplyText } from './reply-text/index.js';
