// The lossless .env parser/editor: examples, error lines, and a property test over generated
// files asserting that every byte outside the changed values is identical.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { composeValues, EnvParseError, envValues, parseEnvFile, readEnvFile, setEnvValues } from '../../src/envfile.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'envfile-'));
  dirs.push(dir);
  return dir;
}

function parseError(text: string): EnvParseError {
  try {
    parseEnvFile(text);
  } catch (error) {
    if (error instanceof EnvParseError) return error;
    throw error;
  }
  throw new Error('expected an EnvParseError');
}

describe('parseEnvFile / envValues', () => {
  it('reads values as docker compose does: quotes, escapes, export, inline comments, last duplicate wins', () => {
    const file = parseEnvFile(
      [
        '# comment',
        'export A=1',
        'B = two words # comment',
        "C='lit\\n # not a comment'",
        'D="esc\\n\\t\\"q\\" \\\\ \\$x" # c',
        'E=a#b',
        'F= # only a comment',
        'A=3',
        'G="multi',
        'line"',
        '  H=x',
      ].join('\n'),
    );
    expect(Object.fromEntries(envValues(file))).toEqual({
      A: '3',
      B: 'two words',
      C: 'lit\\n # not a comment',
      D: 'esc\n\t"q" \\ $x',
      E: 'a#b',
      F: '',
      G: 'multi\nline',
      H: 'x',
    });
    expect(file.entries.find((e) => e.key === 'A')?.exported).toBe(true);
    expect(file.entries.find((e) => e.key === 'H')?.line).toBe(11);
    expect(file.endsWithNewline).toBe(false);
  });

  it('rejects what it cannot keep lossless, naming the line and never quoting it', () => {
    expect(parseError('A=1\nexport\n').line).toBe(2);
    expect(parseError('A=1\n\n1BAD=x\n').message).toBe('line 3: expected KEY=VALUE with KEY made of letters, digits, _ and . (not starting with a digit)');
    const unterminated = parseError('A=1\nPASSWORD="hunter2\nB=2\n');
    expect(unterminated.line).toBe(2);
    expect(unterminated.message).toBe('line 2: unterminated double quote');
    expect(unterminated.message).not.toContain('hunter2');
    expect(parseError("A='x' trailing\n").message).toBe('line 1: unexpected text after the closing quote');
    expect(parseError('A="a\nb" junk\n').line).toBe(2);
    // CR-only (old Mac) line ends would read as one line and hide every key after the first.
    expect(parseError('A=1\rB=2\rC=3\r').message).toBe('line 1: a carriage return without a line feed (CR-only line ends?): convert the file to LF line ends');
    expect(parseError('A=1\n# c\rB=2\n').line).toBe(2);
    expect(parseError("A='x'\rB=2\n").message).toContain('carriage return');
    expect(parseError('X=0\nA=1\0B=2\n').message).toBe('line 2: a NUL byte: what follows it would be hidden from the programs that read this file');
  });

  it('readEnvFile: undefined when missing, EnvParseError on bytes that are not UTF-8', async () => {
    const dir = await tempDir();
    expect(await readEnvFile(join(dir, 'missing.env'))).toBeUndefined();
    await writeFile(join(dir, 'latin1.env'), Buffer.from('A=1\nB=caf\xe9\n', 'latin1'));
    await expect(readEnvFile(join(dir, 'latin1.env'))).rejects.toMatchObject({ name: 'EnvParseError', line: 2 });
    await writeFile(join(dir, 'bom.env'), '\uFEFFA=1\n');
    const bom = await readEnvFile(join(dir, 'bom.env'));
    expect(bom?.text).toBe('\uFEFFA=1\n');
    expect(envValues(bom!).get('A')).toBe('1');
  });
});

describe('setEnvValues', () => {
  it('edits only the values that change, keeping quotes, export, comments and CRLF', () => {
    const text = 'export A="1" # a\r\nB=\'2\'\r\nC=3\r\n# tail';
    const out = setEnvValues(parseEnvFile(text), { A: '10', B: '2', C: '30', D: '4' });
    expect(out).toBe('export A="10" # a\r\nB=\'2\'\r\nC=30\r\n# tail\r\nD=4\r\n');
  });

  it('edits the last duplicate, fills an empty value without touching its comment, switches quoting only when needed', () => {
    const text = 'A=1\nE= # empty\nA=2\nS=plain\n';
    const out = setEnvValues(parseEnvFile(text), { A: '3', E: '5', S: 'two words' });
    expect(out).toBe('A=1\nE=5 # empty\nA=3\nS="two words"\n');
    expect(envValues(parseEnvFile(out)).get('S')).toBe('two words');
  });

  it('returns the text unchanged when nothing changes, and appends to an empty file', () => {
    const text = 'A=1\n';
    expect(setEnvValues(parseEnvFile(text), { A: '1' })).toBe(text);
    expect(setEnvValues(parseEnvFile(''), { A: '1', B: '2' })).toBe('A=1\nB=2\n');
  });

  // --- property test -------------------------------------------------------------------------
  // A model of a .env file whose rendering is known piece by piece, so the expected output is
  // computed from the model (an oracle independent of the parser): the text with exactly the
  // changed values replaced, plus appended lines.
  type Quote = '' | "'" | '"';
  interface EntryLine {
    kind: 'entry';
    lead: string;
    exportPrefix: string;
    key: string;
    before: string;
    after: string;
    quote: Quote;
    raw: string;
    decoded: string;
    trailing: string;
    eol: string;
  }
  interface OtherLine {
    kind: 'other';
    text: string;
    eol: string;
  }
  type Line = EntryLine | OtherLine;

  const KEYS = ['A', 'B_2', 'db.url', '_X', 'PORT'];
  const ws = fc.constantFrom('', ' ', '\t', '  ');
  const wsNonEmpty = fc.constantFrom(' ', '\t', '  ');
  const unicodeText = fc.string({ unit: fc.constantFrom('a', 'Z', '9', ' ', '#', '=', '"', "'", 'é', '日本', '🚀', '\\', '$', '`'), maxLength: 12 });
  const comment = unicodeText.map((t) => `#${t}`);
  const unquoted = fc
    .oneof(
      fc.string({ unit: fc.constantFrom('a', '7', '=', ':', '/', '@', '#', '$', 'é', '日', '🚀', '\\', '.', '-'), maxLength: 10 }),
      fc.constant('L'.repeat(20_000)), // a very long line
    )
    .map((v) => (v.startsWith('#') ? `v${v}` : v));
  const singleQuoted = fc
    .string({ unit: fc.constantFrom('a', ' ', '#', '"', '\\', 'é', '🚀', '\n', '\r\n', '$'), maxLength: 12 })
    .map((raw) => ({ raw, decoded: raw }));
  const doubleToken = fc.constantFrom<[string, string]>(
    ['a', 'a'],
    [' ', ' '],
    ['#', '#'],
    ["'", "'"],
    ['日', '日'],
    ['\\"', '"'],
    ['\\\\', '\\'],
    ['\\n', '\n'],
    ['\\t', '\t'],
    ['\\$', '$'],
    ['\n', '\n'],
    ['7', '7'],
  );
  const doubleQuoted = fc.array(doubleToken, { maxLength: 10 }).map((tokens) => ({ raw: tokens.map((t) => t[0]).join(''), decoded: tokens.map((t) => t[1]).join('') }));
  const eol = fc.constantFrom('\n', '\r\n');

  const entryLine: fc.Arbitrary<EntryLine> = fc
    .record({
      lead: ws,
      exportPrefix: fc.constantFrom('', 'export ', 'export\t'),
      key: fc.constantFrom(...KEYS),
      before: ws,
      after: ws,
      value: fc.oneof(
        unquoted.map((raw) => ({ quote: '' as Quote, raw, decoded: raw })),
        singleQuoted.map((v) => ({ quote: "'" as Quote, ...v })),
        doubleQuoted.map((v) => ({ quote: '"' as Quote, ...v })),
      ),
      trailingWs: ws,
      trailingComment: fc.option(comment, { nil: undefined }),
      commentWs: wsNonEmpty,
      eol,
    })
    .map((r) => {
      const { quote, raw, decoded } = r.value;
      // An unquoted value's inline comment needs a space before '#'; an empty unquoted value is
      // filled right after '=', so give it no spaces after '=' in the model.
      const trailing = r.trailingComment === undefined ? (quote === '' && raw === '' ? '' : r.trailingWs) : (quote === '' ? r.commentWs : r.trailingWs) + r.trailingComment;
      const after = quote === '' && raw === '' ? '' : r.after;
      return { kind: 'entry', lead: r.lead, exportPrefix: r.exportPrefix, key: r.key, before: r.before, after, quote, raw, decoded, trailing, eol: r.eol };
    });
  const otherLine: fc.Arbitrary<OtherLine> = fc.oneof(
    fc.record({ kind: fc.constant('other' as const), text: ws, eol }),
    fc.record({ kind: fc.constant('other' as const), text: fc.tuple(ws, comment).map(([w, c]) => w + c), eol }),
  );
  const envModel = fc.record({
    bom: fc.boolean(),
    lines: fc.array(fc.oneof({ arbitrary: entryLine, weight: 3 }, { arbitrary: otherLine, weight: 1 }), { maxLength: 14 }),
    finalEol: fc.boolean(),
  });

  function render(bom: boolean, lines: Line[], finalEol: boolean): string {
    return (
      (bom ? '\uFEFF' : '') +
      lines
        .map((l, i) => {
          const ending = i === lines.length - 1 && !finalEol ? '' : l.eol;
          if (l.kind === 'other') return l.text + ending;
          return `${l.lead}${l.exportPrefix}${l.key}${l.before}=${l.after}${l.quote}${l.raw}${l.quote}${l.trailing}${ending}`;
        })
        .join('')
    );
  }

  const changesArb = fc.dictionary(fc.constantFrom(...KEYS, 'NEW_ONE', 'NEW.TWO'), fc.stringMatching(/^[0-9]{1,5}$/), { maxKeys: 6 });

  it('property: every byte outside the changed values is identical', () => {
    fc.assert(
      fc.property(envModel, changesArb, ({ bom, lines, finalEol }, changes) => {
        const text = render(bom, lines, finalEol);
        const file = parseEnvFile(text);

        // Oracle: replace the raw value of the last occurrence of each changed key in the model.
        const edited = lines.map((l) => ({ ...l }));
        const appended: string[] = [];
        for (const [key, value] of Object.entries(changes)) {
          const index = edited.map((l) => l.kind === 'entry' && l.key === key).lastIndexOf(true);
          if (index === -1) {
            appended.push(`${key}=${value}`);
            continue;
          }
          const line = edited[index] as EntryLine;
          if (line.decoded === value) continue;
          edited[index] = { ...line, raw: value, decoded: value };
        }
        const crlf = text.split('\r\n').length - 1;
        const eolStyle = crlf > text.split('\n').length - 1 - crlf ? '\r\n' : '\n';
        const base = render(bom, edited, finalEol);
        const separator = appended.length > 0 && text !== '' && !text.endsWith('\n') ? eolStyle : '';
        const expected = base + separator + appended.map((l) => l + eolStyle).join('');

        const out = setEnvValues(file, changes);
        expect(out).toBe(expected);
        // And the result reads back with the new values and every other value unchanged.
        const before = envValues(file);
        const after = envValues(parseEnvFile(out));
        for (const [key, value] of before) expect(after.get(key)).toBe(key in changes ? changes[key] : value);
        for (const [key, value] of Object.entries(changes)) expect(after.get(key)).toBe(value);
      }),
      { numRuns: 400 },
    );
  });
});

describe('composeValues: what docker compose gives the services', () => {
  const values = (text: string, env: Record<string, string> = {}) => Object.fromEntries(composeValues(parseEnvFile(text), env));

  it('resolves ${VAR} and $VAR against the lines above, the shell winning; single quotes stay literal', () => {
    expect(values('PW=s3cret\nURL=redis://:${PW}@r:6379/0\nRAW=\'${PW}\'\nBARE=$PW/x\n')).toEqual({ PW: 's3cret', URL: 'redis://:s3cret@r:6379/0', RAW: '${PW}', BARE: 's3cret/x' });
    expect(values('URL=redis://:${PW}@r\n', { PW: 'from-shell' }).URL).toBe('redis://:from-shell@r');
  });

  it('defaults, alternatives and required values as compose reads them; $$ and \\$ are a dollar', () => {
    expect(values('A=${X:-one}\nB=${X-two}\nE=\nC=${E:-three}\nD=${E-four}\nF=${A:+alt}\nG=$$X\nH="\\$X ${A}"\n')).toEqual({
      A: 'one', B: 'two', E: '', C: 'three', D: '', F: 'alt', G: '$X', H: '$X one',
    });
    expect(values('P=${PORT:-${BASE:-30100}}\n').P).toBe('30100');
    expect(() => values('U=${NEED:?set NEED first}\n')).toThrow('line 1: NEED is required by U: set NEED first');
  });
});
