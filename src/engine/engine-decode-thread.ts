/**
 * The one source change we make to node-llama-cpp's addon before building the engine: every `llama_decode` runs on
 * ONE long-lived native thread ("llama-decode"), so the engine has one OpenMP master for its whole life, like
 * llama-server (whose main thread is its only master).
 *
 * Why: the addon runs each decode as N-API async work (AddonContextDecodeBatchWorker::Execute) on the runtime's
 * work pool, and Bun's pool hands consecutive decodes to different threads. Every thread that enters ggml's
 * `#pragma omp parallel` becomes the master of a libgomp team of its own, so a 2-thread engine kept two or more
 * teams: libgomp then counts more threads than CPUs and throttles its barrier spin (a futex sleep and wake-up at the
 * dozens of barriers in each decode step), and the kernel moves the extra team threads between the cores. Binding
 * the threads (OMP_PROC_BIND, engine-build-env.ts) hid that, but needs sched_setaffinity, which the installed
 * unit denies. With one master there is one team of n_threads - 1 workers, whatever thread the pool picks.
 *
 * The pool thread hands the decode over and blocks until it is done (decodes of one context are already one at a
 * time; decodes of different contexts now take turns, as they would share the same cores anyway). A context set to
 * one thread decodes on the pool thread as before: ggml starts no team then, and the hand-over cost ~6% of 1-thread
 * decode (28 M, 159 vs 170 tok/s, 6.2 vs 2.7 voluntary context switches per token). An exception
 * thrown by llama_decode is carried back and rethrown on the pool thread, where the addon's own catch reports it.
 *
 * The patch is exact: each anchor must occur once in the addon source, else the build stops naming the
 * node-llama-cpp version, because a silently unpatched engine would look built and run slow.
 */

/** The patch's name, as recorded in the engine sources' `patches` and in each built engine's record. */
export const DECODE_THREAD_PATCH = "appliance-decode-thread-v1";
/** The addon file the patch changes, relative to node-llama-cpp's llama/ folder. */
export const DECODE_THREAD_FILE = "addon/AddonContext.cpp";
/** The name the decode thread (and the OpenMP team threads it starts, which inherit it) shows in /proc/…/comm. */
export const DECODE_THREAD_NAME = "llama-decode";

const CLASS_ANCHOR = "class AddonContextDecodeBatchWorker : public Napi::AsyncWorker {";
const CALL_ANCHOR = "int r = llama_decode(ctx->ctx, ctx->batch);";

/** The C++ put before the decode worker's class. */
const HELPER = `// ${DECODE_THREAD_PATCH}: added by appliance (src/engine/engine-decode-thread.ts). Every llama_decode runs on one
// long-lived thread, so ggml's OpenMP parallel regions always have the same master and libgomp keeps one team.
#include <condition_variable>
#include <exception>
#include <mutex>
#include <pthread.h>

namespace appliance_decode_thread {
struct State {
    std::mutex callers;               // one decode at a time
    std::mutex lock;                  // guards the fields below
    std::condition_variable ready;    // a job was posted
    std::condition_variable finished; // the job is done
    llama_context* ctx = nullptr;
    llama_batch batch {};
    int result = 0;
    std::exception_ptr error;
    bool pending = false;
    bool done = false;
};

// Never freed: the thread is detached and may still be waiting on it while the process exits.
static State* state() {
    static State* s = [] {
        State* st = new State();
        std::thread([st] {
#if defined(__linux__)
            pthread_setname_np(pthread_self(), "${DECODE_THREAD_NAME}");
#endif
            std::unique_lock<std::mutex> lk(st->lock);
            for (;;) {
                st->ready.wait(lk, [st] { return st->pending; });
                st->pending = false;
                llama_context* c = st->ctx;
                llama_batch b = st->batch;
                lk.unlock();
                int r = 0;
                std::exception_ptr e;
                try {
                    r = llama_decode(c, b);
                } catch (...) {
                    e = std::current_exception();
                }
                lk.lock();
                st->result = r;
                st->error = e;
                st->done = true;
                st->finished.notify_all();
            }
        }).detach();
        return st;
    }();
    return s;
}

// llama_decode on the decode thread; the calling thread waits for it (and gets its exception, if any).
static int decode(llama_context* ctx, llama_batch batch) {
    // One compute thread starts no OpenMP team (ggml calls it directly): the hand-over would only cost two wake-ups.
    if (llama_n_threads(ctx) <= 1 && llama_n_threads_batch(ctx) <= 1) return llama_decode(ctx, batch);
    State* s = state();
    std::lock_guard<std::mutex> one(s->callers);
    std::unique_lock<std::mutex> lk(s->lock);
    s->ctx = ctx;
    s->batch = batch;
    s->done = false;
    s->pending = true;
    s->ready.notify_one();
    s->finished.wait(lk, [s] { return s->done; });
    std::exception_ptr e = s->error;
    s->error = nullptr;
    if (e) std::rethrow_exception(e);
    return s->result;
}
}  // namespace appliance_decode_thread

`;

/** Whether an addon source already carries the patch. */
export const hasDecodeThreadPatch = (source: string) => source.includes(`// ${DECODE_THREAD_PATCH}:`);

/**
 * Applies the patch to AddonContext.cpp's text. Throws, naming `nlcVersion`, when an anchor is missing or not unique
 * (a node-llama-cpp update changed the decode worker: the patch must be redone for it).
 */
export function patchDecodeThread(source: string, nlcVersion: string): string {
  if (hasDecodeThreadPatch(source)) return source;
  for (const anchor of [CLASS_ANCHOR, CALL_ANCHOR]) {
    const n = source.split(anchor).length - 1;
    if (n !== 1) {
      throw new Error(`engine patch ${DECODE_THREAD_PATCH}: node-llama-cpp ${nlcVersion}'s llama/${DECODE_THREAD_FILE} has ${n} ` +
        `occurrences of ${JSON.stringify(anchor)} (expected 1); the decode worker changed, so redo the patch for this version (src/engine/engine-decode-thread.ts)`);
    }
  }
  return source
    .replace(CLASS_ANCHOR, () => `${HELPER}${CLASS_ANCHOR}`)
    .replace(CALL_ANCHOR, () => "int r = appliance_decode_thread::decode(ctx->ctx, ctx->batch);");
}
