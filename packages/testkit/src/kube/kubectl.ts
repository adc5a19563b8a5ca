/**
 * Running the real `kubectl` from tests: one-shot commands (stdout, stderr, exit code) and
 * long-running ones (`get -w`, `logs -f`, `port-forward`) whose output a test awaits line by line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { requireTool, type ToolCheck } from '../tools';

export interface KubectlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function requireKubectl(): ToolCheck {
  return requireTool('kubectl');
}

function env(kubeconfig: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...process.env, KUBECONFIG: kubeconfig, KUBECACHEDIR: `${kubeconfig}.cache`, ...extra };
}

export function kubectl(
  kubeconfig: string,
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', args, { env: env(kubeconfig, opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.end(opts.input);
  });
}

export interface RunningKubectl {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves when the output matches (rejects after timeoutMs). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  kill(): void;
}

export function spawnKubectl(
  kubeconfig: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv } = {},
): RunningKubectl {
  const child = spawn('kubectl', args, { env: env(kubeconfig, opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (b: Buffer) => {
    text += b.toString('utf8');
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      for (const w of [...waiters]) w();
      resolve(code);
    }),
  );
  return {
    child,
    output: () => text,
    exited,
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
    waitFor(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text.match(re);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m);
          } else if (child.exitCode !== null) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(
              new Error(
                `kubectl ${args.join(' ')} exited (${child.exitCode}) before ${re}; output:\n${text}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${re} from kubectl ${args.join(' ')}; output:\n${text}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
