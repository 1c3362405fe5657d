/**
 * The worker side of {@link OffThreadScanner}: runs one {@link InputScanner}
 * per upload on the chunks posted to it (and hashes them, when asked),
 * acknowledging each so the sender can bound what is queued.
 *
 * @module
 */
import { MarkingSha256 } from "../../integrity/digest_marks.ts";
import { connectToParent } from "../../runtime/threads.ts";
import type { ScanReply, ScanRequest } from "./off_thread_scan.ts";
import { InputScanner } from "./validation.ts";

interface Scan {
  scanner: InputScanner;
  hash: MarkingSha256 | null;
}

const scans = new Map<number, Scan>();
const reply: (message: ScanReply, transfer?: ArrayBuffer[]) => void = connectToParent((data) => {
  const message = data as ScanRequest;
  switch (message.type) {
    case "start":
      scans.set(message.id, {
        scanner: new InputScanner(message.limits),
        hash: message.markEvery === undefined ? null : new MarkingSha256(message.markEvery),
      });
      break;
    case "chunk": {
      const scan = scans.get(message.id);
      scan?.hash?.update(message.bytes);
      scan?.scanner.push(message.bytes);
      // The buffer goes back to be filled again: no allocation per message on either side.
      const buffer = message.bytes.buffer as ArrayBuffer;
      reply({ type: "ack", id: message.id, bytes: message.bytes.length, buffer }, [buffer]);
      break;
    }
    case "finish": {
      const scan = scans.get(message.id);
      scans.delete(message.id);
      reply({ type: "done", id: message.id, scan: scan?.scanner.finish(), digest: scan?.hash?.finish() });
      break;
    }
    case "drop":
      scans.delete(message.id);
      break;
  }
});
