import type { Renderer } from './report.js';

export const FORMATS = ['table', 'json', 'junit'] as const;
export type Format = (typeof FORMATS)[number];

/** Each format is one file; only the chosen one is loaded. */
export async function rendererFor(format: Format): Promise<Renderer> {
  switch (format) {
    case 'table':
      return (await import('./table.js')).renderTable;
    case 'json':
      return (await import('./json.js')).renderJson;
    case 'junit':
      return (await import('./junit.js')).renderJunit;
  }
}
