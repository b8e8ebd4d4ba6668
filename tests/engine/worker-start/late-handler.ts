/**
 * The control of template-worker-start.test.ts: the template worker's entry as it was before the fix, the renderer
 * imported statically, so its message handler is installed only after node-llama-cpp's top-level await.
 */
import { handleMessage } from "../../../src/engine/template-render";

declare const self: Worker;
self.onmessage = (event) => handleMessage(event.data);
self.postMessage({ loaded: true });
