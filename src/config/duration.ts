/** "500ms", "5s", "1.5m" or a bare number of milliseconds; undefined when it is neither. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return text > 0 ? text : undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000 }[match[2] ?? 'ms'] ?? 1);
  return n > 0 ? n : undefined;
}
