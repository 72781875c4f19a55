// The arithmetic of SCRAM (RFC 5802, 7677): the salted password, the client's proof, and the
// signature the server must answer with to show that it knows the password too. PostgreSQL's and
// Kafka's exchanges (./postgres-wire.ts, ./kafka-wire.ts) frame, check and word the messages each
// their own way; both prove and verify through here. node:crypto loads on first use: it costs
// milliseconds of every run's start, and only SCRAM needs it.

export type ScramHash = 'sha256' | 'sha512';

const crypto = () => process.getBuiltinModule('node:crypto');

/** A fresh client nonce, printable as SCRAM asks. */
export const scramNonce = (bytes: number): string => crypto().randomBytes(bytes).toString('base64');

/** PBKDF2 of the password, off the event loop (libuv's pool): timers and other checks go on meanwhile. */
export function saltPassword(hash: ScramHash, password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) =>
    crypto().pbkdf2(password, salt, iterations, hash === 'sha256' ? 32 : 64, hash, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** The client's proof for `authMessage` (base64), and the server signature to expect in return. */
export function scramProof(hash: ScramHash, salted: Buffer, authMessage: string): { proof: string; serverSignature: Buffer } {
  const { createHash, createHmac } = crypto();
  const hmac = (key: Buffer, text: string) => createHmac(hash, key).update(text).digest();
  const clientKey = hmac(salted, 'Client Key');
  const clientSignature = hmac(createHash(hash).update(clientKey).digest(), authMessage);
  return {
    proof: Buffer.from(clientKey.map((byte, i) => byte ^ clientSignature[i]!)).toString('base64'),
    serverSignature: hmac(hmac(salted, 'Server Key'), authMessage),
  };
}

/** Whether the server's signature (base64) is the one expected, compared in constant time. */
export function signatureMatches(given: string, expected: Buffer): boolean {
  const bytes = Buffer.from(given, 'base64');
  return bytes.length === expected.length && crypto().timingSafeEqual(bytes, expected);
}
