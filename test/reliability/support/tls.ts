import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

/** A certificate and its (unencrypted) key, as PEM files and text. */
export interface Issued {
  readonly keyFile: string;
  readonly key: string;
  readonly certFile: string;
  readonly cert: string;
}

/**
 * PEM files of a throw-away CA and a server certificate it signed for 127.0.0.1 / localhost (the
 * `Issued` fields); `issue` makes more certificates signed by the same CA.
 */
export interface Pki extends Issued {
  readonly caFile: string;
  readonly ca: string;
  /** Signs a new key's certificate with this CA. */
  issue(stem: string, spec: CertSpec): Issued;
}

export interface CertSpec {
  /** Subject common name. */
  cn: string;
  /** subjectAltName value, e.g. `DNS:consul.example.test` or `IP:127.0.0.1,DNS:localhost`. */
  san?: string;
  /** `serverAuth` for an agent, `clientAuth` for a client certificate. */
  usage: 'serverAuth' | 'clientAuth';
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether the `openssl` command line tool can be run here (Debian's openssl package is enough). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Generates, in `dir`, a CA (P-256, valid 2 days) and a server certificate it signs for
 * IP:127.0.0.1 and DNS:localhost, with the `openssl` command line tool. Made at test time so no
 * private key is committed and nothing expires in the repository.
 */
export function makePki(dir: string, name = 'peerlb-test'): Pki {
  openssl(
    [
      'req', '-x509', ...EC_KEY, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '2',
      '-subj', `/CN=${name} CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  const issue = (stem: string, spec: CertSpec): Issued => {
    const base = `${name}-${stem}`;
    openssl(['req', ...EC_KEY, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${spec.cn}`], dir);
    const ext = [
      ...(spec.san === undefined ? [] : [`subjectAltName=${spec.san}`]),
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature',
      `extendedKeyUsage=${spec.usage}`,
    ];
    writeFileSync(join(dir, `${base}.ext`), `${ext.join('\n')}\n`);
    openssl(
      [
        'x509', '-req', '-in', `${base}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial',
        '-out', `${base}.pem`, '-days', '2', '-extfile', `${base}.ext`,
      ],
      dir,
    );
    const keyFile = join(dir, `${base}.key`);
    const certFile = join(dir, `${base}.pem`);
    return { keyFile, key: readFileSync(keyFile, 'utf8'), certFile, cert: readFileSync(certFile, 'utf8') };
  };
  const caFile = join(dir, `${name}-ca.pem`);
  return {
    caFile,
    ca: readFileSync(caFile, 'utf8'),
    ...issue('server', { cn: '127.0.0.1', san: 'IP:127.0.0.1,DNS:localhost', usage: 'serverAuth' }),
    issue,
  };
}

/** TLS in front of a plain TCP service on 127.0.0.1 (the Consul double speaks plain HTTP). */
export interface TlsTerminator {
  readonly port: number;
  readonly url: string;
  /** TLS sessions completed. */
  readonly handshakes: number;
  /** The SNI name of each completed session (`false`: none was sent). */
  readonly serverNames: ReadonlyArray<string | false>;
  /** The subject CN of the client certificate of each completed session, with `requireClientCert`. */
  readonly clientNames: readonly string[];
  close(): Promise<void>;
}

export interface TlsTerminatorOptions {
  /** The certificate to serve instead of the PKI's server certificate (signed by the same CA or not). */
  identity?: Issued;
  /**
   * Demand a client certificate signed by the PKI's CA, as a Consul agent with
   * `verify_incoming_https` does: a client without one never completes a session.
   */
  requireClientCert?: boolean;
}

export async function startTlsTerminator(pki: Pki, upstreamPort: number, options: TlsTerminatorOptions = {}): Promise<TlsTerminator> {
  let handshakes = 0;
  const serverNames: Array<string | false> = [];
  const clientNames: string[] = [];
  const sockets = new Set<Socket>();
  const identity = options.identity ?? pki;
  const mutual = options.requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: pki.ca } : {};
  const server = createTlsServer({ key: identity.key, cert: identity.cert, ...mutual }, (tlsSocket: TLSSocket) => {
    handshakes++;
    serverNames.push(tlsSocket.servername ?? false);
    if (options.requireClientCert) clientNames.push(String(tlsSocket.getPeerCertificate().subject?.CN));
    const upstream = connect(upstreamPort, '127.0.0.1');
    for (const s of [tlsSocket, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        tlsSocket.destroy();
        upstream.destroy();
      });
    }
    tlsSocket.pipe(upstream).pipe(tlsSocket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    get handshakes() {
      return handshakes;
    },
    serverNames,
    clientNames,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
