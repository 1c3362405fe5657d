/**
 * The worker side of {@link OffThreadScanner}: runs one {@link InputScanner}
 * per upload on the chunks posted to it, acknowledging each so the sender can
 * bound what is queued.
 *
 * @module
 */
import { connectToParent } from "../runtime/threads.ts";
import type { ScanReply, ScanRequest } from "./off_thread_scan.ts";
import { InputScanner } from "./validate_input.ts";

const scans = new Map<number, InputScanner>();
const reply: (message: ScanReply, transfer?: ArrayBuffer[]) => void = connectToParent((data) => {
  const message = data as ScanRequest;
  switch (message.type) {
    case "start":
      scans.set(message.id, new InputScanner(message.limits));
      break;
    case "chunk": {
      scans.get(message.id)?.push(message.bytes);
      // The buffer goes back to be filled again: no allocation per message on either side.
      const buffer = message.bytes.buffer as ArrayBuffer;
      reply({ type: "ack", id: message.id, bytes: message.bytes.length, buffer }, [buffer]);
      break;
    }
    case "finish": {
      const scanner = scans.get(message.id);
      scans.delete(message.id);
      reply({ type: "done", id: message.id, scan: scanner?.finish() });
      break;
    }
    case "drop":
      scans.delete(message.id);
      break;
  }
});
