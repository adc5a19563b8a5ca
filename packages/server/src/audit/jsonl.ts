/**
 * A JSON-lines audit sink: appends every stored event as one line of JSON to a file that only
 * the warden user can read (mode 0600, enforced on open; directories created 0700). Lines are
 * written in emission order, those that queue up behind a write in one system call. No fsync per line: the primary audit store is the
 * durable record; this file is for log shippers. After external rotation (rename), call
 * `reopen()` to start a new file.
 *
 * @example
 *   const sink = await JsonlAuditSink.open({ path: '/var/lib/warden/audit.jsonl' });
 *   const audit = teeAuditLog(await SqliteAuditLog.open({ path }), sink);
 */
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type AuditEvent, WardenError } from '@warden/api';
import type { AuditSink } from './types';

async function openAppend(path: string): Promise<FileHandle> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const handle = await open(path, 'a', 0o600);
  try {
    await handle.chmod(0o600);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

export class JsonlAuditSink implements AuditSink {
  readonly #path: string;
  #handle: FileHandle | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** The lines of the next write, while it waits for the one before it. */
  #batch: { lines: string[]; written: Promise<void> } | undefined;

  private constructor(path: string, handle: FileHandle) {
    this.#path = path;
    this.#handle = handle;
  }

  static async open(opts: { path: string }): Promise<JsonlAuditSink> {
    if (typeof opts?.path !== 'string' || opts.path === '') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'path must name the audit JSON-lines file');
    }
    return new JsonlAuditSink(opts.path, await openAppend(opts.path));
  }

  /**
   * Appends the event as one line. Lines that arrive while a write is under way go out
   * together in the next one (one system call for many events), still in order.
   */
  write(event: AuditEvent): Promise<void> {
    const line = `${JSON.stringify(event)}\n`;
    if (this.#batch) {
      this.#batch.lines.push(line);
      return this.#batch.written;
    }
    const lines = [line];
    const written = this.#serial(async () => {
      if (this.#batch?.lines === lines) this.#batch = undefined;
      const handle = this.#handle;
      if (!handle) throw new WardenError('WARDEN_ERR_CLOSED', 'the audit sink is closed');
      await handle.appendFile(lines.join(''), 'utf8');
    });
    this.#batch = { lines, written };
    return written;
  }

  /** Closes the file and opens `path` again (after a log rotation renamed it). */
  reopen(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#handle) throw new WardenError('WARDEN_ERR_CLOSED', 'the audit sink is closed');
      const next = await openAppend(this.#path);
      const old = this.#handle;
      this.#handle = next;
      await old.close();
    });
  }

  close(): Promise<void> {
    return this.#serial(async () => {
      const handle = this.#handle;
      this.#handle = undefined;
      await handle?.close();
    });
  }

  #serial<R>(fn: () => Promise<R>): Promise<R> {
    const result = this.#queue.then(fn);
    this.#queue = result.catch(() => undefined);
    return result;
  }
}
