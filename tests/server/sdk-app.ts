/**
 * The app on the tiny model, listening on a free loopback port, with an official openai SDK client pointed at it:
 * what the server tests that speak through the SDK share. Call sdkApp() at the top of a test file: it registers
 * the beforeAll that starts it and the afterAll that stops the server and frees the engine; read the fields in tests.
 */
import { afterAll, beforeAll } from "bun:test";
import OpenAI from "openai";
import { listenApp, makeApp, type TestAppOptions } from "../helpers";

export interface SdkApp {
  ctx: Awaited<ReturnType<typeof makeApp>>;
  baseURL: string;
  client: OpenAI;
}

export function sdkApp(opts: TestAppOptions = {}): SdkApp {
  const s = {} as SdkApp;
  beforeAll(async () => {
    s.ctx = await makeApp(opts);
    s.baseURL = listenApp(s.ctx.app);
    s.client = new OpenAI({ apiKey: s.ctx.key, baseURL: `${s.baseURL}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await s.ctx?.app.stop(true);
    await s.ctx?.engine.dispose();
  });
  return s;
}
