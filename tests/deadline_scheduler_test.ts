/**
 * lib/quic/deadline_scheduler.ts under @sinonjs/fake-timers, which fakes setTimeout,
 * clearTimeout and performance.now() in Deno, so every firing time is exact. One test at the
 * end runs on the real clock.
 */
import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { DeadlineScheduler } from "../lib/quic/deadline_scheduler.ts";

interface Clock {
  now: number;
  tick(ms: number): number;
  runAll(): number;
  countTimers(): number;
  uninstall(): void;
}

interface Harness<T> {
  clock: Clock;
  scheduler: DeadlineScheduler<T>;
  /** Every onDue call: the fake time it ran at and the items, sorted. */
  calls: { at: number; items: T[] }[];
  /** setTimeout calls made since the harness started. */
  armed: () => number;
}

/**
 * Runs `body` with fake timers installed (performance.now() starts at 0) and a scheduler
 * recording its onDue calls. Timers are uninstalled even when the body fails.
 */
function withFakeClock<T>(
  body: (h: Harness<T>) => void,
  onDue?: (items: T[], h: Harness<T>) => void,
): void {
  const clock = FakeTimers.withGlobal(globalThis).install({
    now: 0,
    toFake: ["setTimeout", "clearTimeout", "performance"],
  }) as Clock;
  const fakeSetTimeout = globalThis.setTimeout;
  let armed = 0;
  // Count timers the scheduler arms; it looks up the global on each call.
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    armed++;
    return fakeSetTimeout(...args);
  }) as typeof setTimeout;
  try {
    const h = {} as Harness<T>;
    h.clock = clock;
    h.calls = [];
    h.armed = () => armed;
    h.scheduler = new DeadlineScheduler<T>((items) => {
      assert.equal(performance.now(), clock.now, "performance.now() is faked");
      h.calls.push({ at: clock.now, items: [...items].sort() });
      onDue?.(items, h);
    });
    body(h);
    h.scheduler.clear();
  } finally {
    globalThis.setTimeout = fakeSetTimeout;
    clock.uninstall();
  }
}

Deno.test("fake-timers fakes performance.now() in Deno", () => {
  const real = performance.now();
  const clock = FakeTimers.withGlobal(globalThis).install({
    now: 0,
    toFake: ["setTimeout", "clearTimeout", "performance"],
  });
  try {
    assert.equal(performance.now(), 0);
    clock.tick(1234);
    assert.equal(performance.now(), 1234);
  } finally {
    clock.uninstall();
  }
  assert.ok(performance.now() >= real);
});

Deno.test("items fire at their deadlines, in deadline order; equal deadlines in one call", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("b", 50);
    scheduler.set("c", 200);
    scheduler.set("d", 200);
    scheduler.set("e", 75);
    assert.equal(scheduler.size, 5);
    clock.tick(49);
    assert.deepEqual(calls, []);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 50, items: ["b"] }]);
    clock.tick(150);
    assert.deepEqual(calls, [
      { at: 50, items: ["b"] },
      { at: 75, items: ["e"] },
      { at: 100, items: ["a"] },
      { at: 200, items: ["c", "d"] },
    ]);
    clock.tick(10_000);
    assert.equal(calls.length, 4, "each item fires once");
    assert.equal(clock.countTimers(), 0, "no timer left armed");
  });
});

Deno.test("1000 items with shuffled deadlines each fire once, exactly at their deadline", () => {
  withFakeClock<number>(({ clock, scheduler, calls }) => {
    const deadline = (i: number) => 1 + ((i * 7919) % 5000); // distinct, 1..5000
    for (let i = 0; i < 1000; i++) scheduler.set(i, deadline(i));
    clock.tick(5000);
    const fired = calls.flatMap((c) => c.items.map((item) => [item, c.at]));
    assert.equal(fired.length, 1000);
    for (const [item, at] of fired) assert.equal(at, deadline(item), `item ${item}`);
    for (let i = 1; i < calls.length; i++) assert.ok(calls[i - 1].at < calls[i].at);
    assert.equal(new Set(fired.map(([item]) => item)).size, 1000);
  });
});

Deno.test("moving a deadline earlier fires at the new time, once", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("a", 30);
    clock.tick(29);
    assert.deepEqual(calls, []);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 30, items: ["a"] }]);
    clock.tick(1000);
    assert.deepEqual(calls, [{ at: 30, items: ["a"] }], "not again at the old time");
  });
});

Deno.test("moving a deadline later does not fire at the old time", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("b", 150);
    scheduler.set("a", 300);
    clock.tick(100);
    assert.deepEqual(calls, []);
    clock.tick(50);
    assert.deepEqual(calls, [{ at: 150, items: ["b"] }]);
    clock.tick(149);
    assert.equal(calls.length, 1);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 150, items: ["b"] }, { at: 300, items: ["a"] }]);
    clock.tick(1000);
    assert.equal(calls.length, 2);
    assert.equal(clock.countTimers(), 0);
  });
});

Deno.test("moving later, then earlier than the first deadline, then later again", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("a", 500);
    scheduler.set("a", 40);
    scheduler.set("a", 250);
    clock.tick(249);
    assert.deepEqual(calls, []);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 250, items: ["a"] }]);
    clock.tick(1000);
    assert.equal(calls.length, 1);
  });
});

Deno.test("Infinity clears a deadline; a later set works again", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("b", 120);
    scheduler.set("a", Infinity);
    clock.tick(110);
    assert.deepEqual(calls, []);
    clock.tick(10);
    assert.deepEqual(calls, [{ at: 120, items: ["b"] }]);
    // Setting Infinity on an unknown item is a no-op.
    scheduler.set("z", Infinity);
    clock.tick(10_000);
    assert.equal(calls.length, 1);
    assert.equal(clock.countTimers(), 0);
    scheduler.set("a", clock.now + 30);
    clock.tick(30);
    assert.deepEqual(calls.at(-1), { at: 10_150, items: ["a"] });
    // Infinity then a deadline past the old one (the stale early entry must not fire it).
    scheduler.set("c", clock.now + 50);
    scheduler.set("c", Infinity);
    scheduler.set("c", clock.now + 80);
    clock.tick(79);
    assert.equal(calls.length, 2);
    clock.tick(1);
    assert.deepEqual(calls.at(-1), { at: 10_230, items: ["c"] });
  });
});

Deno.test("size counts items that still have a deadline", () => {
  withFakeClock<string>(({ clock, scheduler }) => {
    assert.equal(scheduler.size, 0);
    scheduler.set("a", 100);
    scheduler.set("b", 200);
    scheduler.set("c", 300);
    assert.equal(scheduler.size, 3);
    scheduler.delete("c");
    assert.equal(scheduler.size, 2);
    scheduler.set("b", Infinity); // cleared: b has no deadline any more
    assert.equal(scheduler.size, 1);
    clock.tick(100); // a fired: it has no deadline any more either
    assert.equal(scheduler.size, 0);
  });
});

Deno.test("delete prevents firing; re-adding after delete fires once", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("b", 100);
    scheduler.delete("a");
    scheduler.delete("nobody"); // unknown: no-op
    clock.tick(100);
    assert.deepEqual(calls, [{ at: 100, items: ["b"] }]);
    // Delete, then set again at the same time as the stale entry.
    scheduler.set("c", 200);
    scheduler.delete("c");
    scheduler.set("c", 200);
    clock.tick(100);
    assert.deepEqual(calls.at(-1), { at: 200, items: ["c"] });
    clock.tick(1000);
    assert.equal(calls.length, 2);
    // Delete, then set later than the stale entry.
    scheduler.set("d", 1300);
    scheduler.delete("d");
    scheduler.set("d", 1400);
    clock.tick(100); // 1300: nothing
    assert.equal(calls.length, 2);
    clock.tick(100);
    assert.deepEqual(calls.at(-1), { at: 1400, items: ["d"] });
    assert.equal(calls.length, 3);
  });
});

Deno.test("a deadline already past fires on the next timer turn", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    clock.tick(1000);
    scheduler.set("late", 400);
    assert.deepEqual(calls, [], "never synchronously inside set()");
    clock.tick(0);
    assert.deepEqual(calls, [{ at: 1000, items: ["late"] }]);
  });
});

Deno.test("fractional deadlines fire no earlier than the deadline", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("x", 10.5);
    scheduler.set("y", 20.25);
    clock.tick(10);
    assert.deepEqual(calls, []);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 11, items: ["x"] }]);
    clock.tick(9);
    assert.equal(calls.length, 1);
    clock.tick(1);
    assert.deepEqual(calls.at(-1), { at: 21, items: ["y"] });
  });
});

Deno.test("onDue may set new deadlines, for the fired items and others", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("tick", 10);
    clock.tick(100);
    assert.deepEqual(calls.map((c) => [c.at, ...c.items]), [
      [10, "tick"],
      [20, "tick"],
      [25, "other"],
      [30, "tick"],
      [40, "tick"],
      [50, "tick"],
    ]);
  }, (items, h) => {
    if (items.includes("tick") && h.clock.now < 50) h.scheduler.set("tick", h.clock.now + 10);
    if (items.includes("tick") && h.clock.now === 20) h.scheduler.set("other", 25);
  });
});

Deno.test("100k updates moving one deadline later arm no new timers and fire once", () => {
  withFakeClock<string>(({ clock, scheduler, calls, armed }) => {
    scheduler.set("conn", 1);
    for (let i = 1; i <= 100_000; i++) scheduler.set("conn", 1 + i);
    assert.equal(armed(), 1, "later deadlines do not re-arm the timer");
    assert.equal(clock.countTimers(), 1);
    clock.tick(100_000);
    assert.deepEqual(calls, []);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 100_001, items: ["conn"] }]);
    assert.ok(armed() <= 2, `armed ${armed()} timers`);
    assert.equal(clock.countTimers(), 0);
  });
});

Deno.test("100k updates moving one deadline earlier fire once and leave nothing queued", () => {
  withFakeClock<string>(({ clock, scheduler, calls, armed }) => {
    for (let i = 0; i < 100_000; i++) scheduler.set("conn", 200_000 - i);
    clock.tick(100_000);
    assert.deepEqual(calls, []);
    clock.tick(1);
    assert.deepEqual(calls, [{ at: 100_001, items: ["conn"] }]);
    // Nothing is due any more: the 99,999 superseded deadlines must not keep waking the
    // timer (each one would otherwise be a separate wake-up, 1 ms apart, for 100 s).
    assert.equal(clock.countTimers(), 0, "no timer armed after the only item fired");
    const armedBefore = armed();
    clock.tick(100_000);
    assert.equal(calls.length, 1);
    assert.ok(
      armed() - armedBefore <= 1,
      `${armed() - armedBefore} more wake-ups with nothing due`,
    );
  });
});

Deno.test("many items updated many times: a random workload matches a reference model", () => {
  withFakeClock<number>(({ clock, scheduler, calls }) => {
    let seed = 12345;
    const random = (n: number) => {
      seed ^= seed << 13;
      seed >>>= 0;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      seed >>>= 0;
      return seed % n;
    };
    const model = new Map<number, number>();
    let firedCount = 0;
    for (let step = 0; step < 3000; step++) {
      for (let op = random(4); op > 0; op--) {
        const item = random(50);
        const choice = random(10);
        if (choice === 0) {
          scheduler.delete(item);
          model.delete(item);
        } else if (choice === 1) {
          scheduler.set(item, Infinity);
          model.delete(item);
        } else {
          const at = clock.now + 1 + random(200);
          scheduler.set(item, at);
          model.set(item, at);
        }
      }
      const before = calls.length;
      clock.tick(1);
      const expected = [...model].filter(([, at]) => at <= clock.now).map(([item]) => item);
      for (const item of expected) model.delete(item);
      const got = calls.slice(before).flatMap((c) => c.items);
      assert.deepEqual(got.sort((a, b) => a - b), expected.sort((a, b) => a - b), `step ${step}`);
      for (const c of calls.slice(before)) assert.equal(c.at, clock.now);
      firedCount += got.length;
    }
    assert.ok(firedCount > 300, `fired ${firedCount}`);
  });
});

Deno.test("clear() stops the timer and forgets every item", () => {
  withFakeClock<string>(({ clock, scheduler, calls }) => {
    scheduler.set("a", 100);
    scheduler.set("b", 200);
    scheduler.set("a", 50);
    assert.equal(clock.countTimers(), 1);
    scheduler.clear();
    assert.equal(scheduler.size, 0);
    assert.equal(clock.countTimers(), 0);
    clock.tick(10_000);
    assert.deepEqual(calls, []);
    // Usable after clear.
    scheduler.set("c", clock.now + 5);
    clock.tick(5);
    assert.deepEqual(calls, [{ at: 10_005, items: ["c"] }]);
    scheduler.clear();
    scheduler.clear();
    assert.equal(clock.countTimers(), 0);
  });
});

Deno.test("real clock: deadlines fire in order, never before performance.now() reaches them", async () => {
  const fired: { item: string; now: number }[] = [];
  const deadlines = new Map<string, number>();
  let resolve!: () => void;
  const done = new Promise<void>((r) => resolve = r);
  const scheduler = new DeadlineScheduler<string>((items) => {
    const now = performance.now();
    for (const item of items) fired.push({ item, now });
    if (fired.length === 4) resolve();
  });
  const start = performance.now();
  for (const [item, offset] of [["c", 25.5], ["a", 5.25], ["d", 30], ["b", 15.75]] as const) {
    deadlines.set(item, start + offset);
    scheduler.set(item, start + offset);
  }
  scheduler.set("gone", start + 10);
  scheduler.delete("gone");
  const timeout = setTimeout(() => resolve(), 5000);
  await done;
  clearTimeout(timeout);
  scheduler.clear();
  assert.deepEqual(fired.map((f) => f.item), ["a", "b", "c", "d"]);
  for (const f of fired) {
    assert.ok(
      f.now >= deadlines.get(f.item)!,
      `${f.item} fired ${deadlines.get(f.item)! - f.now} ms early`,
    );
  }
});
