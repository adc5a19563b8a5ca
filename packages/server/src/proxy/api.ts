/**
 * The RPC routes of the proxy's HTTPS API, each a thin call into the auth service.
 */
import { parseResourceRef, rpc, WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Identity } from '../access';
import type { AuthServer } from '../auth';
import type { DeviceAuthentication, DeviceEnrollment } from '../devicetrust';
import type { RequestContext, Route } from './router';

const R = rpc.Routes;

/** The caller of a route with `auth: 'user'` (the router set its `clientAddr`). */
function caller(ctx: RequestContext<unknown>): Identity {
  if (!ctx.identity) throw new WardenError('WARDEN_ERR_NOT_LOGGED_IN');
  return ctx.identity;
}

function kindOf(word: string) {
  const ref = parseResourceRef(word);
  return ref.kind;
}

export interface ApiDeps {
  /** Nodes the caller may reach (with at least one login). */
  listNodes(identity: Identity): Promise<unknown[]>;
  /** Databases the caller may reach (`DbService.listFor`); absent when no db_service runs. */
  listDbs?(identity: Identity): Promise<unknown[]>;
  /** Kubernetes clusters the caller may reach (`KubeService.listFor`); absent when no kube_service runs. */
  listKubeClusters?(identity: Identity): Promise<unknown[]>;
  /** Issues kube client certificates (`KubeCerts.issue`); absent when no kube_service runs. */
  issueKubeCert?(
    identity: Identity,
    publicKeyPem: string,
    cluster?: string,
    lifetime?: 'short' | 'login',
  ): Promise<{ certPem: string; notAfter: Date }>;
  /** The device trust ceremonies (enrollment and authentication at login). */
  deviceTrust?: { enrollment: DeviceEnrollment; authentication: DeviceAuthentication };
  /** Web apps (`bin/app.ts`): absent when no app_service runs. */
  apps?: {
    /** Apps the caller may reach (`wsh apps ls`). */
    list(identity: Identity): unknown[];
    /** An app certificate for the caller's key (`wsh app login`). */
    login(identity: Identity, app: string): Promise<unknown>;
  };
  /** The `jwt` CA's public keys (`/.well-known/jwks.json`). */
  jwks?(): unknown;
}

function deviceTrust(deps: ApiDeps): NonNullable<ApiDeps['deviceTrust']> {
  if (!deps.deviceTrust)
    throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'device trust is not served here');
  return deps.deviceTrust;
}

export function apiRoutes(auth: AuthServer, deps: ApiDeps): Route[] {
  const route = <B>(
    r: Omit<Route, 'handler'> & { handler(ctx: RequestContext<B>): Promise<unknown> },
  ): Route => r as unknown as Route;
  return [
    route({ method: 'GET', path: R.ping, auth: 'none', handler: () => auth.ping() }),
    route<z.infer<typeof rpc.SignupBeginRequest>>({
      method: 'POST',
      path: R.signupBegin,
      auth: 'none',
      body: rpc.SignupBeginRequest,
      handler: (ctx) => auth.signupBegin(ctx.body.token),
    }),
    route<z.infer<typeof rpc.SignupFinishRequest>>({
      method: 'POST',
      path: R.signupFinish,
      auth: 'none',
      body: rpc.SignupFinishRequest,
      handler: (ctx) => auth.signupFinish(ctx.body, ctx.addr),
    }),
    route<rpc.LoginRequest>({
      method: 'POST',
      path: R.login,
      auth: 'none',
      body: rpc.LoginRequest,
      handler: (ctx) => auth.login(ctx.body, ctx.addr),
    }),
    route<z.infer<typeof rpc.BotJoinRequest>>({
      method: 'POST',
      path: R.botJoin,
      auth: 'none',
      body: rpc.BotJoinRequest,
      handler: (ctx) => auth.joinBot(ctx.body, ctx.addr),
    }),
    route<z.infer<typeof rpc.BotRenewRequest>>({
      method: 'POST',
      path: R.botRenew,
      auth: 'user',
      body: rpc.BotRenewRequest,
      handler: (ctx) => auth.renewBot(caller(ctx), ctx.body),
    }),
    route<z.infer<typeof rpc.AddBotRequest>>({
      method: 'POST',
      path: R.bots,
      auth: 'user',
      body: rpc.AddBotRequest,
      handler: (ctx) => auth.addBot(caller(ctx), ctx.body),
    }),
    route({
      method: 'GET',
      path: R.bots,
      auth: 'user',
      handler: async (ctx) => ({ items: await auth.listBots(caller(ctx)) }),
    }),
    route({
      method: 'DELETE',
      path: `${R.bots}/:name`,
      auth: 'user',
      handler: async (ctx) => {
        await auth.removeBot(caller(ctx), ctx.params.name!);
        return {};
      },
    }),
    route({
      method: 'GET',
      path: R.tokens,
      auth: 'user',
      handler: async (ctx) => ({ items: await auth.listTokens(caller(ctx)) }),
    }),
    route({
      method: 'DELETE',
      path: `${R.tokens}/:id`,
      auth: 'user',
      handler: async (ctx) => ({ removed: await auth.deleteToken(caller(ctx), ctx.params.id!) }),
    }),
    route({
      method: 'GET',
      path: R.whoami,
      auth: 'user',
      handler: async (ctx) => {
        const id = caller(ctx);
        return { user: id.user, roles: id.roles, logins: id.logins };
      },
    }),
    route({
      method: 'GET',
      path: `${R.resources}/:kind`,
      auth: 'user',
      handler: async (ctx) => ({ items: await auth.listResources(caller(ctx), kindOf(ctx.params.kind!)) }),
    }),
    route({
      method: 'GET',
      path: `${R.resources}/:kind/:name`,
      auth: 'user',
      handler: async (ctx) => ({
        resource: await auth.getResource(caller(ctx), kindOf(ctx.params.kind!), ctx.params.name!),
      }),
    }),
    route<z.infer<typeof rpc.CreateResourceRequest>>({
      method: 'POST',
      path: R.resources,
      auth: 'user',
      body: rpc.CreateResourceRequest,
      handler: (ctx) =>
        auth.putResource(caller(ctx), ctx.body.resource, {
          force: ctx.body.force,
          expectedRevision: ctx.body.expected_revision,
        }),
    }),
    route({
      method: 'DELETE',
      path: `${R.resources}/:kind/:name`,
      auth: 'user',
      handler: async (ctx) => {
        await auth.deleteResource(caller(ctx), kindOf(ctx.params.kind!), ctx.params.name!);
        return {};
      },
    }),
    route<z.infer<typeof rpc.AddUserRequest>>({
      method: 'POST',
      path: R.users,
      auth: 'user',
      body: rpc.AddUserRequest,
      handler: (ctx) => auth.addUser(caller(ctx), ctx.body),
    }),
    route({
      method: 'POST',
      path: `${R.users}/:name/reset`,
      auth: 'user',
      handler: (ctx) => auth.resetUser(caller(ctx), ctx.params.name!),
    }),
    route<z.infer<typeof rpc.CreateLockRequest>>({
      method: 'POST',
      path: R.locks,
      auth: 'user',
      body: rpc.CreateLockRequest,
      handler: (ctx) => auth.createLock(caller(ctx), ctx.body),
    }),
    route<z.infer<typeof rpc.AddDeviceRequest>>({
      method: 'POST',
      path: R.devices,
      auth: 'user',
      body: rpc.AddDeviceRequest,
      handler: (ctx) => auth.addDevice(caller(ctx), ctx.body),
    }),
    route<z.infer<typeof rpc.DeviceEnrollTokenRequest>>({
      method: 'POST',
      path: R.deviceTokens,
      auth: 'user',
      body: rpc.DeviceEnrollTokenRequest,
      handler: (ctx) => auth.createDeviceEnrollToken(caller(ctx), ctx.body),
    }),
    // Device trust: enrollment is authenticated by its token (a certificate, when sent, names
    // the owner); device authentication needs the user's fresh certificate.
    route<rpc.DeviceEnrollBeginRequest>({
      method: 'POST',
      path: R.deviceEnrollBegin,
      auth: 'optional',
      body: rpc.DeviceEnrollBeginRequest,
      handler: (ctx) =>
        deviceTrust(deps).enrollment.begin(ctx.body, ctx.identity ?? { clientAddr: ctx.addr }),
    }),
    route<rpc.DeviceEnrollFinishRequest>({
      method: 'POST',
      path: R.deviceEnrollFinish,
      auth: 'optional',
      body: rpc.DeviceEnrollFinishRequest,
      handler: (ctx) =>
        deviceTrust(deps).enrollment.finish(ctx.body, ctx.identity ?? { clientAddr: ctx.addr }),
    }),
    route<rpc.DeviceAuthnBeginRequest>({
      method: 'POST',
      path: R.deviceAuthnBegin,
      auth: 'user',
      body: rpc.DeviceAuthnBeginRequest,
      handler: (ctx) => deviceTrust(deps).authentication.begin(caller(ctx), ctx.body),
    }),
    route<rpc.DeviceAuthnFinishRequest>({
      method: 'POST',
      path: R.deviceAuthnFinish,
      auth: 'user',
      body: rpc.DeviceAuthnFinishRequest,
      handler: (ctx) => deviceTrust(deps).authentication.finish(caller(ctx), ctx.body),
    }),
    route<z.infer<typeof rpc.SignHostRequest>>({
      method: 'POST',
      path: `${R.authorities}/host/sign`,
      auth: 'user',
      body: rpc.SignHostRequest,
      handler: (ctx) => auth.signHost(caller(ctx), ctx.body),
    }),
    route({
      method: 'GET',
      path: R.nodes,
      auth: 'user',
      handler: async (ctx) => ({ items: await deps.listNodes(caller(ctx)) }),
    }),
    route({
      method: 'GET',
      path: R.dbs,
      auth: 'user',
      handler: async (ctx) => {
        const identity = caller(ctx);
        if (!deps.listDbs) return { items: [] };
        return { items: await deps.listDbs(identity) };
      },
    }),
    route({
      method: 'GET',
      path: R.apps,
      auth: 'user',
      handler: async (ctx) => ({ items: deps.apps ? deps.apps.list(caller(ctx)) : [] }),
    }),
    route<z.infer<typeof rpc.AppLoginRequest>>({
      method: 'POST',
      path: R.appLogin,
      auth: 'user',
      body: rpc.AppLoginRequest,
      handler: async (ctx) => {
        const identity = caller(ctx);
        if (!deps.apps)
          throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no app_service runs behind this proxy');
        return deps.apps.login(identity, ctx.body.app);
      },
    }),
    route({
      method: 'GET',
      path: R.jwks,
      auth: 'none',
      handler: async () => {
        if (!deps.jwks) throw new WardenError('WARDEN_ERR_NOT_FOUND', 'no JWT keys are published here');
        return deps.jwks();
      },
    }),
    route({
      method: 'GET',
      path: R.kubeClusters,
      auth: 'user',
      handler: async (ctx) => {
        const identity = caller(ctx);
        if (!deps.listKubeClusters) return { items: [] };
        return { items: await deps.listKubeClusters(identity) };
      },
    }),
    route<z.infer<typeof rpc.KubeCertRequest>>({
      method: 'POST',
      path: R.kubeCerts,
      auth: 'user',
      body: rpc.KubeCertRequest,
      handler: async (ctx) => {
        if (!deps.issueKubeCert)
          throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no kube_service runs behind this proxy');
        const issued = await deps.issueKubeCert(
          caller(ctx),
          ctx.body.public_key,
          ctx.body.cluster,
          ctx.body.lifetime,
        );
        return { cert_pem: issued.certPem, expires: issued.notAfter.toISOString() };
      },
    }),
    route<z.infer<typeof rpc.SignDbRequest>>({
      method: 'POST',
      path: `${R.authorities}/db/sign`,
      auth: 'user',
      body: rpc.SignDbRequest,
      handler: (ctx) => auth.signDb(caller(ctx), ctx.body),
    }),
    route({
      method: 'GET',
      path: `${R.authorities}/:type/export`,
      auth: 'user',
      handler: async (ctx) => auth.exportAuthority(ctx.params.type!),
    }),
    route({
      method: 'GET',
      path: R.audit,
      auth: 'user',
      handler: async (ctx) => {
        const q = ctx.query;
        const limit = q.get('limit') ? Number(q.get('limit')) : undefined;
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10_000)) {
          throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'limit must be a whole number from 1 to 10000');
        }
        for (const t of ['from', 'to']) {
          const v = q.get(t);
          if (v && Number.isNaN(Date.parse(v)))
            throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid ${t} time "${v}"`);
        }
        return {
          events: await auth.searchAudit(caller(ctx), {
            from: q.get('from') ?? undefined,
            to: q.get('to') ?? undefined,
            types: q.getAll('type'),
            user: q.get('user') ?? undefined,
            limit,
          }),
        };
      },
    }),
  ];
}
