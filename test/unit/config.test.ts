import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findConfigFile, loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/issues.js';

const write = (name: string, text: string) => {
  const dir = mkdtempSync(join(tmpdir(), 'soma-config-'));
  writeFileSync(join(dir, name), text);
  return { dir, path: join(dir, name) };
};
const problems = async (path: string, env: Record<string, string> = {}) => {
  try {
    await loadConfig(path, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('config', () => {
  it('finds soma-verify.config.yaml in the working directory', () => {
    const { dir, path } = write('soma-verify.config.yaml', 'environments: {}');
    expect(findConfigFile(dir)).toBe(path);
    expect(findConfigFile(dir, 'other.yaml')).toBe(join(dir, 'other.yaml'));
  });
  it('loads YAML with interpolation, durations and defaults', async () => {
    const { path } = write(
      'c.yaml',
      [
        'defaults: { timeout: 2s, deadline: 1m }',
        'environments:',
        '  staging:',
        '    services:',
        '      sfm: { url: "https://sfm.example:${SFM_PORT}", token: "${SOMA_API_TOKEN}" }',
        '      postgres: { dsn: "${DSN}", tables: [sessions.events], timeout: 750ms }',
        '    checks:',
        '      - { id: ui, kind: http, url: "https://ui.example", timeout: 1.5s }',
      ].join('\n'),
    );
    const { config, substituted } = await loadConfig(path, { SFM_PORT: '443', SOMA_API_TOKEN: 'tok-abc', DSN: 'postgresql://u:p@db/x' });
    expect(config.defaults).toEqual({ timeout: 2000, deadline: 60000 });
    const staging = config.environments.staging!;
    expect(staging.services.sfm).toEqual({ url: 'https://sfm.example:443', token: 'tok-abc', generation: 'auto', metrics: true });
    expect(staging.services.postgres).toEqual({ dsn: 'postgresql://u:p@db/x', tables: ['sessions.events'], timeout: 750 });
    expect(staging.checks[0]).toMatchObject({ id: 'ui', kind: 'http', timeout: 1500 });
    expect(substituted).toEqual(expect.arrayContaining(['tok-abc', 'postgresql://u:p@db/x']));
  });
  it('reports every schema problem with its path', async () => {
    const { path } = write(
      'c.yaml',
      'environments:\n  staging:\n    services:\n      sfm: { url: not-a-url, generation: gen3 }\n      mystery: {}\n    checks:\n      - { kind: http }\n',
    );
    expect(await problems(path)).toEqual(
      expect.arrayContaining([
        'environments.staging.services.sfm.url: not an http(s) URL',
        expect.stringMatching(/^environments\.staging\.services\.sfm\.generation: /),
        'environments.staging.services.mystery: unknown key "mystery"',
        expect.stringMatching(/^environments\.staging\.checks\[0\]\.id: /),
      ]),
    );
  });
  it('names the line of a YAML syntax error, and JSON errors', async () => {
    const yaml = write('c.yaml', 'environments:\n  staging: [\n');
    expect((await problems(yaml.path))[0]).toMatch(/c\.yaml: line \d+: /);
    const json = write('c.json', '{"environments": ');
    expect((await problems(json.path))[0]).toMatch(/c\.json: not valid JSON/);
  });
  it('rejects an unset variable, an empty file and a missing file', async () => {
    expect(await problems(write('c.yaml', 'environments:\n  s:\n    services:\n      sfm: { url: "${NOPE}" }\n').path)).toEqual([
      'environments.s.services.sfm.url: ${NOPE} is not set',
    ]);
    expect(await problems(write('c.yaml', '\n').path)).toEqual([expect.stringMatching(/the file is empty/)]);
    expect(await problems('/nonexistent/soma.yaml')).toEqual(['/nonexistent/soma.yaml: no such config file']);
  });
});
