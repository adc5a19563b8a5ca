/**
 * `node --import` preload for `bench:devicetrust -- --wsh-profile=DIR`: writes a V8 CPU profile
 * of the whole process to $CPUPROF_DIR/wsh-<pid>.cpuprofile when it exits (`--cpu-prof` is not
 * allowed in NODE_OPTIONS, and `runCli` starts the built commands without node flags).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.CPUPROF_DIR;
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 200 });
session.post('Profiler.start');
process.on('exit', () => {
  // The in-process session answers synchronously, so this runs before the process ends.
  session.post('Profiler.stop', (err, result) => {
    if (!err && dir) writeFileSync(`${dir}/wsh-${process.pid}.cpuprofile`, JSON.stringify(result.profile));
  });
});
