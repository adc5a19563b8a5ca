/**
 * `wctl devices add|ls|rm|enroll|lock`: the trusted-device inventory (DESIGN §6). Devices are
 * named by device ID (`--device-id`, a UUID the server made) or asset tag (`--asset-tag`);
 * when several devices share an asset tag, the server asks for the device ID.
 */
import { readFileSync } from 'node:fs';
import {
  DEVICE_OS_NAMES,
  type DeviceOsType,
  isWardenError,
  parseDuration,
  type rpc,
  WardenError,
} from '@warden/api';
import { type CommandContext, str } from '../command';
import { formatData, parseFormat, table } from '../format';
import { openSession } from './identity';
import { printLockCreated } from './locks';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface DeviceLike {
  metadata?: { name?: string };
  spec?: {
    os_type?: string;
    asset_tag?: string;
    enroll_status?: string;
    owner?: string;
    credential?: { attestation_type?: string; ek_sha256?: string; ek_cert_verified?: string };
  };
}

function osName(os: string | undefined): string {
  return (os && DEVICE_OS_NAMES[os as DeviceOsType]) ?? os ?? '';
}

/** `C00AA0AAAA0A/Linux` */
function label(assetTag: string, os: string | undefined): string {
  return `${assetTag}/${osName(os)}`;
}

/**
 * What vouches for the device's identity: an EK certificate from an allowed CA, an `ek:`
 * asset tag checked against the EK at enrollment, or an asset tag the device reported about
 * itself (DMI values: anyone can type them).
 */
export function deviceIdentitySource(d: DeviceLike): string {
  const cred = d.spec?.enroll_status === 'enrolled' ? d.spec.credential : undefined;
  if (cred?.attestation_type === 'tpm_ekcert_trusted') return 'EK certificate';
  const tag = d.spec?.asset_tag ?? '';
  if (cred?.ek_sha256 && tag === `ek:${cred.ek_sha256}`) return 'asset tag: EK';
  return 'asset tag: reported';
}

/**
 * How far the EK certificate was verified: `allowed CA` (chains to ekcert_allowed_cas),
 * `chain verified` (signatures up to a root the TPM supplied — consistent, not trusted),
 * `issuer verified` (by an issuer certificate the TPM supplied), `unverified` (no issuer to
 * check it with: it counts for nothing), empty (no EK certificate).
 */
export function ekCertColumn(d: DeviceLike): string {
  const v = d.spec?.enroll_status === 'enrolled' ? d.spec.credential?.ek_cert_verified : undefined;
  switch (v) {
    case 'allowed_ca':
      return 'allowed CA';
    case 'tpm_root':
      return 'chain verified';
    case 'tpm_issuer':
      return 'issuer verified';
    case 'unchecked':
      return 'unverified';
    default:
      // Enrolled before this was recorded: an EK certificate type says nothing more.
      return d.spec?.credential?.attestation_type === 'tpm_ekcert_trusted' ? 'allowed CA' : '';
  }
}

/** The devices table of `wctl devices ls` and `wctl get devices`. */
export function devicesTable(items: readonly Record<string, unknown>[]): string {
  const rows = (items as readonly DeviceLike[]).map((d) => [
    d.spec?.asset_tag ?? '',
    osName(d.spec?.os_type),
    d.spec?.enroll_status === 'enrolled' ? 'enrolled' : 'not enrolled',
    d.metadata?.name ?? '',
    d.spec?.owner ?? '',
    d.spec?.enroll_status === 'enrolled' ? ekCertColumn(d) : '',
    d.spec?.credential?.attestation_type ?? '',
    deviceIdentitySource(d),
  ]);
  return table(
    ['Asset Tag', 'OS', 'Enroll Status', 'Device ID', 'Owner', 'EK Certificate', 'Attestation', 'Identity'],
    rows,
  );
}

/** The device named by `--device-id` or `--asset-tag` (exactly one of them). */
function deviceRef(ctx: CommandContext): string {
  const id = str(ctx.values, 'device-id');
  const tag = str(ctx.values, 'asset-tag');
  if (!id && !tag)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'either --device-id or --asset-tag must be set');
  if (id && tag)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'use either --device-id or --asset-tag, not both');
  if (id && !UUID.test(id)) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `--device-id "${id}" is not a device ID (a UUID, see \`wctl devices ls\`); use --asset-tag for asset tags`,
    );
  }
  return (id ?? tag)!;
}

function ttlOf(ctx: CommandContext, name: string): number | undefined {
  const v = str(ctx.values, name);
  return v === undefined ? undefined : parseDuration(v, `--${name}`);
}

/** `1h`, `1h30m`, `45m`: whole minutes, at least one. */
function humanDuration(ms: number): string {
  const minutes = Math.max(1, Math.round(ms / 60_000));
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h && m ? `${h}h${m}m` : h ? `${h}h` : `${m}m`;
}

function printToken(ctx: CommandContext, t: rpc.DeviceEnrollTokenResponse): void {
  const left = Date.parse(t.expires) - Date.now();
  ctx.stdout.write(
    `Enrollment token for device ${label(t.asset_tag, t.os_type)} (works once, expires in ` +
      `${humanDuration(left)}, at ${t.expires}):\n\n` +
      `  ${t.token}\n\nRun this on the device to enroll it:\n\n  ${t.enroll_command}\n`,
  );
}

export async function runDevicesAdd(ctx: CommandContext): Promise<number> {
  const os = str(ctx.values, 'os');
  const assetTag = str(ctx.values, 'asset-tag');
  if (!os) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--os is required (linux, macos or windows)');
  if (!assetTag) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--asset-tag is required');
  const enroll = Boolean(ctx.values.enroll);
  const ttl = ttlOf(ctx, 'enroll-ttl');
  if (ttl !== undefined && !enroll) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--enroll-ttl needs --enroll');
  }
  const { api } = openSession(ctx);
  const res = await api.addDevice({
    os_type: os,
    asset_tag: assetTag,
    enroll,
    ...(ttl !== undefined ? { enroll_ttl_ms: ttl } : {}),
  });
  const dev = res.device as DeviceLike;
  ctx.stdout.write(
    `Device ${label(dev.spec?.asset_tag ?? assetTag, dev.spec?.os_type)} added to the inventory\n`,
  );
  if (res.enroll_token) printToken(ctx, res.enroll_token);
  return 0;
}

export async function runDevicesLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const { api } = openSession(ctx);
  const { items } = await api.listResources('device');
  if (format !== 'text') ctx.stdout.write(formatData(items, format));
  else if (items.length === 0) ctx.stdout.write('No devices found\n');
  else ctx.stdout.write(devicesTable(items));
  return 0;
}

export async function runDevicesRm(ctx: CommandContext): Promise<number> {
  const ref = deviceRef(ctx);
  const { api } = openSession(ctx);
  await api.deleteResource('device', ref);
  ctx.stdout.write(`Device "${ref}" removed\n`);
  return 0;
}

export async function runDevicesEnroll(ctx: CommandContext): Promise<number> {
  const ref = deviceRef(ctx);
  const ttl = ttlOf(ctx, 'ttl');
  const { api } = openSession(ctx);
  printToken(
    ctx,
    await api.createDeviceEnrollToken({ device: ref, ...(ttl !== undefined ? { ttl_ms: ttl } : {}) }),
  );
  return 0;
}

export async function runDevicesLock(ctx: CommandContext): Promise<number> {
  const ref = deviceRef(ctx);
  const ttl = str(ctx.values, 'ttl');
  const expires = str(ctx.values, 'expires');
  if (ttl && expires) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'use --ttl or --expires, not both');
  if (expires && Number.isNaN(Date.parse(expires))) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid --expires "${expires}": expected an RFC3339 time`,
    );
  }
  const ttlMs = ttl ? parseDuration(ttl, '--ttl') : undefined;
  const session = openSession(ctx);
  const { api } = session;
  // Resolve an asset tag to the device ID: locks target device IDs.
  const device = (await api.getResource('device', ref)).resource as DeviceLike;
  const id = device.metadata?.name ?? ref;
  const res = await api.createLock({
    target: { device: id },
    message: str(ctx.values, 'message'),
    ttl_ms: ttlMs,
    expires: expires ? new Date(expires).toISOString() : undefined,
  });
  await printLockCreated(ctx, res, session);
  return 0;
}

/** Column names an MDM or inventory export may use, for each field `devices import` reads. */
const IMPORT_COLUMNS: Record<'asset_tag' | 'os' | 'owner', readonly string[]> = {
  asset_tag: ['asset_tag', 'asset tag', 'serial_number', 'serial number', 'serial'],
  os: ['os', 'os_type', 'platform', 'operating system'],
  owner: ['owner', 'user', 'username', 'assigned_user', 'assigned user'],
};

/** Splits one CSV line (RFC 4180 quotes: `"a,b"`, `""` for a quote). */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

/** The OS words exports use, as Warden's OS types. */
function osType(text: string): string {
  const t = text.toLowerCase();
  if (t === 'mac' || t === 'macos' || t === 'darwin' || t === 'os x' || t === 'osx') return 'macos';
  if (t.startsWith('windows')) return 'windows';
  if (t === 'linux' || t === 'ubuntu' || t === 'debian') return 'linux';
  return t;
}

interface ImportRow {
  line: number;
  asset_tag: string;
  os: string;
  owner: string;
  outcome: 'added' | 'already registered' | 'error';
  detail?: string;
}

/**
 * `wctl devices import FILE.csv`: registers every row's device (asset tag, OS, owner),
 * idempotent — a device already in the inventory is reported, not changed — and reports
 * each row. Exits 1 when a row failed.
 */
export async function runDevicesImport(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const file = ctx.positionals[0]!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `cannot read ${file}: ${(e as Error).message}`);
  }
  const lines = text.split(/\r?\n/);
  const header = csvFields(lines[0] ?? '').map((h) => h.toLowerCase());
  const col = (field: keyof typeof IMPORT_COLUMNS) =>
    header.findIndex((h) => IMPORT_COLUMNS[field].includes(h));
  const [tagCol, osCol, ownerCol] = [col('asset_tag'), col('os'), col('owner')];
  if (tagCol < 0 || osCol < 0)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `${file}: the first line must name the columns, with at least asset_tag (or serial_number) and os ` +
        `(found: ${header.join(', ') || 'nothing'})`,
    );
  const { api } = openSession(ctx);
  const rows: ImportRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i]!.trim() === '') continue;
    const f = csvFields(lines[i]!);
    const row: ImportRow = {
      line: i + 1,
      asset_tag: f[tagCol] ?? '',
      os: osType(f[osCol] ?? ''),
      owner: ownerCol >= 0 ? (f[ownerCol] ?? '') : '',
      outcome: 'added',
    };
    try {
      await api.addDevice({
        os_type: row.os,
        asset_tag: row.asset_tag,
        ...(row.owner ? { owner: row.owner } : {}),
      });
    } catch (e) {
      if (isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS')) row.outcome = 'already registered';
      else {
        row.outcome = 'error';
        row.detail = (e as Error).message;
      }
    }
    rows.push(row);
  }
  if (format !== 'text') ctx.stdout.write(formatData(rows, format));
  else if (rows.length === 0) ctx.stdout.write(`${file} has no device rows\n`);
  else {
    ctx.stdout.write(
      table(
        ['Line', 'Asset Tag', 'OS', 'Owner', 'Outcome'],
        rows.map((r) => [
          String(r.line),
          r.asset_tag,
          r.os,
          r.owner,
          r.detail ? `error: ${r.detail}` : r.outcome,
        ]),
      ),
    );
    const n = (o: ImportRow['outcome']) => rows.filter((r) => r.outcome === o).length;
    ctx.stdout.write(
      `${n('added')} added, ${n('already registered')} already registered, ${n('error')} failed\n`,
    );
  }
  return rows.some((r) => r.outcome === 'error') ? 1 : 0;
}
