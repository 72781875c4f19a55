/**
 * The readable start of what a peer of the wrong protocol answered, for a message such as
 * `not a Redis server on h:p (it answered "HTTP/1.1 400 Bad Request")`: its first line, with
 * unprintable runs as spaces, at most 60 characters.
 */
export function previewForeignBytes(bytes: Buffer): string {
  const line = bytes.subarray(0, 120).toString('latin1').split(/\r?\n/)[0] ?? '';
  const text = line.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}
