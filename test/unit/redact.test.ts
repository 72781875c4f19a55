import { describe, expect, it } from 'vitest';
import { maskCredentials, Redactor } from '../../src/redact.js';

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
