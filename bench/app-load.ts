/**
 * A small HTTPS load generator for `npm run bench:app`, for the one path `wrk` cannot drive:
 * requests with a TLS client certificate (Warden's proxy with an app certificate). The same
 * generator measures the baseline (nginx over TLS) so the ratio compares like with like.
 * Runs as its own process (`node --import tsx bench/app-load.ts …`): N keep-alive connections,
 * each sending GETs back to back for D seconds; prints one JSON line `{ rps, p50, p99, errors, cpuMs }`
 * (latencies in ms).
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '10' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    servername: { type: 'string' },
  },
});
const url = new URL(values.url!);
const connections = Number(values.connections);
const until = Date.now() + Number(values.seconds) * 1000;
const agent = new Agent({
  keepAlive: true,
  maxSockets: connections,
  ...(values.ca ? { ca: readFileSync(values.ca) } : {}),
  ...(values.cert ? { cert: readFileSync(values.cert), key: readFileSync(values.key!) } : {}),
  ...(values.servername ? { servername: values.servername } : {}),
});
const latencies: number[] = [];
let errors = 0;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { host: values.servername ?? url.host },
      },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          if (res.statusCode === 200) latencies.push(performance.now() - t0);
          else errors++;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end();
  });
}

async function loop(): Promise<void> {
  while (Date.now() < until) await once();
}

const started = Date.now();
const cpu0 = process.cpuUsage();
await Promise.all(Array.from({ length: connections }, () => loop()));
const seconds = (Date.now() - started) / 1000;
const cpu = process.cpuUsage(cpu0);
latencies.sort((a, b) => a - b);
const at = (q: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({
    rps: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
    errors,
    // This generator's own CPU over the run (ms): the bench reports it per request.
    cpuMs: (cpu.user + cpu.system) / 1000,
  })}\n`,
);
agent.destroy();
