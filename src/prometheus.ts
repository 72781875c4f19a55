// A strict parser of the Prometheus text exposition format 0.0.4 (prometheus.io, "Exposition
// formats"), tolerant of OpenMetrics 1.0 text (`# UNIT`, `# EOF`, `_total`/`_created`, exemplars).
//
// Hand-written on purpose: the npm parsers of this format are unmaintained single releases
// (parse-prometheus-text-format 1.1.1, prom2json-se 0.6.0) that give no line-numbered errors and
// accept or reject different things than Prometheus does. This one follows the Go reference
// parser (prometheus/common expfmt) on what is an error, so "is this really /metrics?" has the
// same answer as a Prometheus scrape, and every error says which line is wrong and why.

export type MetricType =
  | 'counter'
  | 'gauge'
  | 'histogram'
  | 'summary'
  | 'untyped'
  // OpenMetrics only; accepted so an OpenMetrics body does not fail.
  | 'gaugehistogram'
  | 'stateset'
  | 'info'
  | 'unknown';

export interface Sample {
  /** The name as written on the sample line, suffix included (`x_bucket`, `x_total`). */
  name: string;
  labels: Record<string, string>;
  value: number;
  /** As written: milliseconds in format 0.0.4, seconds in OpenMetrics. */
  timestamp?: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  /** `unit` from OpenMetrics `# UNIT`, when given. */
  unit?: string;
  samples: Sample[];
}

export interface PrometheusText {
  families: Map<string, MetricFamily>;
  /** Every sample, in the order of the text. */
  samples: Sample[];
}

export class PrometheusParseError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
    this.name = 'PrometheusParseError';
  }
}

const TYPES: ReadonlySet<string> = new Set<MetricType>([
  'counter',
  'gauge',
  'histogram',
  'summary',
  'untyped',
  'gaugehistogram',
  'stateset',
  'info',
  'unknown',
]);

// Which sample-name suffixes belong to a family of each type (the family is named without them).
const SUFFIXES: Partial<Record<MetricType, readonly string[]>> = {
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['_sum', '_count', '_created'],
  counter: ['_total', '_created'],
  info: ['_info'],
};

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const METRIC_NAME_START = /[a-zA-Z_:]/;
const METRIC_NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_NAME_START = /[a-zA-Z_]/;
const LABEL_NAME_CHAR = /[a-zA-Z0-9_]/;

export function parsePrometheusText(text: string): PrometheusText {
  const families = new Map<string, MetricFamily>();
  const samples: Sample[] = [];
  // Families whose TYPE may no longer be declared, because samples of them were already read.
  const sampled = new Set<string>();
  const helped = new Set<string>();
  const typed = new Set<string>();
  const lines = text.split('\n');
  // A final "\n" leaves one empty string behind; it is not a line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  let eofAt = 0;

  const familyNamed = (name: string): MetricFamily => {
    let family = families.get(name);
    if (!family) {
      family = { name, type: 'untyped', help: '', samples: [] };
      families.set(name, family);
    }
    return family;
  };

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i] ?? '';
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (eofAt) {
      if (line.trim() === '') continue;
      throw new PrometheusParseError(lineNo, `content after "# EOF" on line ${eofAt}`);
    }
    const fail = (reason: string): never => {
      throw new PrometheusParseError(lineNo, reason);
    };
    const body = line.replace(/^[ \t]+/, '');
    if (body === '') continue;

    if (body.startsWith('#')) {
      const tokens = body.slice(1).replace(/^[ \t]+/, '');
      const keyword = /^(HELP|TYPE|UNIT|EOF)(?=[ \t]|$)/.exec(tokens)?.[1];
      if (keyword === 'EOF') {
        if (tokens.trim() !== 'EOF') fail('unexpected text after "# EOF"');
        eofAt = lineNo;
        continue;
      }
      if (!keyword) continue; // any other # line is a comment
      const rest = tokens.slice(keyword.length).replace(/^[ \t]+/, '');
      // "# HELP" with nothing after it is a comment, as in the reference parser.
      if (rest === '') continue;
      const nameMatch = /^[^ \t]+/.exec(rest);
      const name = nameMatch?.[0] ?? '';
      if (!METRIC_NAME.test(name)) fail(`invalid metric name "${clip(name)}" in # ${keyword}`);
      const argument = rest.slice(name.length).replace(/^[ \t]+/, '');
      const family = familyNamed(name);
      if (keyword === 'HELP') {
        if (helped.has(name)) fail(`second HELP line for ${name}`);
        helped.add(name);
        family.help = unescapeHelp(argument);
      } else if (keyword === 'TYPE') {
        const type = argument.trimEnd();
        if (!TYPES.has(type)) fail(`invalid metric type "${clip(type)}" for ${name}`);
        if (typed.has(name)) fail(`second TYPE line for ${name}`);
        if (sampled.has(name)) fail(`TYPE line for ${name} after its samples`);
        typed.add(name);
        family.type = type as MetricType;
      } else {
        family.unit = argument.trimEnd();
      }
      continue;
    }

    const sample = parseSampleLine(body, fail);
    const family = familyNamed(familyNameOf(sample.name, families, typed));
    checkSpecialLabels(sample, family, fail);
    sampled.add(family.name);
    family.samples.push(sample);
    samples.push(sample);
  }

  return { families, samples };
}

/** The family a sample name belongs to: its own, or a typed family it is a suffix of. */
function familyNameOf(
  sampleName: string,
  families: ReadonlyMap<string, MetricFamily>,
  typed: ReadonlySet<string>,
): string {
  if (families.has(sampleName)) return sampleName;
  for (const [type, suffixes] of Object.entries(SUFFIXES)) {
    for (const suffix of suffixes) {
      if (!sampleName.endsWith(suffix)) continue;
      const base = sampleName.slice(0, -suffix.length);
      if (typed.has(base) && families.get(base)?.type === type) return base;
    }
  }
  return sampleName;
}

/** `le` of histogram buckets and `quantile` of summaries must be floats; buckets need `le`. */
function checkSpecialLabels(sample: Sample, family: MetricFamily, fail: (r: string) => never) {
  const isHistogram = family.type === 'histogram' || family.type === 'gaugehistogram';
  if (isHistogram && sample.name === `${family.name}_bucket`) {
    const le = sample.labels.le;
    if (le === undefined) fail(`histogram bucket ${sample.name} without an "le" label`);
    if (parseGoFloat(le) === undefined) fail(`"le" label of ${sample.name} is not a number: "${clip(le)}"`);
  }
  if (family.type === 'summary' && sample.name === family.name) {
    const quantile = sample.labels.quantile;
    if (quantile !== undefined && parseGoFloat(quantile) === undefined)
      fail(`"quantile" label of ${sample.name} is not a number: "${clip(quantile)}"`);
  }
}

/** `name{label="value",...} value [timestamp]`, blanks allowed between tokens. */
function parseSampleLine(line: string, fail: (reason: string) => never): Sample {
  let pos = 0;
  const skipBlanks = () => {
    while (line[pos] === ' ' || line[pos] === '\t') pos++;
  };
  const at = () => (pos < line.length ? `"${clip(line.slice(pos), 20)}"` : 'end of line');

  const nameStart = pos;
  if (!METRIC_NAME_START.test(line[pos] ?? '')) fail(`invalid metric name at ${at()}`);
  while (pos < line.length && METRIC_NAME_CHAR.test(line[pos] ?? '')) pos++;
  const name = line.slice(nameStart, pos);
  const afterName = line[pos];
  if (afterName !== undefined && afterName !== ' ' && afterName !== '\t' && afterName !== '{')
    fail(`invalid metric name "${clip(token(line, nameStart))}"`);

  const labels: Record<string, string> = {};
  skipBlanks();
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      skipBlanks();
      if (line[pos] === '}') break; // empty set, or the trailing comma the format allows
      const labelStart = pos;
      if (!LABEL_NAME_START.test(line[pos] ?? '')) fail(`invalid label name at ${at()}`);
      while (pos < line.length && LABEL_NAME_CHAR.test(line[pos] ?? '')) pos++;
      const labelName = line.slice(labelStart, pos);
      if (labelName === '__name__') fail('label name "__name__" is reserved');
      if (Object.hasOwn(labels, labelName)) fail(`duplicate label "${labelName}"`);
      skipBlanks();
      if (line[pos] !== '=') fail(`expected "=" after label ${labelName}, found ${at()}`);
      pos++;
      skipBlanks();
      if (line[pos] !== '"') fail(`invalid label value of ${labelName}: expected '"', found ${at()}`);
      pos++;
      let value = '';
      for (;;) {
        const ch = line[pos];
        if (ch === undefined) fail(`invalid label value of ${labelName}: missing closing quote`);
        pos++;
        if (ch === '"') break;
        if (ch === '\\') {
          const escaped = line[pos++];
          if (escaped === '\\') value += '\\';
          else if (escaped === '"') value += '"';
          else if (escaped === 'n') value += '\n';
          else fail(`invalid label value of ${labelName}: unknown escape "\\${escaped ?? ''}"`);
        } else {
          value += ch;
        }
      }
      // defineProperty, not assignment: a label named "__proto__" must stay a label.
      Object.defineProperty(labels, labelName, { value, enumerable: true, writable: true, configurable: true });
      skipBlanks();
      if (line[pos] === ',') {
        pos++;
        continue;
      }
      if (line[pos] !== '}') fail(`expected "," or "}" after label ${labelName}, found ${at()}`);
      break;
    }
    pos++; // the "}"
  }

  skipBlanks();
  const valueToken = token(line, pos);
  if (valueToken === '') fail(`missing value for ${name}`);
  const value = parseGoFloat(valueToken);
  if (value === undefined) fail(`invalid value "${clip(valueToken)}" for ${name}`);
  pos += valueToken.length;
  skipBlanks();

  const sample: Sample = { name, labels, value };
  // OpenMetrics exemplar: "# {labels} value [timestamp]" after the sample; not kept.
  if (pos < line.length && line[pos] !== '#') {
    const tsToken = token(line, pos);
    const timestamp = parseTimestamp(tsToken);
    if (timestamp === undefined) fail(`invalid timestamp "${clip(tsToken)}" for ${name}`);
    sample.timestamp = timestamp;
    pos += tsToken.length;
    skipBlanks();
  }
  if (pos < line.length && line[pos] !== '#') fail(`unexpected text after sample: ${at()}`);
  return sample;
}

function token(line: string, from: number): string {
  return /^[^ \t]*/.exec(line.slice(from))?.[0] ?? '';
}

// Go's strconv.ParseFloat, which Prometheus uses for values: decimal and hex floats, and
// case-insensitive Inf/Infinity (signed) and NaN. Underscores are not accepted (Go accepts them
// only in base-prefixed literals, which no exporter writes).
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const HEX = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?[pP]([+-]?\d+)$/;

export function parseGoFloat(text: string): number | undefined {
  if (DECIMAL.test(text)) return Number(text);
  if (/^[+-]?inf(?:inity)?$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return Number.NaN;
  const hex = HEX.exec(text);
  if (hex) {
    const [, sign, whole = '', fraction = '', exponent = '0'] = hex;
    if (whole === '' && fraction === '') return undefined;
    const mantissa = parseInt(`${whole}${fraction}` || '0', 16);
    const value = mantissa * 2 ** (Number(exponent) - 4 * fraction.length);
    return sign === '-' ? -value : value;
  }
  return undefined;
}

/** Milliseconds (int64) in 0.0.4; OpenMetrics writes seconds with a fraction, accepted too. */
function parseTimestamp(text: string): number | undefined {
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** HELP docstrings escape only `\\` and `\n`; any other backslash stays as written. */
function unescapeHelp(text: string): string {
  return text.trimEnd().replace(/\\(.?)/g, (whole, next: string) =>
    next === 'n' ? '\n' : next === '\\' ? '\\' : whole,
  );
}

function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
