/**
 * Node's timers hold at most 2^31-1 ms (24.8 days): a longer one fires after 1 ms, so a deadline
 * of 3000000000 would end the run at once. Longer durations are refused, not wrapped.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** "500ms", "5s", "1.5m" or a bare number of milliseconds; undefined when it is neither. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return text > 0 ? text : undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000 }[match[2] ?? 'ms'] ?? 1);
  return n > 0 ? n : undefined;
}

/** What is wrong with `text` as a duration (one message), or its milliseconds. */
export function checkDuration(text: string | number): { ms: number } | { problem: string } {
  const ms = parseDuration(text);
  if (ms === undefined) {
    return {
      problem: /^\s*-/.test(String(text)) || (typeof text === 'number' && text <= 0)
        ? `expected a positive duration like 500ms, 5s or 1m, got "${text}"`
        : `expected a duration like 500ms, 5s or 1m, got "${text}"`,
    };
  }
  if (ms > MAX_DURATION_MS) return { problem: `at most ${MAX_DURATION_MS} ms (24.8 days, the longest timer Node keeps), got "${text}"` };
  return { ms };
}
