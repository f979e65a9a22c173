/**
 * Generated blocks in Markdown: the text between `<!-- report:NAME -->` and
 * `<!-- /report:NAME -->` belongs to `npm run report`; everything else is hand-written.
 */

const OPEN = /<!-- report:([\w-]+) -->/g;

/** Names of the blocks in a text, in order. */
export function blockNames(text: string): string[] {
  return [...text.matchAll(OPEN)].map((m) => m[1]!);
}

/**
 * `text` with every block's content replaced by `blocks[name]` (a block named in the text but
 * not in `blocks` is an error: a marker nobody fills would silently keep stale figures).
 */
export function fillBlocks(text: string, blocks: Record<string, string>, file = 'text'): string {
  let out = text;
  for (const name of blockNames(text)) {
    const body = blocks[name];
    if (body === undefined) throw new Error(`${file}: no generator for <!-- report:${name} -->`);
    const open = `<!-- report:${name} -->`;
    const close = `<!-- /report:${name} -->`;
    const a = out.indexOf(open);
    const b = out.indexOf(close, a);
    if (b < 0) throw new Error(`${file}: <!-- report:${name} --> has no ${close}`);
    out = `${out.slice(0, a + open.length)}\n${body.trimEnd()}\n${out.slice(b)}`;
  }
  return out;
}
