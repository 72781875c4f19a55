// Libraries loaded on demand, each the first time something needs it (never at start-up).
// They are CommonJS, and a dynamic import of CommonJS differs between Node, which hands
// module.exports over as `default` and guesses named exports, and the bundled CLI, which gives
// `default` only; reading `default` works under both. Load any CommonJS package through here.

export const loadKafkajs = () => commonJs<typeof import('kafkajs')>(import('kafkajs'));
export const loadYaml = () => commonJs<typeof import('yaml')>(import('yaml'));
export const loadPicomatch = () => commonJs<typeof import('picomatch')>(import('picomatch'));

async function commonJs<T>(pending: Promise<unknown>): Promise<T> {
  const mod = (await pending) as { default?: T };
  return (mod.default ?? mod) as T;
}
