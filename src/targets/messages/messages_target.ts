/**
 * How a target sends Anthropic Messages requests (lines of `/v1/messages`):
 * as they are, to an upstream that serves `/v1/messages` (`native`), or
 * translated to `/v1/chat/completions` and the answers back (`translate`),
 * or whichever the upstream takes (`auto`: one probe, `POST /messages` with
 * an empty body, before the first such request: a route that is missing
 * answers 404 or 405, one that is there refuses the body).
 *
 * A request that cannot be translated is answered here, without reaching the
 * upstream, with a 400 in Anthropic's error shape naming the field.
 *
 * @module
 */
import { type Target, TargetError, type TargetRequest, type TargetResponse } from "../types.ts";
import { chatToMessage, messagesToChat } from "./chat_translation.ts";

/** How Messages requests reach the upstream. */
export type MessagesMode = "native" | "translate" | "auto";

/** The line URL of Anthropic's Messages API. */
export const MESSAGES_URL = "/v1/messages";

/** An answer made here, in Anthropic's error shape. */
function localError(status: number, type: string, message: string): TargetResponse {
  const body = { type: "error", error: { type, message } };
  return { status, body, bodyJson: JSON.stringify(body), requestId: null, retryAfterMs: null, json: true };
}

/**
 * `target`, sending Messages requests as `mode` says; other requests go to it unchanged.
 *
 * @example
 * ```ts
 * const target = withMessagesMode(createHttpTarget({ baseUrl: "http://127.0.0.1:8000/v1" }), "auto");
 * ```
 */
export function withMessagesMode(target: Target, mode: MessagesMode): Target {
  if (mode === "native") return target;
  /** Whether the upstream serves `/v1/messages`, once probed (a failed probe is tried again). */
  let serves: Promise<boolean> | null = mode === "translate" ? Promise.resolve(false) : null;
  const probe = (signal: AbortSignal) => {
    serves ??= target.send({ url: MESSAGES_URL, bodyText: "{}", signal }).then(
      (response) => response.status !== 404 && response.status !== 405,
      (error) => {
        serves = null;
        throw error;
      },
    );
    return serves;
  };
  const translated = async (request: TargetRequest): Promise<TargetResponse> => {
    let params: Record<string, unknown>;
    try {
      params = JSON.parse(request.bodyText);
    } catch {
      return localError(400, "invalid_request_error", "the request body is not JSON");
    }
    const chat = messagesToChat(params);
    if (!chat.ok) return localError(400, "invalid_request_error", `${chat.param}: ${chat.message} (this upstream serves chat completions only)`);
    const response = await target.send({ url: "/v1/chat/completions", bodyText: JSON.stringify(chat.value), signal: request.signal });
    // Errors go on as the upstream gave them: the result's error says what it said.
    if (response.status < 200 || response.status >= 300 || !response.json) return response;
    const stops = Array.isArray(params.stop_sequences) ? params.stop_sequences as string[] : [];
    const message = chatToMessage(response.body, String(params.model), stops);
    // A bad answer may be a model's mistake (tool arguments that are not JSON): a 5xx, so the line is tried again.
    if (!message.ok) return localError(502, "api_error", `the upstream's chat completion cannot be a Message: ${message.message}`);
    return { ...response, body: message.value, bodyJson: JSON.stringify(message.value) };
  };
  return {
    description: mode === "translate" ? `${target.description} (Messages as chat completions)` : target.description,
    async send(request: TargetRequest): Promise<TargetResponse> {
      if (request.url !== MESSAGES_URL) return await target.send(request);
      let native: boolean;
      try {
        native = await probe(request.signal);
      } catch (error) {
        if (error instanceof TargetError) throw error;
        throw new TargetError("connection_error", `could not learn whether the upstream serves /v1/messages: ${(error as Error).message}`);
      }
      return native ? await target.send(request) : await translated(request);
    },
  };
}
