// Chooses where a test's peer runs: in a real container through testcontainers when a Docker
// engine answers, else on this machine (local servers, kcat's mock cluster, HTTP doubles).
let docker: Promise<boolean> | undefined;

export function dockerAvailable(): Promise<boolean> {
  if (process.env.SOMA_TEST_NO_DOCKER === '1') return Promise.resolve(false);
  docker ??= (async () => {
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      await Promise.race([
        getContainerRuntimeClient(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 5000).unref()),
      ]);
      return true;
    } catch {
      return false;
    }
  })();
  return docker;
}

/** Say which provider a test used, so a CI log shows what was really exercised. */
export function announcePeer(name: string, provider: string, where: string): void {
  process.stderr.write(`[peer] ${name}: ${provider} at ${where}\n`);
}
