// A TCP relay in front of a real server whose link can be cut: `cut()` drops every open
// connection and refuses new ones (ECONNREFUSED, as when the server is down), `restore()` accepts
// them again on the same port. Tests put it between a worker and the dev stack's S3 to make an
// outage for one worker without stopping the S3 server the other tests share. Hand-written on
// node:net (about 40 lines): toxiproxy does this and more, but needs its own server binary,
// which is not installable here.
import net from 'node:net';

export interface CuttableProxy {
  /** http://127.0.0.1:<port>: the target's URL through the relay. */
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startCuttableProxy(target: string): Promise<CuttableProxy> {
  const t = new URL(target);
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const relay = (client: net.Socket) => {
    const upstream = net.connect(Number(t.port || 80), t.hostname);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  let server: net.Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      if (server) return resolve(); // already accepting
      const s = net.createServer(relay);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    url: `http://127.0.0.1:${port}`,
    cut: stop,
    restore: listen,
    close: stop,
  };
}
