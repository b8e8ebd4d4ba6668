/**
 * Entry of the chat-template worker (template-bound.ts, template-sync.ts; a separate entrypoint of the compiled
 * binary, scripts/build.ts). The parent posts the init right after `new Worker`. Bun 1.4, like browsers, hands a
 * message that arrives before the worker has a message handler to nobody, and node-llama-cpp's module graph has
 * a top-level await (dist/bindings/utils/binariesGithubRelease.js): with the renderer imported statically, its
 * handler was installed only after that await, and now and then (about 1 start in 40 on a loaded 2-core machine)
 * the init was lost, the worker never became ready, and the chats waiting on it were refused after 60 s (READY_MS). So the
 * handler is installed first, synchronously, keeps what arrives, and the renderer is loaded after it.
 */
import type { TemplateInit, TemplateJob, TemplateProbe } from "./template-render";
import { startIsOver } from "../util/jit-policy";

declare const self: Worker;

const early: (TemplateInit | TemplateJob | TemplateProbe)[] = [];
self.onmessage = (event: MessageEvent<TemplateInit | TemplateJob | TemplateProbe>) => { early.push(event.data); };
const { handleMessage } = await import("./template-render");
// Loaded under the binary's start-up JIT policy (util/jit-policy.ts); renders run for as long as the server does, so
// the normal policy from here, before the first message is handled.
startIsOver();
self.onmessage = (event: MessageEvent<TemplateInit | TemplateJob | TemplateProbe>) => handleMessage(event.data);
for (const msg of early.splice(0)) handleMessage(msg);
