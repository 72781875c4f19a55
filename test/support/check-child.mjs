// Runs one compiled check kind in a process of its own and prints its outcome as JSON, redacted
// as the CLI redacts everything it prints (a redactor that learned the options). It never
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
  await kind.prepare?.();
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
  const target = kind.target(validated.value);
  const redactor = new Redactor();
  learnSecrets(redactor, JSON.parse(optionsJson));
  process.stdout.write(
    JSON.stringify(redactor.value({ ...outcome, target, logs, durationMs: performance.now() - started })),
  );
}
