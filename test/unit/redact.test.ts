import { describe, expect, it } from 'vitest';
import { excerpt, isSecretName, learnSecrets, maskCredentials, Redactor } from '../../src/redact.js';

describe('maskCredentials', () => {
  it('masks the password of DSNs and URLs but keeps the user, host and database', () => {
    expect(maskCredentials('postgresql://soma:hunter2@db:5432/somabrain')).toBe('postgresql://soma:***@db:5432/somabrain');
    expect(maskCredentials('redis://:pw@127.0.0.1:6379/0')).toBe('redis://:***@127.0.0.1:6379/0');
  });
  it('treats a lone user of an http URL as a token, and of a DSN as a role', () => {
    expect(maskCredentials('https://abcdef@host/x')).toBe('https://***@host/x');
    expect(maskCredentials('postgresql://postgres@127.0.0.1/db')).toBe('postgresql://postgres@127.0.0.1/db');
  });
  it('masks key=value secrets of libpq strings and query strings', () => {
    expect(maskCredentials('host=db password=abc user=x')).toBe('host=db password=*** user=x');
    expect(maskCredentials('http://h/?api_key=zzz&a=1')).toBe('http://h/?api_key=***&a=1');
  });
  it('masks secret pairs whose name ends in a secret word (db_password, client_secret, POSTGRES_PASSWORD)', () => {
    expect(maskCredentials('https://auth/t?client_secret=s3cr3t&grant=x')).toBe('https://auth/t?client_secret=***&grant=x');
    expect(maskCredentials('POSTGRES_PASSWORD=hunter2 REDIS_PORT=6379')).toBe('POSTGRES_PASSWORD=*** REDIS_PORT=6379');
    expect(maskCredentials('host=db sslpassword=keypass refresh_token=rt1')).toBe('host=db sslpassword=*** refresh_token=***');
    expect(maskCredentials('max_tokens=5 tokens=7')).toBe('max_tokens=5 tokens=7');
  });
});

describe('Redactor', () => {
  it('masks known secrets everywhere, in encoded forms too, longest first', () => {
    const r = new Redactor();
    r.add('tok-123');
    r.add('tok-123-longer');
    const text = `Bearer tok-123-longer and tok-123 and ${encodeURIComponent('tok-123')} and ${Buffer.from('tok-123').toString('base64')}`;
    expect(r.text(text)).toBe('Bearer *** and *** and *** and ***');
  });
  it('learns the password of a URL and masks it where it appears alone', () => {
    const r = new Redactor();
    r.addFromUrl('postgresql://soma:p%40ss@db/x');
    expect(r.text('auth failed: p@ss')).toBe('auth failed: ***');
  });
  it('learns every secret query parameter of a URL, not only the first', () => {
    const r = new Redactor();
    r.addFromUrl('https://h/x?token=tok-first&password=pw-second&client_secret=cs-third');
    expect(r.text('tok-first pw-second cs-third')).toBe('*** *** ***');
  });
  it('ignores values too short to mask safely', () => {
    const r = new Redactor();
    r.add('a');
    expect(r.text('a cat')).toBe('a cat');
  });
  it('redacts deep values without touching numbers and booleans', () => {
    const r = new Redactor();
    r.add('secret-value');
    expect(r.value({ a: ['x secret-value'], b: { c: 1, d: true } })).toEqual({ a: ['x ***'], b: { c: 1, d: true } });
  });
});

describe('Redactor: every form a server may echo (issue 7)', () => {
  it('masks a DSN password holding an unencoded @ whole, as pg reads it', () => {
    expect(maskCredentials('postgresql://u:pa@rt@host/db')).toBe('postgresql://u:***@host/db');
    const r = new Redactor();
    r.addFromUrl('postgresql://u:pa@rt@host/db');
    expect(r.text('password pa@rt rejected')).toBe('password *** rejected');
  });
  it('learns the credential of an Authorization header, and the decoded user:password of Basic', () => {
    const r = new Redactor();
    learnSecrets(r, { headers: { Authorization: 'Bearer bearer-part-1234' } });
    const basic = Buffer.from('alice:basic-pass-5678').toString('base64');
    learnSecrets(r, { headers: { authorization: `Basic ${basic}` } });
    expect(r.text('echo bearer-part-1234 / basic-pass-5678 / alice:basic-pass-5678 / ' + basic)).toBe('echo *** / *** / *** / ***');
  });
  it('masks every value of a header the config sets, and X-Auth / Cookie by name', () => {
    const r = new Redactor();
    learnSecrets(r, { url: 'http://h', headers: { 'X-Tenant': 'tenant-value-42' } });
    learnSecrets(r, { 'X-Auth': 'xauth-value-42', Cookie: 'sid=cookie-value-42' });
    expect(r.text('tenant-value-42 xauth-value-42 cookie-value-42')).toBe('*** *** ***');
  });
  it('masks JSON-escaped forms, Go-style \\u escapes included', () => {
    const r = new Redactor();
    r.add('p"a\\ss<w>ord');
    const echoed = JSON.stringify({ echo: 'p"a\\ss<w>ord' });
    expect(r.text(echoed)).toBe('{"echo":"***"}');
    expect(r.text('{"echo":"p\\"a\\\\ss\\u003cw\\u003eord"}')).toBe('{"echo":"***"}');
  });
  it('masks a multi-line secret whole, line by line and JSON-escaped', () => {
    const pem = '-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nEEEEFFFFGGGG\n-----END KEY-----';
    const r = new Redactor();
    r.add(pem);
    expect(r.text(`got ${pem} back`)).toBe('got *** back');
    expect(r.text(`got ${JSON.stringify(pem)}`)).toBe('got "***"');
    expect(r.text('line AAAABBBBCCCCDDDD only')).toBe('line *** only');
  });
  it('a result is masked before its message is made one line', () => {
    const pem = 'first-line-of-key\nsecond-line-of-key';
    const r = new Redactor();
    r.add(pem);
    const out = r.result({ id: 'x', kind: 'http', target: 't', status: 'fail', durationMs: 1, message: `echo:\n${pem}`, details: {} });
    expect(out.message).toBe('echo: ***');
  });
  it('masks the start of a secret cut by a truncated body', () => {
    const r = new Redactor();
    r.add('truncated-secret-value');
    expect(r.text('body: {"t":"truncated-sec...')).toBe('body: {"t":"***...');
    const long = `body: ${'x'.repeat(100)} {"t":"truncated-sec`;
    expect(r.text(long)).toBe(long.replace('truncated-sec', '***'));
    // A short message that merely ends like a secret begins is left alone.
    expect(r.text('could not reach trun')).toBe('could not reach trun');
  });
  it('masks the start of a secret cut in the middle of a message, before every cut mark', () => {
    const r = new Redactor();
    r.add('truncated-secret-value');
    // What a health component's excerpt gives: the cut inside parentheses, more text after it.
    const said = `redis failing (auth with ${'truncated-secret-value'.slice(0, 9)}…), kafka failing (x…)`;
    expect(r.text(said)).toBe('redis failing (auth with ***…), kafka failing (x…)');
    const twice = `a truncated…; b truncated-se...`;
    expect(r.text(twice)).toBe('a ***…; b ***...');
  });
  it('excerpt cuts with the mark the redactor looks for, and only when it cuts', () => {
    expect(excerpt('short', 10)).toBe('short');
    expect(excerpt('0123456789abc', 10)).toBe('0123456789…');
    expect(excerpt('0123456789abc', 10, '...')).toBe('0123456789...');
    const r = new Redactor();
    r.add('a-secret-echoed-by-the-server');
    expect(r.text(`said: ${excerpt('token a-secret-echoed-by-the-server', 15)}`)).toBe('said: token ***…');
  });
  it('masks the secret query parameters of API keys and signatures', () => {
    for (const p of ['key', 'sig', 'signature', 'auth', 'access_token', 'api_key', 'apikey']) {
      expect(maskCredentials(`https://h/x?a=1&${p}=qp-secret-9&b=2`)).toBe(`https://h/x?a=1&${p}=***&b=2`);
      const r = new Redactor();
      r.addFromUrl(`https://h/x?${p}=qp-secret-9`);
      expect(r.text('alone qp-secret-9')).toBe('alone ***');
    }
  });
  it('never touches the structure of a result, even when a secret is one of its words', () => {
    const r = new Redactor();
    r.add('ail');
    r.add('http');
    const result = { id: 'api', kind: 'http', service: 'sfm', target: 'GET http://h/', status: 'fail' as const, durationMs: 3, message: 'failed', details: { status: 'fail' } };
    expect(r.result(result)).toMatchObject({ id: 'api', kind: 'http', status: 'fail', details: { status: 'f***' } });
  });
  it('names a secret too short to mask, never its value', () => {
    const r = new Redactor();
    learnSecrets(r, { services: { sfm: { token: 'ab' } } });
    expect(r.tooShort).toEqual(['services.sfm.token']);
  });
});

describe('secret names (issue 7)', () => {
  it('a secret-named variable is a secret wherever it is put: *_KEY, *Key, *auth*, *signature*', async () => {
    const { interpolate } = await import('../../src/config/interpolate.js');
    const env = { PRIVATE_KEY: 'pk-value-1', SFM_KEY: 'sfm-key-2', X_AUTH: 'xauth-3', SAS_SIGNATURE: 'sas-4', REGION: 'eu-west' };
    const { secrets } = interpolate(
      { url: 'https://${REGION}.h/${PRIVATE_KEY}/x?a=${SFM_KEY}', headers: { A: '${X_AUTH}' }, s: '${SAS_SIGNATURE}' },
      env,
    );
    expect(secrets.map((s) => s.name).sort()).toEqual(['PRIVATE_KEY', 'SAS_SIGNATURE', 'SFM_KEY', 'X_AUTH']);
    expect(isSecretName('clientKey')).toBe(true);
    expect(isSecretName('monkey')).toBe(false);
    expect(isSecretName('REGION')).toBe(false);
  });
});

describe('Redactor: forms of a non-ASCII secret', () => {
  it('masks a non-ASCII secret as a wrong-protocol peer is quoted (blanked), but no form too short to be safe', () => {
    const r = new Redactor();
    r.add('Pässwört-Geheim77');
    expect(r.text('it answered "ERROR unknown command: AUTH P ssw rt-Geheim77"')).not.toContain('Geheim77');
    const short = new Redactor();
    short.add('über');
    expect(short.text('a member of the number')).toBe('a member of the number');
  });
});
