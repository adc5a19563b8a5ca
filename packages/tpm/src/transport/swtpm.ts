/**
 * swtpm over TCP with raw command framing: the command bytes are written as they are and the
 * response is read until the size in its header is complete. One connection is kept open
 * (opened lazily, reopened after `close()`); swtpm serves one connection at a time, so close
 * it before another client (tpm2-tools) talks to the same swtpm.
 *
 *   client                     swtpm :port
 *     │── command (tag,size,cc,…) ──▶│
 *     │◀── response (tag,size,rc,…) ─│
 */
import { connect, type Socket } from 'node:net';
import { TpmError } from '../errors';
import { MAX_RESPONSE_SIZE, RESPONSE_HEADER_SIZE, SerialQueue, type TpmTransport } from './types';

export interface SwtpmOptions {
  host: string;
  port: number;
  /** How long one command may take (RSA key generation on a slow TPM takes seconds). */
  timeoutMs?: number;
}

interface Pending {
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class SwtpmTransport implements TpmTransport {
  readonly description: string;
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private chunks: Buffer[] = [];
  private received = 0;
  private pending: Pending | undefined;
  private readonly queue = new SerialQueue();
  private readonly timeoutMs: number;

  constructor(private readonly opts: SwtpmOptions) {
    this.description = `swtpm:${opts.host}:${opts.port}`;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
  }

  send(command: Uint8Array): Promise<Uint8Array> {
    return this.queue.run(async () => {
      const socket = await this.connection();
      return new Promise<Uint8Array>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.fail(
            new TpmError('TPM_ERR_TRANSPORT', `${this.description}: no response in ${this.timeoutMs} ms`),
          );
        }, this.timeoutMs);
        this.pending = {
          resolve: (b) => {
            clearTimeout(timer);
            resolve(b);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        socket.write(command);
      });
    });
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      const s = this.socket;
      this.socket = undefined;
      this.connecting = undefined;
      if (!s || s.destroyed) return;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.end();
        setTimeout(() => s.destroy(), 1000).unref();
      });
    });
  }

  private connection(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: this.opts.host, port: this.opts.port });
      s.setNoDelay(true);
      const onError = (e: Error) => {
        this.connecting = undefined;
        reject(new TpmError('TPM_ERR_TRANSPORT', `${this.description}: ${e.message}`, { cause: e }));
      };
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        this.socket = s;
        this.connecting = undefined;
        this.chunks = [];
        this.received = 0;
        // Events of a connection that was since replaced or closed are ignored.
        s.on('data', (c: Buffer) => {
          if (this.socket === s) this.onData(c);
        });
        s.on('error', (e) => {
          if (this.socket === s)
            this.fail(new TpmError('TPM_ERR_TRANSPORT', `${this.description}: ${e.message}`));
        });
        s.on('close', () => {
          if (this.socket === s) {
            this.fail(new TpmError('TPM_ERR_TRANSPORT', `${this.description}: connection closed by the TPM`));
          }
        });
        resolve(s);
      });
    });
    return this.connecting;
  }

  private onData(chunk: Buffer): void {
    if (!this.pending) {
      this.fail(
        new TpmError('TPM_ERR_TRANSPORT', `${this.description}: unexpected bytes with no command sent`),
      );
      return;
    }
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.received < RESPONSE_HEADER_SIZE) return;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [all];
    const size = all.readUInt32BE(2);
    if (size < RESPONSE_HEADER_SIZE || size > MAX_RESPONSE_SIZE) {
      this.fail(
        new TpmError('TPM_ERR_TRANSPORT', `${this.description}: response header announces ${size} bytes`),
      );
      return;
    }
    if (this.received < size) return;
    if (this.received > size) {
      this.fail(
        new TpmError(
          'TPM_ERR_TRANSPORT',
          `${this.description}: ${this.received - size} bytes beyond the response`,
        ),
      );
      return;
    }
    const p = this.pending;
    this.pending = undefined;
    this.chunks = [];
    this.received = 0;
    p.resolve(new Uint8Array(all.buffer, all.byteOffset, all.byteLength).slice());
  }

  /** Fails the command in flight and drops the connection (the byte stream is out of step). */
  private fail(e: TpmError): void {
    const p = this.pending;
    this.pending = undefined;
    this.chunks = [];
    this.received = 0;
    const s = this.socket;
    this.socket = undefined;
    if (s && !s.destroyed) s.destroy();
    p?.reject(e);
  }
}
