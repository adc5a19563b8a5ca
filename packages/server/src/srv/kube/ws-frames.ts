/**
 * WebSocket frame boundaries in the API server → client direction of a relayed exec/attach or
 * port-forward stream (RFC 6455 §5.2; server frames are unmasked). kube_service relays bytes
 * unchanged and only tracks where frames end, so that, when a lock ends the session, it can
 * stop at a frame boundary and append frames of its own: a channel-3 `Status` (the v4/v5
 * channel protocols' error stream, which kubectl prints) and a close frame.
 * Internal to `srv/kube` (`serverFrame` and `closeFrame` are also what testkit's fake API server
 * sends); tested by `ws-frames.test.ts`.
 */

/** The most of a channel-3 (error/status) frame kept: a Status object is far smaller. */
const MAX_STATUS_FRAME = 64 * 1024;

/**
 * Tracks frame boundaries across chunks; with `onStatus`, also hands over the payload (without
 * the channel byte) of every complete channel-3 data frame: the exec/attach Status that carries
 * the exit code (binary `v4/v5.channel.k8s.io`: channel byte 3; `base64.channel.k8s.io` text
 * frames: the character `3` and base64).
 */
export class FrameBoundaries {
  #need = 0; // payload bytes left in the current frame
  #head: Buffer = Buffer.alloc(0); // bytes of an incomplete frame header
  #capture: Buffer[] | undefined; // the payload so far of a frame that may be channel 3
  #captureText = false;

  constructor(private readonly onStatus?: (payload: Buffer) => void) {}

  /** True between frames. */
  get atBoundary(): boolean {
    return this.#need === 0 && this.#head.length === 0;
  }

  /**
   * Consumes a chunk; returns the offset just past the first frame that ends inside it, or -1
   * when no frame ends inside it (the state then reflects the whole chunk).
   */
  feed(chunk: Buffer): number {
    let i = 0;
    let first = -1;
    while (i < chunk.length) {
      if (this.#need > 0) {
        const take = Math.min(this.#need, chunk.length - i);
        if (this.#capture) {
          this.#capture.push(chunk.subarray(i, i + take));
          if (this.#capture.length === 1 && !isStatusChannel(this.#capture[0]![0]!, this.#captureText))
            this.#capture = undefined;
        }
        this.#need -= take;
        i += take;
        if (this.#need === 0) {
          this.#frameEnd();
          if (first === -1) first = i;
        }
        continue;
      }
      const had = this.#head.length;
      const head = had ? Buffer.concat([this.#head, chunk.subarray(i, i + 14)]) : chunk.subarray(i, i + 14);
      const len = headerLength(head);
      if (len === undefined || head.length < len) {
        // The chunk ran out inside a header (a full header is at most 14 bytes).
        this.#head = Buffer.from(head);
        break;
      }
      i += len - had;
      this.#head = Buffer.alloc(0);
      this.#need = payloadLength(head);
      const opcode = head[0]! & 0x0f;
      const fin = (head[0]! & 0x80) !== 0;
      this.#capture =
        this.onStatus &&
        fin &&
        (opcode === 1 || opcode === 2) &&
        this.#need > 1 &&
        this.#need <= MAX_STATUS_FRAME
          ? []
          : undefined;
      this.#captureText = opcode === 1;
      if (this.#need === 0 && first === -1) first = i;
    }
    return first;
  }

  #frameEnd(): void {
    const parts = this.#capture;
    this.#capture = undefined;
    if (!parts || !this.onStatus) return;
    const payload = Buffer.concat(parts).subarray(1);
    this.onStatus(this.#captureText ? Buffer.from(payload.toString('latin1'), 'base64') : payload);
  }
}

function isStatusChannel(firstByte: number, text: boolean): boolean {
  return text ? firstByte === 0x33 : firstByte === 3;
}

function headerLength(h: Buffer): number | undefined {
  if (h.length < 2) return undefined;
  const b1 = h[1]!;
  const base = (b1 & 0x80 ? 4 : 0) + 2;
  const l7 = b1 & 0x7f;
  return l7 === 126 ? base + 2 : l7 === 127 ? base + 8 : base;
}

function payloadLength(h: Buffer): number {
  const l7 = h[1]! & 0x7f;
  if (l7 === 126) return h.readUInt16BE(2);
  if (l7 === 127) return Number(h.readBigUInt64BE(2));
  return l7;
}

/** One unmasked server frame. */
export function serverFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  let head: Buffer;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

/** A close frame with a code and a reason (trimmed to fit the 123-byte limit). */
export function closeFrame(code: number, reason: string): Buffer {
  let r = Buffer.from(reason, 'utf8');
  if (r.length > 123) r = r.subarray(0, 123);
  const body = Buffer.alloc(2 + r.length);
  body.writeUInt16BE(code, 0);
  r.copy(body, 2);
  return serverFrame(8, body);
}
