// The extractor's entry point for a body (text and/or HTML); it lives in reply-text/ (index.ts). The
// text and reply of a whole parsed message, as the pipeline and the CLI take them, are message.ts's.
export { extractReply, type Forwarded, type ReplyInput, type ReplyText } from './reply-text/index.js';
