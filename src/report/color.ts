// ANSI colour, only when asked: the CLI decides (a TTY, and NO_COLOR unset).
const CODES = { red: 31, green: 32, yellow: 33, gray: 90, bold: 1 } as const;
type Painter = Record<keyof typeof CODES, (text: string) => string>;

export function paint(enabled: boolean): Painter {
  const out = {} as Painter;
  for (const [name, code] of Object.entries(CODES) as Array<[keyof typeof CODES, number]>) {
    out[name] = enabled ? (text) => `\x1b[${code}m${text}\x1b[${name === 'bold' ? 22 : 39}m` : (text) => text;
  }
  return out;
}
