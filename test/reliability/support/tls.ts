import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

/** PEM files of a throw-away CA and a server certificate it signed for 127.0.0.1 / localhost. */
export interface Pki {
  readonly caFile: string;
  readonly ca: string;
  readonly keyFile: string;
  readonly key: string;
  readonly certFile: string;
  readonly cert: string;
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

/**
 * Generates, in `dir`, a CA (P-256, valid 2 days) and a server certificate it signs for
 * IP:127.0.0.1 and DNS:localhost, with the `openssl` command line tool. Made at test time so no
 * private key is committed and nothing expires in the repository.
 */
export function makePki(dir: string, name = 'peerlb-test'): Pki {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    [
      'req', '-x509', ...ec, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '2',
      '-subj', `/CN=${name} CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  openssl(['req', ...ec, '-keyout', `${name}-server.key`, '-out', `${name}-server.csr`, '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(
    join(dir, `${name}-server.ext`),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    [
      'x509', '-req', '-in', `${name}-server.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial',
      '-out', `${name}-server.pem`, '-days', '2', '-extfile', `${name}-server.ext`,
    ],
    dir,
  );
  const caFile = join(dir, `${name}-ca.pem`);
  const keyFile = join(dir, `${name}-server.key`);
  const certFile = join(dir, `${name}-server.pem`);
  return {
    caFile,
    ca: readFileSync(caFile, 'utf8'),
    keyFile,
    key: readFileSync(keyFile, 'utf8'),
    certFile,
    cert: readFileSync(certFile, 'utf8'),
  };
}

/** TLS in front of a plain TCP service on 127.0.0.1 (the Consul double speaks plain HTTP). */
export interface TlsTerminator {
  readonly port: number;
  readonly url: string;
  /** TLS sessions completed. */
  readonly handshakes: number;
  close(): Promise<void>;
}

export async function startTlsTerminator(pki: Pki, upstreamPort: number): Promise<TlsTerminator> {
  let handshakes = 0;
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: pki.key, cert: pki.cert }, (tlsSocket: TLSSocket) => {
    handshakes++;
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
