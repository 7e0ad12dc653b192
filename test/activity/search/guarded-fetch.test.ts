// The request-forgery guard for URLs found in search results. Refusals happen before any socket
// opens (IP literals, loopback names) or in the connect-time lookup (names resolving inward), so
// these tests send no traffic to 10.x or 169.254.169.254.
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import {
  AllowList,
  blockedAddressReason,
  BlockedUrlError,
  guardedFetch,
} from '../../../activities/net/guarded-fetch.js';
import { BadInputError, TransientError } from '../../../activities/errors.js';
import { startServer, type LocalServer, type Reply } from '../../servers/http-server.js';

function isBlocked(url: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof BlockedUrlError, `expected BlockedUrlError, got ${String(err)}`);
    assert.equal(err.retryable, false);
    assert.match(err.message, pattern);
    assert.ok(err.message.includes(url), `message names the URL: ${err.message}`);
    return true;
  };
}

void describe('guardedFetch', () => {
  let server: LocalServer;
  let port: string;
  before(async () => {
    server = await startServer((req): Reply => {
      if (req.path === '/img')
        return { headers: { 'content-type': 'image/png' }, body: Buffer.from('png-bytes') };
      if (req.path === '/html') return { headers: { 'content-type': 'text/html' }, body: '<p>hi</p>' };
      if (req.path === '/big') return { headers: { 'content-type': 'image/png' }, body: Buffer.alloc(5000) };
      if (req.path === '/slow') return { headers: { 'content-type': 'image/png' }, body: 'x', delayMs: 2000 };
      if (req.path === '/redirect-inward')
        return { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } };
      if (req.path === '/redirect-ok') return { status: 301, headers: { location: '/img' } };
      return { status: 404 };
    });
    port = new URL(server.url).port;
  });
  after(() => server.close());

  for (const [url, why] of [
    ['http://127.0.0.1/x', /loopback/],
    ['http://localhost:8080/x', /loopback name/],
    ['http://api.localhost/x', /loopback name/],
    ['http://10.1.2.3/x', /private/],
    ['http://192.168.0.10/x', /private/],
    ['http://172.16.5.4/x', /private/],
    ['http://169.254.169.254/latest/meta-data/', /cloud metadata/],
    ['http://[::1]/x', /loopback/],
    ['http://[::ffff:127.0.0.1]/x', /loopback/],
    ['http://[fd00:ec2::254]/x', /uniqueLocal/],
    ['http://0.0.0.0/x', /unspecified/],
    ['http://2130706433/x', /loopback/], // 127.0.0.1 written as one integer
  ] as const) {
    void it(`refuses ${url}`, async () => {
      await assert.rejects(guardedFetch(url), isBlocked(url, why));
    });
  }

  void it('refuses non-http schemes and URLs with credentials', async () => {
    await assert.rejects(guardedFetch('file:///etc/passwd'), /scheme file: is not http or https/);
    await assert.rejects(guardedFetch('http://user:pw@example.com/'), /credentials/);
    await assert.rejects(guardedFetch('not a url'), /not a valid absolute URL/);
  });

  void it('refuses a name that resolves to a loopback address, at connect time', async (t) => {
    const name = hostname();
    const resolved = await lookup(name).catch(() => undefined);
    if (!resolved || !blockedAddressReason(resolved.address, new AllowList())) {
      t.skip(`${name} does not resolve to a non-public address here`);
      return;
    }
    await assert.rejects(guardedFetch(`http://${name}:${port}/img`), (err: unknown) => {
      assert.ok(err instanceof BlockedUrlError);
      assert.match(err.message, new RegExp(`${name} resolves to`));
      return true;
    });
    assert.equal(server.requests.filter((r) => r.path === '/img').length, 0, 'no request reached the server');
  });

  void it('fetches an allowed address, follows a checked redirect, checks content type', async () => {
    const allow = ['127.0.0.1/32'];
    const res = await guardedFetch(`${server.url}/redirect-ok`, { allow, accept: ['image/'] });
    assert.equal(res.body.toString(), 'png-bytes');
    assert.equal(res.url, `${server.url}/img`);
    await assert.rejects(
      guardedFetch(`${server.url}/html`, { allow, accept: ['image/'] }),
      (err: unknown) => {
        assert.ok(err instanceof BadInputError);
        assert.match(err.message, /content type "text\/html", expected one of image\//);
        return true;
      },
    );
  });

  void it('checks every redirect hop: an allowed server cannot redirect to the metadata address', async () => {
    await assert.rejects(
      guardedFetch(`${server.url}/redirect-inward`, { allow: ['127.0.0.1/32'] }),
      isBlocked('http://169.254.169.254/latest/meta-data/', /cloud metadata/),
    );
  });

  void it('enforces the size and time limits', async () => {
    await assert.rejects(
      guardedFetch(`${server.url}/big`, { allow: ['127.0.0.1'], maxBytes: 1000 }),
      /over the limit of 1000|more than 1000 bytes/,
    );
    await assert.rejects(
      guardedFetch(`${server.url}/slow`, { allow: ['127.0.0.1'], timeoutMs: 200 }),
      (err: unknown) => {
        assert.ok(err instanceof TransientError);
        assert.match(err.message, /longer than 200 ms/);
        return true;
      },
    );
  });

  void it('rejects an invalid allow entry by name', () => {
    assert.throws(
      () => new AllowList(['10.0.0.0/99']),
      /search\.fetch\.allow entry "10\.0\.0\.0\/99" is not a valid CIDR/,
    );
  });
});
