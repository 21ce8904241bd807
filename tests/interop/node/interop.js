// Drives a Faktory server with the Node client (faktory-worker), end to end over TCP.
//
// Run by tests/interop/test_interop_node.py. The server URL (with or without a password) comes
// from FAKTORY_URL, the worker's wid from INTEROP_WID. The script walks through steps; after
// each one it prints a JSON line {"step": NAME, ...} on stdout and waits for the test to check
// the server's state and answer "go" on stdin:
//
//   pushed  - jobs PUSHed / PUSHBed (one bulk job invalid, one scheduled an hour ahead)
//   worked  - a Worker fetched and ran them: ACK for "add", FAIL (with a backtrace) for "boom"
//   quiet   - the worker saw {"state":"quiet"} in a BEAT reply (the test quieted it)
//   stopped - the worker saw {"state":"terminate"}, stopped and closed its connections
//   done    - MUTATE moved the failed job to the dead set and discarded the scheduled one
"use strict";

const readline = require("node:readline");
const { Client, Worker } = require("faktory-worker");

const url = process.env.FAKTORY_URL;
const wid = process.env.INTEROP_WID;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(name, data = {}) {
  process.stdout.write(`${JSON.stringify({ step: name, ...data })}\n`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== "go") {
    throw new Error(`after step ${name} the test said ${JSON.stringify(value)}, not "go"`);
  }
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function waitFor(predicate, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

class BoomError extends Error {
  constructor(message) {
    super(message);
    this.name = "BoomError";
    this.code = "BoomError"; // faktory-worker sends e.code as the errtype
  }
}

async function main() {
  // -- producer ------------------------------------------------------------------------
  const client = new Client({ url });
  const infoBefore = await client.info();

  const plain = await client.job("add", 1, 2).push();
  const urgentJob = client.job("add", 3, 4);
  urgentJob.queue = "critical";
  urgentJob.priority = 9;
  urgentJob.custom = { source: "node", nested: { n: 1 } };
  const urgent = await urgentJob.push();
  const boomJob = client.job("boom", "kaput");
  boomJob.retry = 3;
  const boom = await boomJob.push();
  const badJid = "node-bad-bulk-job";
  const rejected = await client.pushBulk([
    { jobtype: "add", args: [5, 6] },
    { jobtype: "add", args: [7, 8] },
    { jid: badJid, jobtype: "", args: [] },
  ]);
  const laterJob = client.job("add", 9, 9);
  laterJob.at = new Date(Date.now() + 3600 * 1000);
  const later = await laterJob.push();
  await client.close();
  await step("pushed", {
    jids: { plain, urgent, boom, later, bad: badJid },
    rejected: Object.fromEntries(Object.entries(rejected).map(([j, r]) => [j, r.reason])),
    server: infoBefore.server,
  });

  // -- worker ----------------------------------------------------------------------------
  const results = [];
  const failures = [];
  const worker = new Worker({
    url,
    wid,
    labels: ["node", "interop"],
    queues: ["critical", "default"],
    concurrency: 2,
    beatInterval: 0.2, // seconds
    timeout: 5,
  });
  worker.register("add", async (a, b) => {
    results.push(a + b);
  });
  worker.register("boom", async (why) => {
    throw new BoomError(`boom: ${why}`);
  });
  worker.on("fail", ({ job, error }) => failures.push({ jid: job.jid, message: error.message }));
  const beats = [];
  const beat = worker.client.beat.bind(worker.client);
  worker.client.beat = async () => {
    const state = await beat();
    beats.push(state);
    return state;
  };
  const quieted = deferred();
  const quiet = worker.quiet.bind(worker);
  worker.quiet = () => {
    quiet();
    quieted.resolve();
  };
  const stopped = deferred();
  const stop = worker.stop.bind(worker);
  worker.stop = async () => {
    await stop();
    stopped.resolve();
  };

  await worker.work();
  await waitFor(
    () => results.length + failures.length === 5 && worker.working.size === 0,
    "five jobs to be ACKed or FAILed",
  );
  await step("worked", { results: [...results].sort((x, y) => x - y), failures, pid: process.pid });

  await quieted.promise;
  await step("quiet", { beats: [...new Set(beats)] });

  await stopped.promise;
  await step("stopped", { beats: [...new Set(beats)] });

  // -- mutate ------------------------------------------------------------------------------
  const admin = new Client({ url });
  await admin.retries.withJids(boom).kill();
  await admin.scheduled.ofType("add").discard();
  const infoAfter = await admin.info();
  await admin.close();
  process.stdout.write(`${JSON.stringify({ step: "done", faktory: infoAfter.faktory })}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`interop.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
