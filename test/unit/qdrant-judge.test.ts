// judge() of checks/qdrant.ts on answers shaped like Qdrant's public API: no server.
import { describe, expect, it } from 'vitest';
import { judge, type QdrantFacts } from '../../checks/qdrant.js';
import { HttpError, type HttpResponse } from '../../src/clients/http.js';
import { settledAnswer } from '../support/http-answer.js';

const answer = (status: number, body: unknown) => settledAnswer(status, body, { totalMs: 3.4 });
const collection = (status: string, vectors: unknown = { size: 768, distance: 'Cosine' }) =>
  answer(200, { result: { status, points_count: 5, indexed_vectors_count: 0, segments_count: 2, config: { params: { vectors } } }, status: 'ok' });
const facts = (over: Partial<QdrantFacts> = {}): QdrantFacts => ({
  readyz: answer(200, 'all shards are ready'),
  root: answer(200, { title: 'qdrant - vector search engine', version: '1.13.6' }),
  listing: answer(200, { result: { collections: [{ name: 'memories' }] }, status: 'ok' }),
  collections: [],
  ...over,
});
const url = 'http://qdrant:6333';

describe('qdrant judge', () => {
  it('passes a ready server, naming its collections and version', () => {
    const v = judge(facts(), { url, collections: [] });
    expect(v).toMatchObject({ status: 'pass', message: 'Qdrant ready, 1 collection' });
    expect(v.details).toMatchObject({ readiness: 'ready', readinessEndpoint: '/readyz', version: '1.13.6', collections: ['memories'], latencyMs: 3 });
  });

  it('judges required collections: green passes, yellow warns, red and mismatches fail', () => {
    const one = (c: PromiseSettledResult<HttpResponse>, spec: unknown = 'memories') => judge(facts({ collections: [c] }), { url, collections: [spec as string] });
    expect(one(collection('green')).message).toBe('Qdrant ready, 1 collection, required memories green');
    expect(one(collection('yellow'))).toMatchObject({ status: 'warn', message: 'collection memories is yellow (optimizing)' });
    expect(one(collection('red'))).toMatchObject({ status: 'fail', message: 'collection memories is red (an operation failed)' });
    expect(one(collection('green'), { name: 'memories', size: 1536, distance: 'Dot' }).message).toBe(
      'collection memories vector size 768, expected 1536, distance Cosine, expected Dot',
    );
    expect(one(answer(404, { status: { error: 'Not found' } })).message).toBe('collection memories missing');
  });

  it('warns when /readyz is absent (404): the collections answer, shard readiness is unknown', () => {
    expect(judge(facts({ readyz: answer(404, { status: { error: 'Not found' } }) }), { url, collections: [] })).toMatchObject({
      status: 'warn',
      message: 'Qdrant answers, but has no /readyz: shard readiness unknown; 1 collection',
    });
  });

  it('fails shards not ready, and a key that is missing or rejected', () => {
    expect(judge(facts({ readyz: answer(503, 'some shards are not ready') }), { url, collections: [] }).message).toBe(
      'Qdrant at http://qdrant:6333: shards not ready (/readyz answered HTTP 503: some shards are not ready)',
    );
    const denied = facts({ listing: answer(401, 'Invalid API key or JWT') });
    expect(judge(denied, { url, apiKey: 'k', collections: [] }).message).toBe('Qdrant rejected the API key (HTTP 401)');
    expect(judge(denied, { url, collections: [] }).message).toBe('Qdrant requires an API key (HTTP 401) and none is configured');
  });

  it('fails what is not Qdrant, and reports the first request that got no answer', () => {
    const notQdrant = facts({ readyz: answer(404, ''), listing: answer(200, { hello: 'world' }) });
    expect(judge(notQdrant, { url, collections: [] }).message).toMatch(/^not a Qdrant API at http:\/\/qdrant:6333 \(GET \/collections answered HTTP 200/);
    const refused = { status: 'rejected', reason: new HttpError('connection refused on qdrant:6333', 'ECONNREFUSED') } as const;
    expect(judge(facts({ readyz: refused, listing: refused }), { url, collections: [] }).message).toBe('GET /readyz: connection refused on qdrant:6333');
  });
});

describe('qdrant options', () => {
  it('refuses a misspelt key of a collection instead of dropping it ("vectorSize" for "size")', async () => {
    const { default: qdrant } = await import('../../checks/qdrant.js');
    const r = qdrant.options['~standard'].validate({ url: 'http://q:6333', collections: [{ name: 'memories', vectorSize: 768 }] }) as { issues?: Array<{ message: string }> };
    expect(r.issues?.length).toBeGreaterThan(0);
  });
});
