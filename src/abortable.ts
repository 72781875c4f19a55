// For check clients that take no AbortSignal (kafkajs, our own protocol connections): stop waiting the
// moment the check's signal aborts, and tell the driver to let go.

export class CheckAborted extends Error {
  override name = 'CheckAborted';
  constructor(readonly phase?: string) {
    super(phase ? `aborted while ${phase}` : 'aborted by the check deadline');
  }
}

/**
 * Settle with `work`, or reject with CheckAborted as soon as `signal` aborts, after calling
 * `onAbort` (which should make the driver drop its socket, so `work` settles too).
 */
export async function abortable<T>(
  work: Promise<T>,
  signal: AbortSignal,
  { onAbort, phase }: { onAbort?: () => void; phase?: string } = {},
): Promise<T> {
  work.catch(() => {}); // it may reject after we stopped waiting for it
  if (signal.aborted) {
    onAbort?.();
    throw new CheckAborted(phase);
  }
  let listener: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    listener = () => {
      onAbort?.();
      reject(new CheckAborted(phase));
    };
    signal.addEventListener('abort', listener, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', listener!);
  }
}
