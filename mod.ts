/**
 * batchspool: a durable, resumable, OpenAI-compatible Batch API server and
 * library for Deno, Bun and Node.
 *
 * @example
 * ```ts
 * import { createFsStorage } from "@batchspool/batchspool";
 *
 * const storage = await createFsStorage({ dir: "./batchspool-data" });
 * await storage.documents.put("hello", { world: true });
 * await storage.close();
 * ```
 *
 * @module
 */
export * from "./src/storage/mod.ts";
export { IntegrityError, openEnvelope, sealEnvelope } from "./src/integrity/envelope.ts";
export { createSha256, sha256Hex, type Sha256 } from "./src/integrity/sha256.ts";
