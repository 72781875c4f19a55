// Runs one compiled check kind in a process of its own and prints its outcome as JSON, exactly as
// the CLI would print it: through the engine's own Redactor.result (free text masked, then made
// one line; status and structure untouched), taught the options' secrets by the engine's own
// learnSecrets, as the CLI teaches it a config. A redaction of the harness's own would hide the
// engine's leaks from the tests. It never
// calls process.exit: if the check leaves a socket or timer open, the process stays alive and
// the parent test reports the open handle.
// usage: node check-child.mjs <module.js> <options-json> <timeoutMs>
import { pathToFileURL } from 'node:url';

const [modulePath, optionsJson, timeoutArg] = process.argv.slice(2);
const kind = (await import(pathToFileURL(modulePath).href)).default;
const { Redactor, learnSecrets } = await import(new URL('../../dist/src/redact.js', import.meta.url).href);
const timeoutMs = Number(timeoutArg ?? 5000);
const validated = await kind.options['~standard'].validate(JSON.parse(optionsJson));
if (validated.issues) {
  process.stdout.write(JSON.stringify({ invalid: validated.issues.map((i) => i.message) }));
} else {
  await kind.prepare?.([validated.value]);
  const started = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('timeout', 'TimeoutError')), timeoutMs);
  const logs = [];
  let outcome;
  try {
    outcome = await kind.run(validated.value, {
      signal: controller.signal,
      timeoutMs,
      dependencies: new Map(),
      log: (m) => logs.push(m),
    });
  } catch (err) {
    outcome = { status: 'fail', message: `check threw: ${err?.message ?? err}`, threw: true };
  }
  clearTimeout(timer);
  const redactor = new Redactor();
  learnSecrets(redactor, JSON.parse(optionsJson));
  const { threw, ...given } = outcome;
  const printed = redactor.result({
    id: 'check', kind: kind.kind, target: kind.target(validated.value), status: given.status,
    durationMs: performance.now() - started, message: given.message, details: given.details ?? {},
  });
  process.stdout.write(
    JSON.stringify({
      status: printed.status, message: printed.message, details: printed.details, target: printed.target,
      logs: logs.map((line) => redactor.text(line)), durationMs: printed.durationMs, ...(threw ? { threw } : {}),
      ...(given.unanswered === undefined ? {} : { unanswered: given.unanswered }),
    }),
  );
}
