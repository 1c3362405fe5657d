/**
 * A stand-in scan worker for tests of `OffThreadScanner`: it acknowledges chunks
 * like the real one, and answers each finished scan with which worker ran it and
 * how many scans that worker has finished. Plain JavaScript, so that Node can
 * start it from the sources too.
 */
import { parentPort } from "node:worker_threads";

const worker = crypto.randomUUID();
let scans = 0;

function onMessage(message) {
  if (message.type === "chunk") {
    const buffer = message.bytes.buffer;
    reply({ type: "ack", id: message.id, bytes: message.bytes.length, buffer }, [buffer]);
  } else if (message.type === "finish") {
    scans++;
    reply({ type: "done", id: message.id, scan: { worker, scans } });
  }
}

let reply;
if (parentPort) {
  parentPort.on("message", onMessage);
  reply = (message, transfer) => parentPort.postMessage(message, transfer);
} else {
  globalThis.onmessage = (event) => onMessage(event.data);
  reply = (message, transfer) => globalThis.postMessage(message, transfer);
}
