/**
 * A real `warden start` process (the built dist/warden.js) in a temp data dir on a free port.
 * Waits until the proxy answers, exposes the CA pin, and stops with SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './ports';

const root = resolve(import.meta.dirname, '../../..');

export interface WardenStartOptions {
  /** Extra YAML appended to a minimal config (sections other than proxy_service/storage). */
  configYaml?: string;
  env?: NodeJS.ProcessEnv;
  /** Extra lines (indented two spaces) of the proxy_service section: timeouts and limits. */
  proxyLimitsYaml?: string;
  /** Hostname of the built-in SSH node (default node-1, labels env=test), unless configYaml sets ssh_service. */
  nodeName?: string;
  /** Extra arguments for node itself (benchmarks: `--cpu-prof`, `--cpu-prof-dir=…`). */
  nodeArgs?: string[];
  /** Another build's `warden.js` (benchmarks comparing two builds side by side); default dist/. */
  wardenJs?: string;
  /** `proxy_service.public_addr` host (the port is the listen port), e.g. `localhost` for `<app>.localhost`. */
  publicHost?: string;
}

export interface WardenProcess {
  dir: string;
  dataDir: string;
  proxy: string;
  /** Where the built-in SSH node listens. */
  sshAddr: string;
  caPin: string;
  /** Everything the process printed so far (since the last restart). */
  output(): string;
  /**
   * Env for wctl (admin identity) and wsh (own WARDEN_HOME) in this cluster. `wsh login` does
   * not start the device web-helper in the background here (WARDEN_WEB_HELPER=off: it would
   * outlive the test); a test of that sets WARDEN_WEB_HELPER=auto.
   */
  env: NodeJS.ProcessEnv;
  /** The running process (a new one after `restart()`). */
  readonly child: ChildProcess;
  /** SIGTERM, then the same config and data dir again; resolves once it serves. */
  restart(): Promise<void>;
  stop(): Promise<number | null>;
}

interface Spawned {
  child: ChildProcess;
  caPin: string;
  /** Everything this process printed so far. */
  out: { text: string };
}

/** The output of every warden this test process started and has not stopped (for `runCli`'s timeout report). */
const running = new Set<{ text: string }>();

/**
 * The last `chars` of what each running warden printed: a command that timed out shows what
 * the server logged meanwhile (e.g. a slow request, a blocked event loop).
 */
export function runningWardenOutput(chars = 3000): string[] {
  return [...running].map((o) => o.text.slice(-chars));
}

/** Runs `warden start --config FILE` and resolves once it printed its CA pin and started. */
async function spawnReady(config: string, dir: string, opts: WardenStartOptions): Promise<Spawned> {
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), opts.wardenJs ?? join(root, 'dist', 'warden.js'), 'start', '--config', config],
    {
      cwd: dir,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const out = { text: '' };
  running.add(out);
  child.once('exit', () => running.delete(out));
  child.stdout!.on('data', (c) => {
    out.text += c;
  });
  child.stderr!.on('data', (c) => {
    out.text += c;
  });
  const caPin = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`warden did not start in 30 s:\n${out.text}`)), 30_000);
    const check = () => {
      const m = /--ca-pin=(sha256:[0-9a-f]{64})/.exec(out.text);
      if (m && /warden started/.test(out.text)) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`warden exited with ${code} before it was ready:\n${out.text}`));
    });
  });
  return { child, caPin, out };
}

/** SIGTERM, and the exit code once it exited (at once if it already had). */
async function terminate(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  child.kill('SIGTERM');
  return exited;
}

export async function startWarden(opts: WardenStartOptions = {}): Promise<WardenProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-test-'));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const proxy = `127.0.0.1:${port}`;
  const sshAddr = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'warden.yaml');
  const ssh = opts.configYaml?.includes('ssh_service:')
    ? ''
    : `ssh_service:\n  listen_addr: ${sshAddr}\n  hostname: ${opts.nodeName ?? 'node-1'}\n  labels: { env: test }\n`;
  writeFileSync(
    config,
    `version: v1\ndata_dir: ${dataDir}\nproxy_service:\n  listen_addr: ${proxy}\n${opts.proxyLimitsYaml ?? ''}${opts.publicHost ? `  public_addr: ${opts.publicHost}:${port}\n` : ''}${ssh}${opts.configYaml ?? ''}`,
  );
  let current = await spawnReady(config, dir, opts);
  const home = join(dir, 'home');
  return {
    dir,
    dataDir,
    proxy,
    sshAddr,
    caPin: current.caPin,
    output: () => current.out.text,
    env: { WARDEN_DATA_DIR: dataDir, WARDEN_HOME: home, WARDEN_PROXY: proxy, WARDEN_WEB_HELPER: 'off' },
    get child() {
      return current.child;
    },
    restart: async () => {
      await terminate(current.child);
      current = await spawnReady(config, dir, opts);
    },
    stop: async () => {
      const code = await terminate(current.child);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
