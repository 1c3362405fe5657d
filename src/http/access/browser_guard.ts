/**
 * Without API keys the server trusts whoever reaches it, so it must not be
 * reachable from a web page: a page can point a name it controls at
 * 127.0.0.1 (DNS rebinding) and read the answers, or post a form across
 * sites. Two checks close that:
 * - the request's host must be one the server is known by (loopback names,
 *   the bound address, `--allowed-hosts`);
 * - a request that changes state (not GET, HEAD or OPTIONS) must not come from
 *   another site: no `Sec-Fetch-Site` other than `same-origin` or `none`, and
 *   an `Origin`, when sent, naming this very host.
 * SDKs and command-line clients send neither header and are not affected.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { RequestError } from "../request_error.ts";

/** Which hosts a keyless server answers: names (no port); `*` for any. */
export interface BrowserGuardOptions {
  allowedHosts: readonly string[] | "*";
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|::1)$/i;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The middleware; refusals are `forbidden` request errors. */
export function browserGuard(options: BrowserGuardOptions): MiddlewareHandler {
  const allowed = options.allowedHosts === "*" ? null : new Set(options.allowedHosts.map((host) => bare(host)));
  return async (c, next) => {
    const url = new URL(c.req.url);
    const host = bare(url.hostname);
    if (allowed && !LOOPBACK.test(host) && !allowed.has(host)) {
      throw new RequestError(
        "forbidden",
        `This server does not answer to the host ${JSON.stringify(host)} without API keys; ` +
          `name it with --allowed-hosts if clients use it.`,
      );
    }
    if (!SAFE_METHODS.has(c.req.method)) {
      const site = c.req.header("sec-fetch-site");
      const origin = c.req.header("origin");
      if ((site && site !== "same-origin" && site !== "none") || (origin !== undefined && !sameHost(origin, url))) {
        throw new RequestError("forbidden", "Requests from another site may not change anything on a server without API keys.");
      }
    }
    await next();
  };
}

/** A host name without brackets, lower case. */
function bare(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
}

function sameHost(origin: string, url: URL): boolean {
  if (!URL.canParse(origin)) return false;
  return new URL(origin).host === url.host;
}
