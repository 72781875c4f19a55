import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseGoFloat, parsePrometheusText, PrometheusParseError } from '../../src/prometheus.js';

// The example of the specification (prometheus.io/docs/instrumenting/exposition_formats), verbatim.
const SPEC_EXAMPLE = String.raw`# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
`;

function parseError(text: string): PrometheusParseError {
  try {
    parsePrometheusText(text);
  } catch (err) {
    if (err instanceof PrometheusParseError) return err;
    throw err;
  }
  throw new Error(`expected a parse error for ${JSON.stringify(text)}`);
}

describe('parsePrometheusText: the specification example', () => {
  const parsed = parsePrometheusText(SPEC_EXAMPLE);

  it('reads every sample line and groups them into six families', () => {
    expect(parsed.samples).toHaveLength(2 + 1 + 1 + 1 + 8 + 7);
    expect([...parsed.families.keys()]).toEqual([
      'http_requests_total',
      'msdos_file_access_time_seconds',
      'metric_without_timestamp_and_labels',
      'something_weird',
      'http_request_duration_seconds',
      'rpc_duration_seconds',
    ]);
  });

  it('keeps HELP, TYPE, labels, values and timestamps', () => {
    const requests = parsed.families.get('http_requests_total');
    expect(requests).toMatchObject({ type: 'counter', help: 'The total number of HTTP requests.' });
    expect(requests?.samples).toEqual([
      { name: 'http_requests_total', labels: { method: 'post', code: '200' }, value: 1027, timestamp: 1395066363000 },
      { name: 'http_requests_total', labels: { method: 'post', code: '400' }, value: 3, timestamp: 1395066363000 },
    ]);
    expect(parsed.families.get('metric_without_timestamp_and_labels')?.samples).toEqual([
      { name: 'metric_without_timestamp_and_labels', labels: {}, value: 12.47 },
    ]);
  });

  it('unescapes \\\\, \\" and \\n in label values', () => {
    expect(parsed.families.get('msdos_file_access_time_seconds')?.samples[0]).toEqual({
      name: 'msdos_file_access_time_seconds',
      labels: { path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' },
      value: 1.458255915e9,
    });
  });

  it('reads +Inf values and negative timestamps', () => {
    expect(parsed.families.get('something_weird')?.samples[0]).toMatchObject({
      value: Infinity,
      timestamp: -3982045,
    });
  });

  it('puts _bucket, _sum and _count under their histogram family, and quantiles under the summary', () => {
    const histogram = parsed.families.get('http_request_duration_seconds');
    expect(histogram?.type).toBe('histogram');
    expect(histogram?.samples.map((s) => s.name)).toEqual([
      ...Array(6).fill('http_request_duration_seconds_bucket'),
      'http_request_duration_seconds_sum',
      'http_request_duration_seconds_count',
    ]);
    expect(histogram?.samples[5]?.labels).toEqual({ le: '+Inf' });
    const summary = parsed.families.get('rpc_duration_seconds');
    expect(summary?.type).toBe('summary');
    expect(summary?.samples.map((s) => s.labels.quantile ?? s.name)).toEqual([
      '0.01', '0.05', '0.5', '0.9', '0.99', 'rpc_duration_seconds_sum', 'rpc_duration_seconds_count',
    ]);
    expect(summary?.samples[5]?.value).toBe(1.7560473e7);
    expect(parsed.families.has('http_request_duration_seconds_bucket')).toBe(false);
  });
});

describe('parsePrometheusText: edges of the format', () => {
  it('reads NaN, +Inf, -Inf and Go float spellings', () => {
    const { samples } = parsePrometheusText('a NaN\nb +Inf\nc -Inf\nd 1e3\ne -.5\nf 0x1p-2\ng inf\nh 3.\n');
    expect(samples.map((s) => s.value)).toEqual([NaN, Infinity, -Infinity, 1000, -0.5, 0.25, Infinity, 3]);
  });

  it('accepts a trailing comma, an empty label set and blanks between tokens', () => {
    const { samples } = parsePrometheusText('a{x="1",} 1\nb{} 2\n  c { x = "1" , y="2" }\t3 \t 17\n');
    expect(samples).toEqual([
      { name: 'a', labels: { x: '1' }, value: 1 },
      { name: 'b', labels: {}, value: 2 },
      { name: 'c', labels: { x: '1', y: '2' }, value: 3, timestamp: 17 },
    ]);
  });

  it('accepts colons in metric names and underscores leading label names', () => {
    const { samples } = parsePrometheusText('job:request_rate:5m{_private="x"} 4\n');
    expect(samples[0]).toEqual({ name: 'job:request_rate:5m', labels: { _private: 'x' }, value: 4 });
  });

  it('keeps a label named __proto__ as a label', () => {
    const { samples } = parsePrometheusText('a{__proto__="x"} 1\n');
    expect(Object.keys(samples[0]?.labels ?? {})).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(samples[0]?.labels)).toBe(Object.prototype);
  });

  it('keeps any UTF-8, braces, commas and "#" inside label values', () => {
    const { samples } = parsePrometheusText('a{path="/x?{a,b}#frag é ☃"} 1\n');
    expect(samples[0]?.labels.path).toBe('/x?{a,b}#frag é ☃');
  });

  it('ignores blank lines, comments and a missing final newline; tolerates \\r\\n', () => {
    const { samples, families } = parsePrometheusText(
      '\r\n# just a comment\r\n#HELP_not a keyword\r\n\r\n# TYPE up gauge\r\nup 1\r\n\r\nlast 2',
    );
    expect(samples).toEqual([
      { name: 'up', labels: {}, value: 1 },
      { name: 'last', labels: {}, value: 2 },
    ]);
    expect(families.get('up')?.type).toBe('gauge');
  });

  it('unescapes \\\\ and \\n in HELP and keeps other backslashes as written', () => {
    const { families } = parsePrometheusText('# HELP a line one\\nline two \\\\ \\d "q"\na 1\n');
    expect(families.get('a')?.help).toBe('line one\nline two \\ \\d "q"');
  });

  it('treats "# HELP" and "# TYPE" without a name as comments, and a HELP without text as empty', () => {
    const { families } = parsePrometheusText('# HELP\n# TYPE\n# HELP a\na 1\n');
    expect(families.get('a')).toMatchObject({ help: '', type: 'untyped' });
  });

  it('gives samples without TYPE an untyped family of their own name, suffix included', () => {
    const { families } = parsePrometheusText('x_sum 1\nx_count 2\n');
    expect(families.get('x_sum')?.type).toBe('untyped');
    expect(families.get('x_count')?.samples).toHaveLength(1);
  });

  it('keeps a family declared by HELP or TYPE even when it has no samples', () => {
    const { families } = parsePrometheusText('# HELP idle nothing yet\n# TYPE idle counter\n');
    expect(families.get('idle')).toEqual({ name: 'idle', type: 'counter', help: 'nothing yet', samples: [] });
  });

  it('parses an empty body as no samples', () => {
    expect(parsePrometheusText('')).toEqual({ families: new Map(), samples: [] });
  });
});

describe('parsePrometheusText: OpenMetrics text', () => {
  const OPENMETRICS = `# TYPE requests counter
# UNIT requests requests
# HELP requests Requests served.
requests_total{path="/"} 12 1700000000.123
requests_created{path="/"} 1.7e9
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{le="0.1"} 3 # {trace_id="abc"} 0.05 1700000000
latency_seconds_bucket{le="+Inf"} 4
latency_seconds_sum 0.9
latency_seconds_count 4
latency_seconds_created 1.7e9
# TYPE build info
build_info{version="1.2"} 1
# TYPE pool gaugehistogram
pool_bucket{le="1"} 2
pool_gsum 1
pool_gcount 2
# TYPE mode stateset
mode{mode="a"} 1
# EOF
`;

  it('groups _total, _created, _info and gauge histogram samples under their families', () => {
    const { families, samples } = parsePrometheusText(OPENMETRICS);
    expect(samples).toHaveLength(12);
    expect(families.get('requests')).toMatchObject({ type: 'counter', unit: 'requests', help: 'Requests served.' });
    expect(families.get('requests')?.samples.map((s) => s.name)).toEqual(['requests_total', 'requests_created']);
    expect(families.get('requests')?.samples[0]?.timestamp).toBe(1700000000.123);
    expect(families.get('latency_seconds')?.samples).toHaveLength(5);
    expect(families.get('build')?.samples[0]?.name).toBe('build_info');
    expect(families.get('pool')?.samples).toHaveLength(3);
    expect(families.get('mode')?.type).toBe('stateset');
  });

  it('ignores exemplars and stops at # EOF', () => {
    const { families } = parsePrometheusText(OPENMETRICS);
    expect(families.get('latency_seconds')?.samples[0]).toEqual({
      name: 'latency_seconds_bucket',
      labels: { le: '0.1' },
      value: 3,
    });
  });

  it('rejects content after # EOF, naming both lines', () => {
    expect(parseError('a 1\n# EOF\nb 2\n').message).toBe('line 3: content after "# EOF" on line 2');
  });
});

describe('parsePrometheusText: malformed input names the line and the fault', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['HTML', '<!DOCTYPE html>\n<html></html>\n', /^line 1: invalid metric name at "<!DOCTYPE html>"$/],
    ['JSON', '{"status":"ok"}\n', /^line 1: invalid metric name at "\{"status":"ok"\}"$/],
    ['a name with a dash', 'ok 1\nhttp-requests 1\n', /^line 2: invalid metric name "http-requests"$/],
    ['a name starting with a digit', '1abc 1\n', /^line 1: invalid metric name/],
    ['a missing value', 'a\n', /^line 1: missing value for a$/],
    ['a missing value after labels', 'a{b="c"}\n', /^line 1: missing value for a$/],
    ['a value that is not a number', 'a one\n', /^line 1: invalid value "one" for a$/],
    ['a value with underscores', 'a 1_000\n', /^line 1: invalid value "1_000"/],
    ['a signed NaN', 'a -NaN\n', /^line 1: invalid value "-NaN"/],
    ['a bad timestamp', 'a 1 yesterday\n', /^line 1: invalid timestamp "yesterday" for a$/],
    ['text after the timestamp', 'a 1 2 3\n', /^line 1: unexpected text after sample/],
    ['an unquoted label value', 'a{b=c} 1\n', /^line 1: invalid label value of b: expected '"'/],
    ['an unclosed label value', 'a{b="c} 1\n', /^line 1: invalid label value of b: missing closing quote$/],
    ['an unknown escape', 'a{b="\\t"} 1\n', /^line 1: invalid label value of b: unknown escape "\\t"$/],
    ['a label name with a dash', 'a{b-c="d"} 1\n', /^line 1: expected "=" after label b/],
    ['a label name starting with a digit', 'a{1b="d"} 1\n', /^line 1: invalid label name at "1b/],
    ['a missing "="', 'a{b "c"} 1\n', /^line 1: expected "=" after label b/],
    ['a missing comma', 'a{b="c" d="e"} 1\n', /^line 1: expected "," or "}" after label b/],
    ['an unclosed label set', 'a{b="c" 1\n', /^line 1: expected "," or "}" after label b/],
    ['a double comma', 'a{b="c",,} 1\n', /^line 1: invalid label name at ",}/],
    ['a duplicate label', 'a{b="1",b="2"} 1\n', /^line 1: duplicate label "b"$/],
    ['the reserved __name__ label', 'a{__name__="x"} 1\n', /^line 1: label name "__name__" is reserved$/],
    ['an unknown TYPE', '# TYPE a countr\n', /^line 1: invalid metric type "countr" for a$/],
    ['a TYPE without a type', '# TYPE a\n', /^line 1: invalid metric type "" for a$/],
    ['a second TYPE', '# TYPE a gauge\n# TYPE a gauge\n', /^line 2: second TYPE line for a$/],
    ['a second HELP', '# HELP a x\n# HELP a y\n', /^line 2: second HELP line for a$/],
    ['a TYPE after samples', 'a 1\n# TYPE a gauge\n', /^line 2: TYPE line for a after its samples$/],
    ['an invalid name in HELP', '# HELP a.b x\n', /^line 1: invalid metric name "a.b" in # HELP$/],
    ['a histogram bucket without le', '# TYPE h histogram\nh_bucket 1\n', /^line 2: histogram bucket h_bucket without an "le" label$/],
    ['a non-numeric le', '# TYPE h histogram\nh_bucket{le="big"} 1\n', /^line 2: "le" label of h_bucket is not a number/],
    ['a non-numeric quantile', '# TYPE s summary\ns{quantile="p99"} 1\n', /^line 2: "quantile" label of s is not a number/],
    ['a bare carriage return', 'a 1\rb 2\n', /^line 1: invalid value "1\rb"/],
    ['text after # EOF on its line', '# EOF now\n', /^line 1: unexpected text after "# EOF"$/],
  ];

  it.each(cases)('rejects %s', (_what, text, expected) => {
    const error = parseError(text);
    expect(error.message).toMatch(expected);
    expect(error.line).toBe(Number(/^line (\d+)/.exec(error.message)?.[1]));
  });
});

describe('parseGoFloat', () => {
  it('accepts what Go ParseFloat accepts and rejects the rest', () => {
    expect(parseGoFloat('+Infinity')).toBe(Infinity);
    expect(parseGoFloat('-inf')).toBe(-Infinity);
    expect(parseGoFloat('nan')).toBeNaN();
    expect(parseGoFloat('0X1.8P1')).toBe(3);
    expect(parseGoFloat('-1.5E-3')).toBe(-0.0015);
    for (const bad of ['', '.', 'e5', '1e', '0x1', '++1', 'Infinit', '1,5', ' 1']) {
      expect(parseGoFloat(bad), bad).toBeUndefined();
    }
  });
});

describe('parsePrometheusText: property', () => {
  const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,8}$/).filter((n) => n !== '__name__');
  const metricName = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,12}$/);
  const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

  it('reads back any sample written with escaped label values', () => {
    fc.assert(
      fc.property(
        metricName,
        fc.dictionary(labelName, fc.string({ unit: 'grapheme', maxLength: 12 }), { maxKeys: 4 }),
        fc.double({ noNaN: true }).map((v) => (Object.is(v, -0) ? 0 : v)),
        (name, labels, value) => {
          const labelText = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',');
          const line = `${name}{${labelText}} ${String(value)}\n`;
          const [sample] = parsePrometheusText(line).samples;
          expect(sample).toEqual({ name, labels, value });
        },
      ),
    );
  });
});
