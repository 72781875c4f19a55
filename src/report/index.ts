import type { Renderer } from './report.js';

/** Every report format, declared once: the CLI's choices, its help and the renderers below. */
export const FORMATS = ['table', 'json', 'junit', 'github'] as const;
export type Format = (typeof FORMATS)[number];

/** No --format given: GitHub Actions gets annotations (it sets GITHUB_ACTIONS=true), others the table. */
export function defaultFormat(env: NodeJS.ProcessEnv): Format {
  return env.GITHUB_ACTIONS === 'true' ? 'github' : 'table';
}

/** Each format is one file; only the chosen one is loaded. */
export async function rendererFor(format: Format): Promise<Renderer> {
  switch (format) {
    case 'table':
      return (await import('./table.js')).renderTable;
    case 'json':
      return (await import('./json.js')).renderJson;
    case 'junit':
      return (await import('./junit.js')).renderJunit;
    case 'github':
      return (await import('./github.js')).renderGithub;
  }
}
