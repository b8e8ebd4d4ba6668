/**
 * OpenAI wire schemas as the routes import them: stand-ins (lazy-schema.ts) for the schemas in wire-schemas.ts,
 * which is loaded, and its schemas built, at the first request that uses one instead of at program load.
 */
import type * as Schemas from "./wire-schemas";
import { lazySchema } from "./lazy-schema";
import { responsesRequest } from "./responses-wire";

export { MAX_CHOICES } from "../../guards/bounds";

let loaded: typeof Schemas | undefined;
// require, not import: a static import would evaluate wire-schemas.ts (and build every schema) with this module.
const schemas = () => loaded ??= require("./wire-schemas") as typeof Schemas;

/**
 * Builds the request schemas and runs each once: serve calls it soon after it starts listening (listen.ts), so the first request
 * does not pay the construction (12-25 ms: the first turn loads wire-schemas.ts, which builds them all) and zod's
 * first parse of each (one schema per later turn, so a request arriving meanwhile waits for one at most). A request
 * that comes in first builds what it needs itself. Resolves when all are built.
 */
export async function prepareWireSchemas(): Promise<void> {
  for (const schema of [chatCompletionRequest, completionRequest, embeddingRequest, tokenizeRequest, detokenizeRequest, responsesRequest]) {
    await new Promise((resolve) => setImmediate(resolve));
    (schema as unknown as { "~standard": { validate: (v: unknown) => unknown } })["~standard"].validate({});
  }
}

export const chatCompletionRequest = lazySchema(() => schemas().chatCompletionRequest);
export const completionRequest = lazySchema(() => schemas().completionRequest);
export const embeddingRequest = lazySchema(() => schemas().embeddingRequest);
export const tokenizeRequest = lazySchema(() => schemas().tokenizeRequest);
export const detokenizeRequest = lazySchema(() => schemas().detokenizeRequest);
/** Response shapes, for the docs page. */
export const errorBody = lazySchema(() => schemas().errorBody);
export const modelObject = lazySchema(() => schemas().modelObject);
export const modelList = lazySchema(() => schemas().modelList);
export const chatCompletionObject = lazySchema(() => schemas().chatCompletionObject);
export const textCompletionObject = lazySchema(() => schemas().textCompletionObject);
export const embeddingListObject = lazySchema(() => schemas().embeddingListObject);
export const responseObjectShape = lazySchema(() => schemas().responseObjectShape);

export type ChatCompletionRequest = Schemas.ChatCompletionRequest;
export type CompletionRequest = Schemas.CompletionRequest;
export type TokenizeRequest = Schemas.TokenizeRequest;
