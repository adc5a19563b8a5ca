/**
 * Test-only: a software "TPM" that makes what a real TPM makes for the device ceremonies —
 * an RSA-2048 EK (TCG template L-1, with an optional EK certificate from a test CA), an ECC
 * P-256 AK with its creation data and a TPM2_CertifyCreation by itself, ActivateCredential
 * (written out from the spec) and quotes over PCR values — so the server's verification can be
 * tested without swtpm. The real thing is tested under test/devicetrust/ against swtpm.
 * A test double (no real TPM runs in a unit test). Who may import: `*.test.ts` files.
 */
import 'reflect-metadata';
import {
  constants,
  createDecipheriv,
  createHash,
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  randomBytes,
  sign,
  webcrypto,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { rpc } from '@warden/api';
import {
  AK_ATTRIBUTES,
  akTemplate,
  bytesEqual,
  concatBytes,
  decodeIdObject,
  ekTemplate,
  encodeAttest,
  encodeCreationData,
  encodePublic,
  encodeSignature,
  hashName,
  kdfa,
  objectName,
  type PcrSelection,
  pcrDigest,
  Reader,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST,
  type TpmtPublic,
} from '@warden/tpm';
import { tpmEccPoint } from './p256-keys';

type PeculiarCrypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
const crypto = webcrypto as unknown as PeculiarCrypto;

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

/** A test CA for EK certificates (ECDSA P-256, self-signed). */
export interface TestEkCa {
  pem: string;
  /** The CA certificate, DER (what a TPM's EK certificate chain NV index holds). */
  der: Uint8Array;
  /** Signs an EK certificate for an RSA public key. */
  issue(ekPublic: KeyObject, opts?: { notAfter?: Date }): Promise<Uint8Array>;
}

export async function createTestEkCa(name = 'Test TPM Manufacturer CA'): Promise<TestEkCa> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as {
    privateKey: x509.X509CertificateCreateWithKeyParams['signingKey'];
    publicKey: x509.X509CertificateCreateWithKeyParams['signingKey'];
  };
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: `CN=${name}`,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + 10 * 365 * 86400_000),
      keys: keys as never,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  return {
    pem: ca.toString('pem'),
    der: new Uint8Array(ca.rawData),
    async issue(ekPublic, opts = {}) {
      const spki = ekPublic.export({ type: 'spki', format: 'der' });
      const publicKey = await crypto.subtle.importKey(
        'spki',
        spki,
        { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        true,
        ['verify'],
      );
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: randomBytes(8)
            .toString('hex')
            .replace(/^[89a-f]/, '1'),
          subject: '',
          issuer: ca.subject,
          notBefore: new Date(now - 3600_000),
          notAfter: opts.notAfter ?? new Date(now + 5 * 365 * 86400_000),
          publicKey: publicKey as never,
          signingKey: keys.privateKey,
          signingAlgorithm: alg,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.ExtendedKeyUsageExtension(['2.23.133.8.1']),
          ],
        },
        crypto,
      );
      return new Uint8Array(cert.rawData);
    },
  };
}

/**
 * The key fields of a device credential as the enrollment ceremony records them: a fresh
 * P-256 AK's TPMT_PUBLIC (`ak_public`) and its SubjectPublicKeyInfo (`public_key_der`), base64.
 * For tests that store credentials without running the ceremony.
 */
export function akCredentialKeys(): { public_key_der: string; ak_public: string } {
  const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const akPublic = { ...akTemplate('ecc'), unique: tpmEccPoint(ak.publicKey) } as TpmtPublic;
  return {
    public_key_der: ak.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    ak_public: Buffer.from(encodePublic(akPublic)).toString('base64'),
  };
}

/** A software TPM for one simulated device. */
export class SoftTpm {
  readonly ek: { public: TpmtPublic; key: KeyObject; private: KeyObject };
  readonly ak: { public: TpmtPublic; private: KeyObject; creationData: Uint8Array };
  /** PCR values (SHA-256 bank) this TPM reports. */
  readonly pcrs = new Map<number, Uint8Array>();

  constructor(opts: { akAttributes?: number } = {}) {
    const ek = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = new Uint8Array(Buffer.from(ek.publicKey.export({ format: 'jwk' }).n!, 'base64url'));
    this.ek = {
      public: { ...ekTemplate('rsa'), unique: n } as TpmtPublic,
      key: ek.publicKey,
      private: ek.privateKey,
    };
    const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const akPublic: TpmtPublic = {
      ...akTemplate('ecc'),
      objectAttributes: opts.akAttributes ?? AK_ATTRIBUTES,
      unique: tpmEccPoint(ak.publicKey),
    } as TpmtPublic;
    const creationData = encodeCreationData({
      pcrSelect: [],
      pcrDigest: new Uint8Array(0),
      locality: 0,
      parentNameAlg: TPM_ALG.SHA256,
      parentName: new Uint8Array([0, 0x0b, ...randomBytes(32)]),
      parentQualifiedName: new Uint8Array([0, 0x0b, ...randomBytes(32)]),
      outsideInfo: new Uint8Array(0),
    });
    this.ak = { public: akPublic, private: ak.privateKey, creationData };
    for (let i = 0; i < 24; i++) this.pcrs.set(i, new Uint8Array(32).fill(i));
  }

  /** ECDSA P-256 signature of the AK, as a TPMT_SIGNATURE. */
  #sign(data: Uint8Array): Uint8Array {
    const rs = sign('sha256', data, { key: this.ak.private, dsaEncoding: 'ieee-p1363' });
    return encodeSignature({
      sigAlg: TPM_ALG.ECDSA,
      hash: TPM_ALG.SHA256,
      r: rs.subarray(0, 32),
      s: rs.subarray(32),
    });
  }

  #attest(type: number, extraData: Uint8Array, body: object): Uint8Array {
    return encodeAttest({
      magic: TPM_GENERATED_VALUE,
      type,
      qualifiedSigner: objectName(this.ak.public),
      extraData,
      clockInfo: { clock: 1000n, resetCount: 0, restartCount: 0, safe: true },
      firmwareVersion: 1n,
      ...body,
    });
  }

  /** The `ek` and `ak` of an enrollment request. */
  enrollInit(
    opts: { certDer?: Uint8Array; chainDer?: Uint8Array[] } = {},
  ): Pick<rpc.DeviceEnrollBeginRequest, 'ek' | 'ak'> {
    const creationHash = createHash('sha256').update(this.ak.creationData).digest();
    const attest = this.#attest(TPM_ST.ATTEST_CREATION, new Uint8Array(0), {
      creation: { objectName: objectName(this.ak.public), creationHash: new Uint8Array(creationHash) },
    });
    return {
      ek: {
        public: b64(encodePublic(this.ek.public)),
        ...(opts.certDer ? { cert_der: b64(opts.certDer) } : {}),
        ...(opts.chainDer ? { chain_der: opts.chainDer.map(b64) } : {}),
      },
      ak: {
        public: b64(encodePublic(this.ak.public)),
        creation_data: b64(this.ak.creationData),
        creation_attest: b64(attest),
        creation_signature: b64(this.#sign(attest)),
      },
    };
  }

  /** TPM2_ActivateCredential with this EK for an object called `name` (default: the AK). */
  activate(
    challenge: rpc.DeviceEnrollBeginResponse['challenge'],
    name = objectName(this.ak.public),
  ): Uint8Array {
    const blob = decodeIdObject(unb64(challenge.credential_blob));
    const seed = new Uint8Array(
      privateDecrypt(
        {
          key: this.ek.private,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: 'sha256',
          oaepLabel: Buffer.from('IDENTITY\0'),
        },
        unb64(challenge.secret),
      ),
    );
    const empty = new Uint8Array(0);
    const hmacKey = kdfa(TPM_ALG.SHA256, seed, 'INTEGRITY', empty, empty, 256);
    const expected = new Uint8Array(
      createHmac(hashName(TPM_ALG.SHA256), hmacKey).update(concatBytes(blob.encIdentity, name)).digest(),
    );
    if (!bytesEqual(expected, blob.integrityHmac)) throw new Error('TPM_RC_INTEGRITY');
    const symKey = kdfa(TPM_ALG.SHA256, seed, 'STORAGE', name, empty, 128);
    const d = createDecipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
    const plain = new Uint8Array(Buffer.concat([d.update(blob.encIdentity), d.final()]));
    return new Reader(plain).tpm2b();
  }

  /**
   * The finish of an enrollment this TPM began: what ActivateCredential releases for the AK,
   * and a quote over the server's nonce and PCR selection.
   */
  finishRequest(begin: rpc.DeviceEnrollBeginResponse): rpc.DeviceEnrollFinishRequest {
    return {
      session_id: begin.session_id,
      solution: b64(this.activate(begin.challenge)),
      quote: this.quote(unb64(begin.nonce), begin.pcr_selection),
    };
  }

  /**
   * The whole enrollment ceremony with this TPM, as `wsh device enroll` runs it: begin with
   * `req` and this TPM's EK and AK, then finish; what finish returns.
   */
  async enroll<F>(
    enrollment: {
      begin(req: rpc.DeviceEnrollBeginRequest): Promise<rpc.DeviceEnrollBeginResponse>;
      finish(req: rpc.DeviceEnrollFinishRequest): Promise<F>;
    },
    req: Omit<rpc.DeviceEnrollBeginRequest, 'ek' | 'ak'>,
  ): Promise<F> {
    const begin = await enrollment.begin({ ...req, ...this.enrollInit() });
    return enrollment.finish(this.finishRequest(begin));
  }

  /**
   * The finish of a device authentication (at login, or for a web session) with this TPM's
   * enrolled device: a quote over the server's nonce and PCR selection, and the user's key
   * (`signer`, the one in the certificate) signing nonce and session.
   */
  authnFinishRequest(begin: rpc.DeviceAuthnBeginResponse, signer: KeyObject): rpc.DeviceAuthnFinishRequest {
    const nonce = unb64(begin.nonce);
    return {
      session_id: begin.session_id,
      quote: this.quote(nonce, begin.pcr_selection),
      ssh_signature: b64(sign('sha256', rpc.deviceAuthnSignedData(nonce, begin.session_id), signer)),
    };
  }

  /** A quote by the AK over `nonce` and the selected PCRs. */
  quote(nonce: Uint8Array, selection: PcrSelection[] | rpc.PcrSelection): rpc.TpmQuote {
    const values = selection.flatMap((s) =>
      s.pcrs.map((pcr) => ({ hash: s.hash, pcr, digest: this.pcrs.get(pcr)! })),
    );
    const attest = this.#attest(TPM_ST.ATTEST_QUOTE, nonce, {
      quote: { pcrSelect: selection, pcrDigest: pcrDigest(TPM_ALG.SHA256, selection, values) },
    });
    return {
      attest: b64(attest),
      signature: b64(this.#sign(attest)),
      pcrs: values.map((v) => ({ hash: v.hash, pcr: v.pcr, digest: b64(v.digest) })),
    };
  }
}
