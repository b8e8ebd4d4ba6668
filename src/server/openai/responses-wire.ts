/**
 * POST /v1/responses request schema as the route imports it: a stand-in (lazy-schema.ts) for the schema in
 * responses-wire-schemas.ts, which is loaded, and built, at the first request that uses it instead of at program load.
 */
import type * as Schemas from "./responses-wire-schemas";
import { lazySchema } from "./lazy-schema";

let loaded: typeof Schemas | undefined;
// require, not import: a static import would evaluate responses-wire-schemas.ts (and build the schema) with this module.
const schemas = () => loaded ??= require("./responses-wire-schemas") as typeof Schemas;

export const responsesRequest = lazySchema(() => schemas().responsesRequest);

export type ResponsesRequest = Schemas.ResponsesRequest;
