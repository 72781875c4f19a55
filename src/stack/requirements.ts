// What each SomaStack project's code needs from the shared stores (contracts sections 2 and 3),
// for `requiredBy: [somaagent01, somabrain]` on a store: the topics, consumer groups and tables
// that must exist before that project can work. The names are the ones in the code; where a
// guide says otherwise (seed 003's audit.* topics), the code wins.

export const PROJECTS_WITH_REQUIREMENTS = ['somaagent01', 'somabrain'] as const;
export type ProjectName = (typeof PROJECTS_WITH_REQUIREMENTS)[number];

interface Requirements {
  kafka?: { topics: string[]; groups?: string[] };
  postgres?: { tables: string[] };
}

export const REQUIREMENTS: Record<ProjectName, Requirements> = {
  somaagent01: {
    kafka: {
      topics: ['conversation.inbound', 'conversation.outbound', 'tool.requests', 'tool.results', 'memory.wal', 'config_updates'],
      groups: ['conversation-worker', 'tool-executor'],
    },
    postgres: { tables: ['sessions.events'] },
  },
  somabrain: {
    kafka: {
      topics: [
        'soma.audit',
        'cog.global.frame',
        'cog.next_event',
        'cog.action.updates',
        'cog.state.updates',
        'cog.agent.updates',
        'cog.config.updates',
        'cog.segments',
      ],
    },
  },
};

/** The store's options with the named projects' requirements added to what the user listed. */
export function withRequirements(store: string, options: Record<string, unknown>, projects: ProjectName[]): Record<string, unknown> {
  const out = { ...options };
  const add = (key: string, names: string[] | undefined) => {
    if (!names?.length) return;
    const listed = (out[key] as unknown[] | undefined) ?? [];
    const have = new Set(listed.map((t) => (typeof t === 'string' ? t : (t as { name?: string }).name)));
    out[key] = [...listed, ...names.filter((n) => !have.has(n) && have.add(n))];
  };
  for (const project of projects) {
    const needs = REQUIREMENTS[project];
    if (store === 'kafka') {
      add('topics', needs.kafka?.topics);
      add('groups', needs.kafka?.groups);
    }
    if (store === 'postgres') add('tables', needs.postgres?.tables);
  }
  return out;
}
