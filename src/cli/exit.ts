export const EXIT = { ok: 0, failed: 1, usage: 2, waitExpired: 3, interrupted: 130 } as const;
