/**
 * `/v1/files`: upload (streamed), list, retrieve, content (streamed), delete.
 *
 * @module
 */
import { Hono } from "hono";
import type { FileService, ReceivedUpload } from "../batch/files/file_service.ts";
import type { OwnerVariables } from "./access/auth.ts";
import { type FormPart, multipartBoundary, parseMultipart } from "./multipart.ts";
import { integerParam, listBody } from "./query_params.ts";
import { RequestError } from "./request_error.ts";
import { requestBody } from "../runtime/request_body.ts";
import type { Clock } from "../shared/clock.ts";
import { checkIdempotencyKey, type IdempotencyKeys, jsonFingerprint } from "../batch/model/idempotency.ts";
import { REPLAYED } from "./batches_routes.ts";
import { limitIdle } from "./idle_body.ts";
import { attachment } from "./content_disposition.ts";

const MAX_FIELD_BYTES = 64 * 1024;
/** Multipart framing allowed on top of the file size before a Content-Length is refused outright. */
const FRAMING_ALLOWANCE = 64 * 1024;

async function fieldText(part: FormPart): Promise<string> {
  const reader = part.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    total += r.value.length;
    if (total > MAX_FIELD_BYTES) {
      await reader.cancel();
      throw new RequestError("invalid_request", `The form field '${part.name}' is too long.`, { param: part.name });
    }
    text += decoder.decode(r.value, { stream: true });
  }
  return text + decoder.decode();
}

/** Options of the files routes. */
export interface FilesRoutesOptions {
  files: FileService;
  maxFileBytes: number;
  /** An upload whose client sends nothing for this long is dropped with a 408. */
  idleTimeoutMs: number;
  clock: Clock;
  /** Where uploads made with an `Idempotency-Key` keep their first answer (none: the header is ignored). */
  idempotency?: IdempotencyKeys;
}

/** The `/v1/files` routes. */
export function filesRoutes(options: FilesRoutesOptions): Hono<{ Variables: OwnerVariables }> {
  const { files } = options;
  const app = new Hono<{ Variables: OwnerVariables }>();

  app.post("/", async (c) => {
    // Checked before the upload: a malformed key should not cost one.
    const idempotencyKey = checkIdempotencyKey(c.req.header("idempotency-key"));
    const boundary = multipartBoundary(c.req.header("content-type") ?? null);
    if (!boundary) {
      throw new RequestError("unsupported_media_type", "Uploads must be sent as multipart/form-data.");
    }
    const declared = Number(c.req.header("content-length"));
    if (Number.isFinite(declared) && declared > options.maxFileBytes + FRAMING_ALLOWANCE) {
      throw new RequestError(
        "payload_too_large",
        `File is too large: a file may be at most ${options.maxFileBytes} bytes.`,
        { param: "file" },
      );
    }
    const body = requestBody(c);
    if (!body) throw new RequestError("invalid_request", "Missing required parameter: 'file'.", { param: "file" });
    const owner = c.var.owner;
    const fields: Record<string, string> = {};
    let received: ReceivedUpload | null = null;
    try {
      for await (const part of parseMultipart(limitIdle(body, options.idleTimeoutMs, options.clock), boundary)) {
        if (part.name === "file" && part.filename !== null) {
          if (received) throw new RequestError("invalid_request", "Only one file may be uploaded at a time.", { param: "file" });
          received = await files.receive({
            owner,
            filename: part.filename || "upload",
            purpose: fields.purpose,
            content: part.body,
          });
        } else {
          fields[part.name] = await fieldText(part);
        }
      }
    } catch (error) {
      if (received) await files.discard(received);
      throw error;
    }
    if (!received) {
      throw new RequestError("invalid_request", "Missing required parameter: 'file'.", { param: "file" });
    }
    let expiresAfterSeconds: number | undefined;
    try {
      const anchor = fields["expires_after[anchor]"];
      if (anchor !== undefined && anchor !== "created_at") {
        throw new RequestError("invalid_request", "'expires_after[anchor]' must be 'created_at'.", {
          param: "expires_after[anchor]",
        });
      }
      expiresAfterSeconds = integerParam(fields["expires_after[seconds]"], "expires_after[seconds]");
    } catch (error) {
      await files.discard(received);
      throw error;
    }
    const commit = () => files.commit(received!, { purpose: fields.purpose, expiresAfterSeconds });
    if (idempotencyKey === undefined || !options.idempotency) return c.json(await commit());
    // The same file (its bytes, name, purpose and expiry) under the same key is the same request.
    const fingerprint = jsonFingerprint([received.sha256, received.filename, fields.purpose ?? null, expiresAfterSeconds ?? null]);
    try {
      const answer = await options.idempotency.once(owner, "files", idempotencyKey, fingerprint, commit);
      if (answer.replayed) await files.discard(received);
      return c.json(answer.value, 200, answer.replayed ? REPLAYED : {});
    } catch (error) {
      await files.discard(received).catch(() => {});
      throw error;
    }
  });

  app.get("/", async (c) => {
    // The file service checks every parameter's value; the route only reads them.
    const order = c.req.query("order") as "asc" | "desc" | undefined;
    const page = await files.list(c.var.owner, {
      purpose: c.req.query("purpose") || undefined,
      limit: integerParam(c.req.query("limit"), "limit"),
      order,
      after: c.req.query("after") || undefined,
    });
    return c.json(listBody(page.data, page.has_more));
  });

  app.get("/:id", async (c) => c.json((await files.get(c.var.owner, c.req.param("id"))).file));

  app.get("/:id/content", async (c) => {
    const { record, stream } = await files.content(c.var.owner, c.req.param("id"));
    return new Response(stream, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(record.file.bytes),
        "content-disposition": attachment(record.file.filename),
      },
    });
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    await files.delete(c.var.owner, id);
    return c.json({ id, object: "file", deleted: true });
  });

  return app;
}
