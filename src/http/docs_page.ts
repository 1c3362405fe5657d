/**
 * `GET /docs`: an interactive reference of `/openapi.json` (Swagger UI), served
 * with its scripts and styles from this server so it works offline.
 *
 * The page is Hono's own `@hono/swagger-ui` middleware; its assets come from
 * `swagger-ui-dist` (Swagger UI's prebuilt bundle, one dependency), chosen over
 * Scalar's bundle, whose package brings a large tree of dependencies with it.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { swaggerUI } from "@hono/swagger-ui";
import type { Env, Hono } from "hono";
import { RequestError } from "./request_error.ts";

/** The files the page loads, with their media types. */
const ASSETS: Readonly<Record<string, string>> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

/** Where the page finds its assets, relative to `/docs` so a mounted app's prefix carries over. */
const ASSET_BASE = "docs/assets";

/** Adds `GET /docs` and `GET /docs/assets/{name}` to an app. */
export function addDocsPage<E extends Env>(app: Hono<E>): void {
  // Relative URLs: the page at `<prefix>/docs` loads `<prefix>/docs/assets/…` and `<prefix>/openapi.json`.
  app.get("/docs", swaggerUI({ url: "openapi.json", baseUrl: ASSET_BASE, title: "batchspool API" }));
  app.get("/docs/assets/swagger-ui-dist/:name", async (c) => {
    const name = c.req.param("name");
    const type = ASSETS[name];
    if (type === undefined) {
      throw new RequestError("not_found", `Unknown request URL: GET ${new URL(c.req.url).pathname}.`);
    }
    const body = await readAsset(name);
    return c.body(body, 200, { "content-type": type, "cache-control": "public, max-age=86400" });
  });
}

const cache = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

/** Reads an asset once (they are a few hundred KB and never change while the process runs). */
function readAsset(name: string): Promise<Uint8Array<ArrayBuffer>> {
  let bytes = cache.get(name);
  if (bytes === undefined) {
    bytes = swaggerUiDir().then((dir) => readFile(join(dir, name))).then((b) => new Uint8Array(b));
    bytes.catch(() => cache.delete(name));
    cache.set(name, bytes);
  }
  return bytes;
}

/** The installed `swagger-ui-dist` folder, found by the package itself (on Deno it lives in the npm cache). */
async function swaggerUiDir(): Promise<string> {
  const { default: absolutePath } = await import("swagger-ui-dist/absolute-path.js");
  return absolutePath();
}
