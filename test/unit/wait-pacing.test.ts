// When --wait asks each failing check again (src/run/wait.ts): the backoff for a peer that gave
// no answer, the steady pace for one that answered, and how checks failing together are spread.
// Times are given, not measured: `now` is a number the test chooses.
import { describe, expect, it } from 'vitest';
import { FIRST_PAUSE_MS, MAX_PAUSE_MS, Pacing, pauseAfter, STEADY_JITTER_MS, STEADY_PAUSE_MS, type Ran } from '../../src/run/wait.js';

const answered = (id: string): Ran => ({ id, passing: false, unanswered: false });
const silent = (id: string): Ran => ({ id, passing: false, unanswered: true });
const passed = (id: string): Ran => ({ id, passing: true, unanswered: false });
const top = () => 0.999999;
const half = () => 0.5;

describe('pauseAfter: the backoff', () => {
  it('doubles from 250 ms to a 5 s cap, jittered between half and all of it', () => {
    expect(pauseAfter(1, FIRST_PAUSE_MS, MAX_PAUSE_MS, () => 0)).toBe(125);
    expect(pauseAfter(1, FIRST_PAUSE_MS, MAX_PAUSE_MS, top)).toBe(250);
    expect(pauseAfter(3, FIRST_PAUSE_MS, MAX_PAUSE_MS, half)).toBe(750);
    expect(pauseAfter(5, FIRST_PAUSE_MS, MAX_PAUSE_MS, top)).toBe(4000);
    for (const attempt of [6, 7, 50, 10_000]) {
      expect(pauseAfter(attempt, FIRST_PAUSE_MS, MAX_PAUSE_MS, top)).toBe(5000);
      expect(pauseAfter(attempt, FIRST_PAUSE_MS, MAX_PAUSE_MS, () => 0)).toBe(2500);
    }
  });
});

describe('Pacing', () => {
  it('a check whose peer answered is due again after the steady pause, however many times it failed', () => {
    const pacing = new Pacing({ spread: true, random: top });
    for (let attempt = 0, now = 0; attempt < 50; attempt++, now += 400) {
      pacing.record([answered('api')], now);
      expect(pacing.next()! - now).toBe(STEADY_PAUSE_MS + STEADY_JITTER_MS);
      expect(pacing.of('api')).toEqual({ at: now + STEADY_PAUSE_MS + STEADY_JITTER_MS, silentFor: 0 });
    }
  });

  it('the steady pause is jittered within its band', () => {
    const at = (r: number) => {
      const pacing = new Pacing({ spread: true, random: () => r });
      pacing.record([answered('api')], 1000);
      return pacing.next()! - 1000;
    };
    expect(at(0)).toBe(STEADY_PAUSE_MS - STEADY_JITTER_MS);
    expect(at(0.5)).toBe(STEADY_PAUSE_MS);
    expect(at(0.999999)).toBe(STEADY_PAUSE_MS + STEADY_JITTER_MS);
  });

  it('a check whose peer gave no answer backs off: 250 ms doubling to 5 s', () => {
    const pacing = new Pacing({ spread: true, random: top });
    const pauses: number[] = [];
    for (let attempt = 0, now = 0; attempt < 8; attempt++) {
      pacing.record([silent('db')], now);
      pauses.push(pacing.next()! - now);
      now = pacing.next()!;
    }
    expect(pauses).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    expect(pacing.of('db')!.silentFor).toBe(8);
  });

  it('a peer that answers again starts the steady pace; one that goes silent again backs off from 250 ms', () => {
    const pacing = new Pacing({ spread: true, random: top });
    for (let i = 0; i < 5; i++) pacing.record([silent('db')], i * 1000);
    pacing.record([answered('db')], 10_000);
    expect(pacing.of('db')).toEqual({ at: 10_000 + STEADY_PAUSE_MS + STEADY_JITTER_MS, silentFor: 0 });
    pacing.record([silent('db')], 11_000);
    expect(pacing.of('db')).toEqual({ at: 11_250, silentFor: 1 });
  });

  it('checks failing on answers in one attempt are spread over the steady pause, in plan order', () => {
    const pacing = new Pacing({ spread: true, random: half });
    pacing.record([answered('a'), answered('b'), answered('c')], 0);
    expect(['a', 'b', 'c'].map((id) => pacing.of(id)!.at)).toEqual([117, 233, 350]);
    expect(pacing.next()).toBe(117);
    expect(pacing.dueBy(117)).toEqual(new Set(['a']));
    // Each is then due a whole steady pause after its own run: they stay apart.
    pacing.record([answered('a')], 117);
    expect(pacing.of('a')!.at).toBe(467);
    expect(pacing.dueBy(233)).toEqual(new Set(['b']));
  });

  it('under --consecutive (no spreading) they are all due together', () => {
    const pacing = new Pacing({ spread: false, random: half });
    pacing.record([answered('a'), answered('b'), answered('c')], 0);
    expect(pacing.dueBy(350)).toEqual(new Set(['a', 'b', 'c']));
    expect(pacing.next()).toBe(350);
  });

  it('both kinds at once: each keeps its own pace, and the next attempt comes at the sooner', () => {
    const pacing = new Pacing({ spread: true, random: top });
    for (let i = 0; i < 6; i++) pacing.record([silent('dead')], i * 5000);
    pacing.record([answered('coming')], 30_000);
    expect(pacing.of('dead')).toEqual({ at: 25_000 + 5000, silentFor: 6 });
    expect(pacing.of('coming')!.at).toBe(30_000 + STEADY_PAUSE_MS + STEADY_JITTER_MS);
    pacing.record([silent('dead'), answered('coming')], 30_000);
    expect(pacing.next()).toBe(30_000 + STEADY_PAUSE_MS + STEADY_JITTER_MS);
    expect(pacing.dueBy(30_400)).toEqual(new Set(['coming']));
    expect(pacing.of('dead')!.at).toBe(35_000);
  });

  it('checks due within 20 ms of each other run together', () => {
    const pacing = new Pacing({ spread: false, random: half });
    pacing.record([answered('a')], 0);
    pacing.record([answered('b')], 15);
    pacing.record([answered('c')], 40);
    expect(pacing.dueBy(350)).toEqual(new Set(['a', 'b']));
  });

  it('a check that passes is no longer due; with nothing failing there is no next time', () => {
    const pacing = new Pacing({ spread: true, random: half });
    pacing.record([answered('a'), silent('b')], 0);
    pacing.record([passed('a'), passed('b')], 400);
    expect(pacing.of('a')).toBeUndefined();
    expect(pacing.next()).toBeUndefined();
    expect(pacing.dueBy(1e9)).toEqual(new Set());
  });

  it('allDue: when a check comes up or a refused port accepts, every failing check is due at once', () => {
    const pacing = new Pacing({ spread: true, random: top });
    for (let i = 0; i < 6; i++) pacing.record([silent('dead')], 0);
    pacing.record([answered('a'), answered('b')], 0);
    pacing.allDue(100);
    expect(pacing.dueBy(100)).toEqual(new Set(['dead', 'a', 'b']));
    // The dead peer's backoff is not reset: asked early once, it keeps backing off.
    expect(pacing.of('dead')!.silentFor).toBe(6);
  });
});
