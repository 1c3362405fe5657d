/**
 * A webhook endpoint on 127.0.0.1 for the tests: it records every delivery
 * and answers what `answer` says for each attempt (a redirect goes to
 * `redirectTo`).
 */
import { createServer, type IncomingHttpHeaders } from "node:http";

/** One delivery as the endpoint received it, and its answer. */
export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}

/** Starts an endpoint; `url` is where to deliver, `deliveries` what arrived, in order. */
export async function startReceiver(answer: (attempt: number) => number = () => 200, redirectTo = "") {
  const deliveries: Delivery[] = [];
  const server = createServer(async (request, response) => {
    let body = "";
    for await (const chunk of request) body += chunk;
    const answered = answer(deliveries.length + 1);
    deliveries.push({ headers: request.headers, body, answered });
    response.writeHead(answered, answered >= 300 && answered < 400 ? { location: redirectTo } : {}).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`;
  return { url, deliveries, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
