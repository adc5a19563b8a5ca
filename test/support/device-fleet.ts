/**
 * Test-only: the set-up the device-trust end-to-end suites share, with real parts: a `warden
 * start` (testkit's startWarden) with the cluster's device-trust mode, machines each with its
 * own swtpm (testkit's startMachine), users invited and signed up with the built CLIs, each
 * with her own WARDEN_HOME per machine, `wsh login`, a machine enrolled as an admin has it
 * done, and everything stopped at the end.
 * Who may import: `*.e2e.test.ts` files.
 *
 * @example
 *   const fleet = new DeviceFleet();
 *   before(async () => {
 *     w = await fleet.start({ deviceTrust: 'optional' });
 *     a = await fleet.machine('a');
 *     await fleet.signUp('alice', fleet.env(a, 'alice'), { roles: 'access', logins: 'root' });
 *   });
 *   after(() => fleet.stop());
 */

import { join } from 'node:path';
import {
  type CliResult,
  enrollMachine,
  inviteAndSignUp,
  runCli,
  type SwtpmStartOptions,
  setDeviceTrust,
  startMachine,
  startWarden,
  type TpmMachine,
  type WardenProcess,
  type WardenStartOptions,
} from '@warden/testkit';

/** Passes the password policy (12+ characters); every fleet user has it. */
export const PASSWORD = 'correct horse battery staple';

export type { TpmMachine };

export class DeviceFleet {
  #w: WardenProcess | undefined;
  readonly machines: TpmMachine[] = [];

  /** The running warden (once `start` returned). */
  get w(): WardenProcess {
    if (!this.#w) throw new Error('DeviceFleet: start() first');
    return this.#w;
  }

  /** `warden start`; then the cluster's device-trust mode (second factor off) when given. */
  async start(o: WardenStartOptions & { deviceTrust?: string } = {}): Promise<WardenProcess> {
    const { deviceTrust, ...options } = o;
    this.#w = await startWarden(options);
    if (deviceTrust) await setDeviceTrust(this.#w, deviceTrust);
    return this.#w;
  }

  /** A machine with its own swtpm (with an EK certificate unless `swtpm` says), stopped with the fleet. */
  async machine(name: string, swtpm?: SwtpmStartOptions): Promise<TpmMachine> {
    const m = await startMachine(this.w, name, swtpm);
    this.machines.push(m);
    return m;
  }

  /** `user`'s home on machine `m` (each pair has its own). */
  home(m: TpmMachine, user: string): string {
    return join(this.w.dir, `home-${user}-${m.name}`);
  }

  /** `user`'s env on machine `m`: the machine's TPM and device cache, her home, and `extra`. */
  env(m: TpmMachine, user: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return { ...m.env, WARDEN_HOME: this.home(m, user), ...extra };
  }

  /** `wctl` as the cluster's admin. */
  wctl(args: string[]): Promise<CliResult> {
    return runCli('wctl', args, { env: this.w.env });
  }

  /** Invites `user` (`wctl users add` with roles and logins) and signs her up in `env`. */
  async signUp(user: string, env: NodeJS.ProcessEnv, o: { roles: string; logins?: string }): Promise<void> {
    await inviteAndSignUp(this.w, user, { ...o, password: PASSWORD, env });
  }

  /** `wsh login` as `user` in `env` with her password (`args`: more flags): its result. */
  login(env: NodeJS.ProcessEnv, user: string, args: string[] = []): Promise<CliResult> {
    return runCli('wsh', ['login', `--proxy=${this.w.proxy}`, `--user=${user}`, ...args], {
      env,
      input: `${PASSWORD}\n`,
    });
  }

  /** The machine of `env` enrolled by the admin's token (testkit's enrollMachine). */
  enroll(env: NodeJS.ProcessEnv): ReturnType<typeof enrollMachine> {
    return enrollMachine(this.w, env);
  }

  /** Stops every machine's swtpm, then warden (whatever of them started). */
  async stop(): Promise<void> {
    for (const m of this.machines) await m.tpm.stop();
    await this.#w?.stop();
  }
}
