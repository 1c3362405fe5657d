/**
 * `Content-Disposition: attachment` for a file's name, as RFC 6266 says: an
 * ASCII `filename` for old clients, and `filename*` (RFC 8187, UTF-8,
 * percent-encoded) with the name as it is. A header value must be Latin-1
 * (Node's server refuses anything else), so a name in Cyrillic, CJK or emoji
 * goes only in `filename*`.
 *
 * Written here rather than taken from npm: the `content-disposition` package
 * is CommonJS with a Node dependency, and this is its one case we need.
 *
 * @module
 */

/** The header's value for an attachment named `filename`. */
export function attachment(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  if (ascii === filename) return `attachment; filename="${filename}"`;
  return `attachment; filename="${ascii}"; filename*=UTF-8''${rfc8187(filename)}`;
}

/** Percent-encodes all but RFC 8187's attr-chars. */
function rfc8187(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
