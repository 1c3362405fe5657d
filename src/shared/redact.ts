/**
 * What logs may say of secrets: a URL without its user info or query (where
 * upstream passwords and webhook tokens live), and an API key only as the
 * owner it stands for (a hash of it), never a prefix of the key itself.
 *
 * @module
 */

/**
 * `url` with its user info and its query replaced by `…`. Text that is not a
 * URL (a target's description, say) comes back as it is, but for anything
 * that looks like user info or a query.
 */
export function redactUrl(url: string): string {
  if (!URL.canParse(url)) return url.replace(/\/\/[^/@\s]*@/g, "//…@").replace(/\?\S*/g, "?…");
  const parsed = new URL(url);
  const auth = parsed.username || parsed.password ? "…@" : "";
  const query = parsed.search ? "?…" : "";
  return `${parsed.protocol}//${auth}${parsed.host}${parsed.pathname}${query}`;
}
