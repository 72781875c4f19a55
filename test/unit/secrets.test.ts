import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveSecret, SecretError } from '../../src/config/secrets.js';
import { interpolate } from '../../src/config/interpolate.js';

const dir = mkdtempSync(join(tmpdir(), 'soma-secrets-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('resolveSecret follows seed 000: KEY, KEY_FILE, KEY_B64, KEY_B64_FILE', () => {
  it('takes KEY first', () => {
    expect(resolveSecret('T', { T: 'plain', T_FILE: file('a', 'file'), T_B64: b64('b64') })).toEqual({ value: 'plain', from: 'T' });
  });
  it('falls to KEY_FILE when KEY is empty, stripping surrounding whitespace', () => {
    expect(resolveSecret('T', { T: '', T_FILE: file('b', '  from-file\n'), T_B64: b64('x') })).toEqual({ value: 'from-file', from: 'T_FILE' });
  });
  it('falls to KEY_B64 when the file is empty', () => {
    expect(resolveSecret('T', { T_FILE: file('c', '\n'), T_B64: b64('decoded') })).toEqual({ value: 'decoded', from: 'T_B64' });
  });
  it('reads KEY_B64_FILE last', () => {
    expect(resolveSecret('T', { T_B64_FILE: file('d', `${b64('deep')}\n`) })).toEqual({ value: 'deep', from: 'T_B64_FILE' });
  });
  it('is undefined when nothing is set', () => {
    expect(resolveSecret('T', {})).toBeUndefined();
  });
  it('names the variable and file when the file cannot be read, without the value', () => {
    expect(() => resolveSecret('T', { T_FILE: join(dir, 'missing') })).toThrow(/T_FILE: cannot read .*missing \(ENOENT\)/);
  });
  it('rejects invalid base64 by name', () => {
    expect(() => resolveSecret('T', { T_B64: 'not base64!!' })).toThrow(SecretError);
  });
});

describe('interpolate', () => {
  it('replaces ${VAR} in nested values and resolves variables like secrets', () => {
    const out = interpolate(
      { a: 'http://h:${PORT}/x', b: ['${TOKEN}'], c: { d: 5 } },
      { PORT: '8080', TOKEN_B64: b64('s3cret') },
    );
    expect(out.errors).toEqual([]);
    expect(out.value).toEqual({ a: 'http://h:8080/x', b: ['s3cret'], c: { d: 5 } });
    expect(out.substituted).toContain('s3cret');
  });
  it('uses ${VAR:-default} and keeps $${ literal', () => {
    expect(interpolate({ a: '${NOPE:-fallback}', b: '$${KEEP}' }, {}).value).toEqual({ a: 'fallback', b: '${KEEP}' });
  });
  it('reports an unset variable with its config path', () => {
    expect(interpolate({ environments: { s: { services: { sfm: { token: '${SOMA_API_TOKEN}' } } } } }, {}).errors).toEqual([
      'environments.s.services.sfm.token: ${SOMA_API_TOKEN} is not set',
    ]);
  });
});
