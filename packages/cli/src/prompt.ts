/**
 * Questions on the terminal, or answers as lines from stdin when stdin is not a terminal
 * (so scripts can drive `wsh signup` and `wsh login`). Secrets are never echoed.
 */
import { createInterface } from 'node:readline';
import { WardenError } from '@warden/api';

export interface Prompter {
  ask(question: string, opts?: { secret?: boolean }): Promise<string>;
  close(): void;
}

export function createPrompter(
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => void },
  stderr: NodeJS.WritableStream,
): Prompter {
  if (stdin.isTTY && stdin.setRawMode) return new TtyPrompter(stdin, stderr);
  return new LinePrompter(stdin, stderr);
}

/** Reads one answer per line from a pipe or file. */
class LinePrompter implements Prompter {
  readonly #lines: AsyncIterator<string>;
  readonly #rl;
  readonly #stderr: NodeJS.WritableStream;

  constructor(stdin: NodeJS.ReadableStream, stderr: NodeJS.WritableStream) {
    this.#rl = createInterface({ input: stdin, crlfDelay: Number.POSITIVE_INFINITY, terminal: false });
    this.#lines = this.#rl[Symbol.asyncIterator]();
    this.#stderr = stderr;
  }

  async ask(question: string): Promise<string> {
    this.#stderr.write(question);
    const next = await this.#lines.next();
    this.#stderr.write('\n');
    if (next.done) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `no answer on stdin for "${question.replace(/:\s*$/, '')}"`,
      );
    }
    return next.value.replace(/\r$/, '');
  }

  close(): void {
    this.#rl.close();
  }
}

/** Interactive prompts; secret answers are read in raw mode without echo. */
class TtyPrompter implements Prompter {
  readonly #stdin: NodeJS.ReadableStream & { setRawMode?: (raw: boolean) => void };
  readonly #stderr: NodeJS.WritableStream;

  constructor(
    stdin: NodeJS.ReadableStream & { setRawMode?: (raw: boolean) => void },
    stderr: NodeJS.WritableStream,
  ) {
    this.#stdin = stdin;
    this.#stderr = stderr;
  }

  ask(question: string, opts: { secret?: boolean } = {}): Promise<string> {
    this.#stderr.write(question);
    return new Promise((resolve, reject) => {
      let answer = '';
      const raw = Boolean(opts.secret);
      if (raw) this.#stdin.setRawMode?.(true);
      const done = (err?: Error) => {
        this.#stdin.off('data', onData);
        if (raw) this.#stdin.setRawMode?.(false);
        this.#stdin.pause();
        this.#stderr.write('\n');
        if (err) reject(err);
        else resolve(answer);
      };
      const onData = (chunk: Buffer | string) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') return done();
          if (ch === '\u0003') return done(Object.assign(new Error('interrupted'), { interrupted: true }));
          if (ch === '\u0004') return done();
          if (ch === '\u007f' || ch === '\b') answer = answer.slice(0, -1);
          else if (raw || ch >= ' ') answer += ch;
        }
      };
      this.#stdin.on('data', onData);
      this.#stdin.resume();
    });
  }

  close(): void {
    this.#stdin.pause();
  }
}
