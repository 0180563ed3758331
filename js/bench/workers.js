// Loaded first by both harness pages (a classic script, before the wasm libraries): it keeps
// every Worker the page starts (`startedWorkers`), so that a tab with wasm threads can stop the
// workers that run them before its last page-memory reading (common.mjs, report). Chromium
// asks each of the tab's workers for its heap and waits up to 60 s for the answers; a worker
// running a wasm thread sits in Atomics.wait and never answers (its JS heap is left out), a
// stopped one is not asked. The wasm memory it shared stays counted, as do idle workers.
(() => {
  const NativeWorker = self.Worker;
  const started = [];
  self.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      started.push(this);
    }
  };
  self.startedWorkers = started;
  // A worker that does not stop when asked (a thread in Atomics.wait) is ended by force 2 s
  // later (Chromium's forcible termination delay); until then a reading still waits 60 s for
  // it. Measured here with two such workers: 1 s after terminate() too early, 2.1 s enough.
  const WORKERS_GONE_MS = 3000;
  // Stops `workers`; the tab's wasm runtime cannot run again afterwards.
  self.stopWorkers = async (workers) => {
    workers.forEach((worker) => worker.terminate());
    await new Promise((resolve) => setTimeout(resolve, WORKERS_GONE_MS));
  };
})();
