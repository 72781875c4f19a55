// The floor under the overhead goal (stack.bench.mjs): the network exchanges a full-stack
// verification makes, written as plainly as Node allows (raw sockets, no config, no judging, no
// report, nothing loaded but node:net). Its time beyond `node -e ""` is what those exchanges
// cost in a fresh process on this machine before any verification logic runs.
// Usage: node plain-exchanges.cjs plan.json  ({ http: [url...], post: [url...], postgres: port, redis: port, kafka: port })
// Exits 0 once every exchange got its whole answer; 1 on any error, or after 5 s.
const net = require('node:net');

const plan = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
let pending = 0;
setTimeout(() => fail(new Error('timed out')), 5000).unref();

function fail(err) {
  process.stderr.write(`plain-exchanges: ${err.message}\n`);
  process.exit(1);
}

/** Write `request`, collect bytes until `complete(buffer)` says the answer is whole. */
function exchange(port, request, complete) {
  pending++;
  const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
  let got = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    got = Buffer.concat([got, chunk]);
    if (!complete(got, socket)) return;
    socket.destroy();
    if (--pending === 0) process.exit(0);
  });
  socket.on('error', fail);
  socket.on('end', () => fail(new Error(`port ${port} closed early`)));
}

// HTTP/1.1 with Connection: close; whole once the Content-Length bytes after the head arrived.
const httpComplete = (got) => {
  const head = got.indexOf('\r\n\r\n');
  if (head < 0) return false;
  const length = /content-length: *(\d+)/i.exec(got.subarray(0, head).toString('latin1'));
  return got.length >= head + 4 + Number(length?.[1] ?? 0);
};
for (const [method, urls] of [['GET', plan.http], ['POST', plan.post]]) {
  for (const u of urls) {
    const url = new URL(u);
    const body = method === 'POST' ? '{"input":{}}' : '';
    exchange(Number(url.port), `${method} ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`, httpComplete);
  }
}

// Redis: PING and INFO; whole once INFO's bulk string is in.
exchange(plan.redis, 'PING\r\nINFO server\r\n', (got) => {
  const text = got.toString('latin1');
  const bulk = /\$(\d+)\r\n/.exec(text);
  return bulk !== null && Buffer.byteLength(text.slice(bulk.index + bulk[0].length)) >= Number(bulk[1]) + 2;
});

// PostgreSQL (trust): startup, then one simple query; whole at the second ReadyForQuery.
const pgMessage = (type, payload) => {
  const b = Buffer.alloc(5 + payload.length);
  b.write(type, 0, 'latin1');
  b.writeInt32BE(4 + payload.length, 1);
  payload.copy(b, 5);
  return b;
};
const params = Buffer.from('user\0postgres\0database\0postgres\0\0', 'latin1');
const startup = Buffer.alloc(8 + params.length);
startup.writeInt32BE(startup.length, 0);
startup.writeInt32BE(196608, 4);
params.copy(startup, 8);
let queried = false;
exchange(plan.postgres, startup, (got, socket) => {
  let ready = 0;
  for (let at = 0; at + 5 <= got.length; at += 1 + got.readInt32BE(at + 1)) if (got[at] === 0x5a) ready++;
  if (ready === 1 && !queried) {
    queried = true;
    socket.write(pgMessage('Q', Buffer.from('SELECT version()\0', 'latin1')));
  }
  return ready === 2;
});

// Kafka: ApiVersions v0, then Metadata v0 for all topics, one after another as a client must.
const kafkaRequest = (apiKey, correlationId, body) => {
  const clientId = Buffer.from('plain');
  const b = Buffer.alloc(14 + clientId.length + body.length);
  b.writeInt32BE(b.length - 4, 0);
  b.writeInt16BE(apiKey, 4);
  b.writeInt16BE(0, 6);
  b.writeInt32BE(correlationId, 8);
  b.writeInt16BE(clientId.length, 12);
  clientId.copy(b, 14);
  body.copy(b, 14 + clientId.length);
  return b;
};
let answers = 0;
exchange(plan.kafka, kafkaRequest(18, 1, Buffer.alloc(0)), (got, socket) => {
  let whole = 0;
  for (let at = 0; at + 4 <= got.length && at + 4 + got.readInt32BE(at) <= got.length; at += 4 + got.readInt32BE(at)) whole++;
  if (whole === 1 && answers === 0) {
    answers = 1;
    socket.write(kafkaRequest(3, 2, Buffer.alloc(4))); // an empty topic array: all topics
  }
  return whole === 2;
});
