/**
 * The engine's language. Routes translate OpenAI wire fields into these types;
 * the engine never sees wire names, and nothing outside engine/ sees node-llama-cpp.
 */
/** A call the model made; `arguments` is the JSON text it produced. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface ChatTurn {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** assistant: the tools it called. */
  toolCalls?: ToolCall[];
  /** assistant: its thought, as a reasoning model's answer gave it (rendered where the model's template keeps thoughts). */
  reasoning?: string;
  /** tool: which call this is the result of. */
  toolCallId?: string;
}

/** A tool the model may call; `parameters` is a JSON schema of its arguments object. */
export interface ToolSpec {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
}

/** "auto": the model decides; "required" / a name: the answer is forced to be a call. */
export type ToolChoice = "auto" | "required" | { name: string };

export interface ToolUse {
  tools: ToolSpec[];
  choice: ToolChoice;
  /** More than one call in one answer ("auto" only). */
  parallel: boolean;
}

export type OutputFormat =
  | { kind: "text" }
  | { kind: "json" }
  | { kind: "json_schema"; schema: Record<string, unknown> };

export interface Sampling {
  maxTokens: number;
  /**
   * maxTokens is the server's default, not the client's: it is lowered to what the context leaves after the prompt
   * (OpenAI's default is all of it), so a request that asked for no length is never refused for one.
   */
  maxTokensDefaulted?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Unset: a fresh random seed per call. */
  seed?: number;
  stop?: string[];
  presencePenalty?: number;
  frequencyPenalty?: number;
  format?: OutputFormat;
  /** Token id → logit added (OpenAI's logit_bias; -100 bans the token). */
  logitBias?: ReadonlyMap<number, number>;
  /** Record each generated token's log probability and this many alternatives (0-20); unset: none. */
  logprobs?: number;
  /** With `logprobs`, a completion also records the prompt's tokens (completions `echo`). */
  promptLogprobs?: boolean;
}

export interface GenerateCall {
  model: string;
  sampling: Sampling;
  /** Aborted when the client disconnects or the server drains. */
  signal: AbortSignal;
  /**
   * Called once the request has passed every check and holds a place in the queue, before it
   * waits for a slot: a stream sends its 200 headers only then, so every refusal is a real status.
   */
  onAdmitted?: () => void;
  /** Streaming: called with each piece of text as it is produced. */
  onText?: (text: string) => void;
  /** Streaming: each piece of a reasoning model's thought (thought-chunks.ts), before the answer's text. */
  onReasoning?: (text: string) => void;
  /** Streaming with `sampling.logprobs`: each token's record as it is sampled, before its text reaches `onText`. */
  onLogprob?: (t: TokenLogprob) => void;
  /** Streaming with `sampling.promptLogprobs`: the prompt's records, once evaluated, before any generated text. */
  onPromptLogprobs?: (p: PromptLogprob[]) => void;
  /**
   * Timing for metrics and trace spans: "admitted" (a place in the queue), "slot" (a sequence is ours:
   * the queue wait is over, prompt evaluation starts), "first-token" (prompt evaluated, generating).
   */
  onStage?: (stage: GenerationStage) => void;
  /**
   * Generations in the same scope (the caller's API key) reuse each other's evaluated prompt starts; unset: none
   * (sequence-pool.ts). Never shared across scopes: a cached start answers sooner, which would tell one key what
   * another sent.
   */
  cacheScope?: string;
}

export type GenerationStage = "admitted" | "slot" | "first-token";

/** An alternative token; `bytes` only where its text is not whole UTF-8 (`token` is then OpenAI's "bytes:\\xNN" form). */
export interface AltLogprob { token: string; logprob: number; bytes?: number[] }

/** A generated token (its text), its natural-log probability, and the most likely alternatives at that step. */
export interface TokenLogprob {
  token: string;
  logprob: number;
  top: AltLogprob[];
  /** Only where the token is part of a UTF-8 character (its text alone then reads U+FFFD): its raw bytes. */
  bytes?: number[];
}

/** A prompt token's logprob: null for the first token when nothing came before it. */
export interface PromptLogprob {
  token: string;
  logprob: number | null;
  top: AltLogprob[];
  /** As TokenLogprob's. */
  bytes?: number[];
}

export type FinishReason = "stop" | "length" | "content_filter" | "tool_calls";

export interface Generation {
  text: string;
  /** A reasoning model's thought (its `<think>` segment), apart from the answer; absent when it had none. */
  reasoning?: string;
  /** Of completionTokens, those of the thought's text (its opening and closing markers not counted). */
  reasoningTokens?: number;
  /** Calls the model made (finishReason "tool_calls"). */
  toolCalls?: ToolCall[];
  promptTokens: number;
  /** Of promptTokens, how many were not evaluated again: the start an earlier generation in the scope left. */
  cachedTokens?: number;
  completionTokens: number;
  finishReason: FinishReason;
  /** With `sampling.logprobs`: every sampled token, in order (the server lines them up with the text it sends). */
  logprobs?: TokenLogprob[];
  /** With `sampling.promptLogprobs` (completions): the prompt's tokens. */
  promptLogprobs?: PromptLogprob[];
}

export interface Embeddings {
  vectors: number[][];
  promptTokens: number;
}

export interface ModelInfo {
  id: string;
  /** Seconds since epoch, from the file's mtime (OpenAI's `created`). */
  created: number;
  contextSize: number;
  sizeBytes: number;
  /** The token the engine puts before every prompt (BOS), where the model has one: a token-id prompt may begin with it. */
  beginningToken?: number;
}

/** One model's warm-up: how long its first evaluation took, or why there was none (the first request then pays it). */
export type WarmUp = { model: string; ms: number } | { model: string; skipped: string } | { model: string; error: string };

export interface Engine {
  readonly backend: string;
  models(): ModelInfo[];
  model(id: string): ModelInfo | undefined;
  ready(): boolean;
  /** `thinking: false`: a reasoning model answers without a thought (reasoning_effort "none", enable_thinking false). */
  chat(call: GenerateCall & { messages: ChatTurn[]; tools?: ToolUse; thinking?: boolean }): Promise<Generation>;
  /** A prompt is text (tokenized as user text) or token ids. */
  complete(call: GenerateCall & { prompt: string | number[] }): Promise<Generation>;
  /** Each input is text or token ids. */
  embed(model: string, inputs: (string | number[])[], signal: AbortSignal): Promise<Embeddings>;
  /** The model's own control/special token texts (for the prompt guard). */
  specialTokens(model: string): string[];
  /** Tokens in a text, tokenized as user text (special tokens disabled). */
  countTokens(model: string, text: string): number;
  /** Token ids of a text, tokenized as user text (special tokens disabled); `addBos` puts the BOS token first. */
  tokenize(model: string, text: string, addBos?: boolean): number[];
  /** Token ids of a chat as the model's template renders it for an answer (with its generation prompt). */
  chatTokens(model: string, messages: ChatTurn[], tools?: ToolSpec[]): Promise<number[]>;
  /**
   * Token ids → text (control tokens written out); ids outside the vocabulary are a 400 naming `param`.
   * `after`: the tokens before these, so a piece keeps the spacing it has in context.
   */
  detokenize(model: string, tokens: number[], param?: string, after?: number[]): string;
  /** A token's raw bytes where they are not whole UTF-8 (part of a character); undefined otherwise or unknown. */
  partialBytes?(model: string, token: number): number[] | undefined;
  /** Generations running or waiting, for drain and /metrics. */
  load(): { active: number; queued: number };
  /**
   * The server received a generation request (before its guards run); it calls the result once the request is
   * admitted or has ended. An engine that batches uses it to evaluate a burst's prompts together (arrivals.ts).
   */
  expectArrival?(): () => void;
  /** Runs each model's first evaluation ahead of the first request (the slowest one); resolves with what each took. */
  warmUp?(): Promise<WarmUp[]>;
  dispose(): Promise<void>;
}
