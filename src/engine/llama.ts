/**
 * The node-llama-cpp facade. One context per model with `parallel` sequences
 * (llama.cpp batches them together; loading in llama-load.ts), a Scheduler in front of them, and
 * disposal in the only order that does not hang under Bun:
 * sequence → context → model → llama.
 */
import { LlamaChat, LlamaCompletion, type ChatHistoryItem, type ChatModelFunctions, type ChatWrapper, type LlamaContext, type LlamaContextSequence, type Llama, type Token, type LlamaGrammar } from "node-llama-cpp";
import { InvalidRequestError, ModelNotFoundError, NotReadyError } from "../errors";
import type { ChatTurn, Embeddings, Engine, GenerateCall, Generation, ModelInfo, OutputFormat, ToolSpec, ToolUse, WarmUp } from "./engine";
import { GrammarCache } from "./grammar-cache";
import { partialBytes } from "./token-bytes";
import { beginningToken, checkTokenIds, finishOf, fitContext, generateOptions, toHistory } from "./llama-options";
import { callOrAnswerSchema, chatFunctions, forcedCallSchema, newCallId, parseForcedCall, toolsTurn } from "./tools";
import { callGate } from "./call-gate";
import { Arrivals } from "./arrivals";
import { loadModel, openLlama, type Loaded, type LlamaEngineOptions, type ModelSource } from "./llama-load";
import { promptsGetAllCpus, promptsOnAllThreads, withFullThreads } from "./thread-policy";
import { tallyTokens } from "./token-tally";
import { thoughtChunks } from "./thought-chunks";
import { chatEarly } from "./early-text";
import { contextText } from "./context-text";
import { stopText } from "./stop-text";
import { countAllBeyond, countBeyond } from "./long-text";
import { hasCalls } from "./tool-results";
import { promptLogprobs, recordLogprobs } from "./logprobs";
import { memoSampling } from "./sampler-memo";
import { rememberFixedAnswers } from "./fixed-answers";
import type { LentSequence } from "./sequence-pool";

export type { LlamaEngineOptions, ModelSource } from "./llama-load";

export class LlamaEngine implements Engine {
  private loaded = new Map<string, Loaded>();
  private closing = false;
  /** Generation requests the server has received and that are not in a queue yet (burst gathering). */
  private readonly arrivals = new Arrivals();
  private readonly grammars: GrammarCache;
  /** The warm-up after start (warmUp), so dispose can end it first. */
  private warming?: Promise<WarmUp[]>;

  private constructor(private readonly llama: Llama, private readonly opts: LlamaEngineOptions) {
    this.grammars = new GrammarCache(llama);
  }

  get backend() { return this.llama.gpu || "cpu"; }

  /** The server received a generation request; call the result once it is admitted or has ended (arrivals.ts). */
  expectArrival(): () => void { return this.arrivals.expect(); }

  /** Loads the llama.cpp binding and every model; throws (with the file named) if one fails. */
  static async create(opts: LlamaEngineOptions): Promise<LlamaEngine> {
    const llama = await openLlama(opts);
    const engine = new LlamaEngine(llama, opts);
    try {
      for (const source of opts.models) await engine.loadOne(source);
    } catch (e) {
      await engine.dispose();
      throw e;
    }
    return engine;
  }

  private async loadOne(source: ModelSource) {
    const loaded = await loadModel(this.llama, source, this.opts, this.arrivals);
    memoSampling(loaded.context); // sampler settings made and applied once per generation, not per token
    rememberFixedAnswers(loaded.model, loaded.context); // end tokens and the checkpoint need: asked natively once
    this.loaded.set(source.id, loaded);
  }

  models(): ModelInfo[] { return [...this.loaded.values()].map((l) => l.info); }
  model(id: string) { return this.loaded.get(id)?.info; }
  ready() { return !this.closing && this.loaded.size > 0; }
  specialTokens(id: string) { return this.get(id).special; }
  countTokens(id: string, text: string) { return this.get(id).model.tokenize(text, false).length; }
  tokenize(id: string, text: string, addBos = false) {
    const l = this.get(id);
    const over = countBeyond(pieceCounter(l), text, MAX_TOKENIZE);
    if (over !== undefined) throw new InvalidRequestError(`content is at least ${over} tokens; at most ${MAX_TOKENIZE} are tokenized at once.`, "content", "context_length_exceeded");
    const tokens = l.model.tokenize(text, false) as number[];
    const bos = l.model.tokens.bos;
    return addBos && bos != null ? [bos, ...tokens] : [...tokens];
  }

  detokenize(id: string, tokens: number[], param = "tokens", after: number[] = []) {
    const l = this.get(id);
    checkTokenIds(tokens, l.vocabularySize, param);
    return l.model.detokenize(tokens as Token[], true, after as Token[]);
  }

  partialBytes(id: string, token: number) { return partialBytes(this.get(id).model, token as Token); }

  load() {
    let active = 0, queued = 0;
    for (const l of this.loaded.values()) {
      for (const s of [l.scheduler.stats(), l.embedScheduler.stats()]) { active += s.active; queued += s.queued; }
    }
    return { active, queued };
  }

  /** Resolves once `holds(load())` is true, checked now and at every admission and release (tests wait on it instead of polling). */
  whenLoad(holds: (load: { active: number; queued: number }) => boolean): Promise<void> {
    if (holds(this.load())) return Promise.resolve();
    return new Promise((resolve) => {
      const stops: (() => void)[] = [];
      const check = () => {
        if (!holds(this.load())) return;
        for (const stop of stops) stop();
        resolve();
      };
      for (const l of this.loaded.values()) stops.push(l.scheduler.watch(check), l.embedScheduler.watch(check));
    });
  }

  private get(id: string): Loaded {
    if (this.closing) throw new NotReadyError();
    const l = this.loaded.get(id);
    if (!l) throw new ModelNotFoundError(id);
    return l;
  }

  async chat(call: GenerateCall & { messages: ChatTurn[]; tools?: ToolUse; thinking?: boolean }): Promise<Generation> {
    const l = this.get(call.model);
    this.checkBias(l, call);
    const use = call.tools;
    const forced = use && use.choice !== "auto" ? use.choice : undefined;
    const format = call.sampling.format?.kind === "text" ? undefined : call.sampling.format;
    // "auto" beside a JSON answer format: node-llama-cpp cannot hold a grammar and the template's call syntax at
    // once, so the answer or one call is generated under one grammar and told apart as it comes (call-gate.ts).
    const either = use && !forced && format ? use.tools : undefined;
    const functions = use && !forced && !either ? chatFunctions(use.tools) : undefined;
    const grammar = forced
      ? await this.grammarFor({ kind: "json_schema", schema: forcedCallSchema(use!.tools, forced) }, "tools")
      : either
        ? await this.grammarFor({ kind: "json_schema", schema: callOrAnswerSchema(either, format?.kind === "json_schema" ? format.schema : undefined) }, "response_format")
        : await this.grammarFor(format, "response_format");
    const turn = forced ? toolsTurn(use!.tools, forced) : either ? toolsTurn(either, "required", true) : undefined;
    const base = wrapperFor(l, !!functions);
    const thinks = !!base.settings.segments?.thought;
    const history = toHistory(turn ? [turn, ...call.messages] : call.messages, thinks);
    // A reasoning model answering under a grammar (a JSON format, a forced call) starts after an empty, closed thought:
    // otherwise the grammar's JSON became the thought (a template that opens it in the prompt) and the answer was empty.
    // The same when asked not to think: what Qwen 3's template writes for enable_thinking=false. A template that writes
    // that block itself keeps its own (noThinkWrapper); for the others node-llama-cpp writes it as a closed thought.
    const noThink = thinks && (!!grammar || call.thinking === false);
    const wrapper = noThink && l.noThinkWrapper ? l.noThinkWrapper : base;
    if (noThink && !l.noThinkWrapper) history[history.length - 1] = { type: "model", response: [{ type: "segment", segmentType: "thought", text: "", ended: true }] };
    // Count exactly what the template renders, then refuse before queueing or spending compute.
    const { state, prompt } = await this.render(l, wrapper, history, functions, promptRoom(l.info.contextSize, call.sampling),
      (over) => fitContext(l.info.contextSize, over, call.sampling, "messages", true)); // throws: it cannot fit
    const promptTokens = prompt.length;
    call = { ...call, sampling: fitContext(l.info.contextSize, promptTokens, call.sampling) };
    // Complete characters of held-back tokens go out at once where only split characters and the template's stop strings hold text (early-text.ts).
    const holdFor = call.onText && chatEarly(state, wrapper, !forced && !functions && !grammar && call.sampling.logprobs == null, call.sampling.stop);
    // A reasoning model's thought segment is followed chunk by chunk (thought-chunks.ts): node-llama-cpp's text leaves it out.
    return this.withSequence(l, call, prompt, async (sequence, generating, cachedTokens): Promise<Generation> => {
      const answerLogprob = forced ? undefined : call.onLogprob;
      let answerText: ((text: string) => void) | undefined; // set below, once the stop strings and call gate are in place
      const thought = thinks ? thoughtChunks({ sampled: () => tally.sampled(), detokenize: (t, trail) => l.model.detokenize(t, false, trail), onText: (t) => answerText?.(t), onThought: call.onReasoning, onLogprob: answerLogprob }) : undefined;
      const logprobs = call.sampling.logprobs != null ? recordLogprobs(sequence, l.model, call.sampling.logprobs, thought ? thought.record : answerLogprob) : undefined;
      const released = { count: () => 0 };
      const early = holdFor && call.onText ? { send: call.onText, released: () => released.count(), holdFor } : undefined;
      const tally = tallyTokens(sequence, l.model, { onSampled: generating, cap: call.sampling.maxTokens, context: prompt, early }); // after logprobs' wrapper: counts what it passes on
      const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: wrapper, autoDisposeSequence: false });
      try {
        // A forced call is JSON for tool_calls, never streamed as content; stop strings are for the answer's text and
        // would cut the call's JSON short (stop "e" ended '{"nam', and a "required" call was answered with none).
        // Without functions they are applied to the answer's text here (stop-text.ts), not by node-llama-cpp.
        const cut = !forced && !functions && call.sampling.stop?.length ? stopText(call.sampling.stop, tally.textCallback(call.onText), tally.end) : undefined;
        const sink = cut?.push ?? tally.textCallback(call.onText);
        // A possible call is held before the stop strings too: they are for the answer's text.
        const gate = either && callGate(either.map((t) => t.name), sink);
        const onText = forced ? undefined : gate ? gate.push : sink;
        const { options, counted } = generateOptions({
          ...call, sampling: forced || cut ? { ...call.sampling, stop: undefined } : call.sampling, onText: thought ? undefined : onText,
        }, grammar, l.model);
        answerText = onText;
        released.count = counted;
        const result = await untilAborted(call.signal, chat.generateResponse(history, {
          ...options, functions, documentFunctionParams: true, maxParallelFunctionCalls: use?.parallel === false ? 1 : undefined,
          onResponseChunk: thought?.chunk,
        } as never) as Promise<{ response: string; functionCalls?: { functionName: string; params: unknown }[]; metadata: { stopReason: string } }>,
        { response: "", metadata: { stopReason: "abort" } });
        // Cut at max_tokens, or an end token, inside an incomplete character: send the held-back tokens' text too (not
        // for a call's JSON). node-llama-cpp drops it at an end token, while a stream with early release had sent it.
        const stop = tally.capped ? "maxTokens" : result.metadata.stopReason;
        const held = !forced && !result.functionCalls?.length && (stop === "maxTokens" || stop === "eogToken") ? tally.tail(thought ? thought.released() : counted()) : "";
        // Cut inside the thought, the held-back text is the thought's.
        const thoughtTail = thought?.inThought() ? held : "";
        const tail = thoughtTail ? "" : held;
        if (thoughtTail) call.onReasoning?.(thoughtTail);
        thought?.end(!thoughtTail);
        const gateCall = gate ? gate.finish(tail) : undefined; // the gate sends the tail on when it is the answer's
        const rest = gate ? "" : tail;
        if (cut) cut.finish(rest);
        else if (rest) sink?.(rest);
        const reasoning = (thought?.thought() ?? "") + thoughtTail;
        const done = {
          text: cut ? cut.text() : (thought ? thought.answer() : result.response) + tail, ...(reasoning && { reasoning, reasoningTokens: Math.min(tally.count(), thought!.thoughtTokens() + (thoughtTail ? Math.max(0, tally.count() - thought!.released()) : 0)) }), promptTokens, cachedTokens, completionTokens: tally.count(),
          finishReason: cut?.stopped ? "stop" as const : finishOf(stop),
        };
        const calls = forced
          ? [parseForcedCall(result.response)].filter((c) => c !== undefined)
          : gateCall ? [gateCall] : (result.functionCalls ?? []).map((f) => ({ id: newCallId(), name: f.functionName, arguments: JSON.stringify(f.params ?? {}) }));
        // A forced call is JSON for tool_calls, never the answer's text, even cut short (unparsed): streams never send it either.
        const text = forced || gateCall ? "" : done.text;
        const records = thought && logprobs ? thought.answerRecords() : logprobs?.records;
        const answer = { ...done, text, ...(records && { logprobs: records }) };
        return calls.length ? { ...answer, toolCalls: calls, finishReason: "tool_calls" } : answer;
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    });
  }

  /** The token ids the model's chat template makes of `messages` (with its generation prompt), as chat() would evaluate them. */
  async chatTokens(id: string, messages: ChatTurn[], tools?: ToolSpec[]): Promise<number[]> {
    const l = this.get(id);
    const wrapper = wrapperFor(l, !!tools?.length);
    const { prompt } = await this.render(l, wrapper, toHistory(messages, !!wrapper.settings.segments?.thought), tools?.length ? chatFunctions(tools) : undefined, MAX_TOKENIZE, (over) => {
      throw new InvalidRequestError(`messages are at least ${over} tokens; at most ${MAX_TOKENIZE} are tokenized at once.`, "messages", "context_length_exceeded");
    });
    return [...prompt];
  }

  /**
   * A chat history through the model's template (checked by its bound first): the rendered state and its tokens;
   * `tooMany(count)` is called when the text is beyond `limit` tokens, before it is tokenized whole (it throws
   * where that cannot be served).
   */
  private async render(l: Loaded, wrapper: ChatWrapper, history: ChatHistoryItem[], functions: ChatModelFunctions | undefined, limit: number, tooMany: (count: number) => void) {
    if (hasCalls(history)) await l.toolResults.ensure(); // before the check: its render is handed the answer
    await l.templateBound?.check(history, functions);
    const state = wrapper.generateContextState({ chatHistory: history, availableFunctions: functions, documentFunctionParams: true });
    const strings = state.contextText.values.filter((v): v is string => typeof v === "string");
    const over = countAllBeyond(pieceCounter(l), strings, limit);
    if (over !== undefined) tooMany(over);
    return { state, prompt: state.contextText.tokenize(l.model.tokenizer) };
  }

  async complete(call: GenerateCall & { prompt: string | number[] }): Promise<Generation> {
    const l = this.get(call.model);
    this.checkBias(l, call);
    const grammar = await this.grammarFor(call.sampling.format, "response_format");
    // User text never becomes control tokens: tokenize with special tokens off, BOS added by us.
    // Token ids are taken as given (the route has put their text through the prompt guard).
    if (typeof call.prompt !== "string") checkTokenIds(call.prompt, l.vocabularySize, "prompt");
    if (typeof call.prompt === "string") {
      const over = countBeyond(pieceCounter(l), call.prompt, promptRoom(l.info.contextSize, call.sampling));
      if (over !== undefined) fitContext(l.info.contextSize, over, call.sampling, "prompt", true); // throws: it cannot fit
    }
    // LlamaCompletion puts the BOS in front itself: `input` is what it evaluates (counted, and what prompt
    // logprobs evaluate first), `tokens` what it is given (it had been given `input`: two BOS tokens, one
    // more token than counted, and a prompt the model was never trained on). Token ids that already begin with
    // the BOS (lm-evaluation-harness sends them so) are `input` as given, and their echoed logprobs list it: one
    // entry per token sent, as the client counts them.
    const bos = beginningToken(l.model);
    const givenBos = typeof call.prompt !== "string" && bos != null && call.prompt[0] === bos;
    const tokens = typeof call.prompt === "string" ? l.model.tokenize(call.prompt, false) : (givenBos ? call.prompt.slice(1) : call.prompt) as Token[];
    const input = bos != null ? [bos, ...tokens] : tokens;
    call = { ...call, sampling: fitContext(l.info.contextSize, input.length, call.sampling, "prompt") };
    const top = call.sampling.logprobs;
    // The prompt's own logprobs are read while it is evaluated: all of it, none reused.
    const fresh = top != null && call.sampling.promptLogprobs;
    return this.withSequence(l, fresh ? { ...call, cacheScope: undefined } : call, input, async (sequence, generating, cachedTokens) => {
      const prompt = fresh ? await promptLogprobs(sequence, l.model, input, top, input.length > tokens.length && !givenBos) : undefined;
      if (prompt) call.onPromptLogprobs?.(prompt);
      // max_tokens 0 (completions with echo): the prompt scored, nothing generated.
      if (call.sampling.maxTokens === 0) return { text: "", promptTokens: input.length, cachedTokens, completionTokens: 0, finishReason: "length" as const, ...(top != null && { logprobs: [] }), ...(prompt && { promptLogprobs: prompt }) };
      const logprobs = top != null ? recordLogprobs(sequence, l.model, top, call.onLogprob, input) : undefined;
      // Complete characters of held-back tokens go out at once (early-text.ts: not with stop strings, grammar or logprobs).
      const released = { count: () => 0 };
      const early = call.onText && !grammar && top == null && !call.sampling.stop?.length ? { send: call.onText, released: () => released.count(), holdFor: [] } : undefined;
      const tally = tallyTokens(sequence, l.model, { onSampled: generating, cap: call.sampling.maxTokens, context: input, early });
      const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
      try {
        // Stop strings are applied to the answer's text (stop-text.ts), not given to node-llama-cpp.
        const { options, counted } = generateOptions({ ...call, sampling: { ...call.sampling, stop: undefined } }, grammar, l.model);
        released.count = counted;
        const cut = stopText(call.sampling.stop ?? [], tally.textCallback(call.onText), tally.end);
        // The text is the released tokens' own, after the prompt (context-text.ts: node-llama-cpp drops a leading space).
        const text = contextText(l.model, input, cut.push);
        const result = await untilAborted(call.signal, completion.generateCompletionWithMeta(tokens, {
          ...options, onTextChunk: undefined, onToken: (t: Token[]) => { options.onToken(t); text.push(t); },
        }), { response: "", metadata: { stopReason: "abort" as const } });
        const stop = tally.capped ? "maxTokens" : result.metadata.stopReason;
        // Cut at max_tokens (or an abort), or an end token, inside an incomplete character: the held-back tokens' text
        // is sent too (node-llama-cpp drops it; a stream had already sent it, so the two answers differed).
        cut.finish(stop === "maxTokens" || stop === "abort" || stop === "eogToken" ? tally.tail(counted()) : "");
        return {
          text: cut.text(), promptTokens: input.length, cachedTokens, completionTokens: tally.count(), finishReason: cut.stopped ? "stop" : finishOf(stop),
          ...(logprobs && { logprobs: logprobs.records }), ...(prompt && { promptLogprobs: prompt }),
        };
      } finally {
        completion.dispose({ disposeSequence: false });
      }
    });
  }

  /**
   * The one admission path for generations: a place in the model's queue (decided at once, then
   * `onAdmitted`), a slot, and a sequence (sequence-pool.ts: the one whose kept state shares the longest start with
   * `tokens` in the call's cache scope) that is given back to the pool before the slot is. (node-llama-cpp reclaims
   * a disposed sequence asynchronously; releasing the slot first let the next request find "No sequences left".)
   */
  private async withSequence<T>(l: Loaded, call: Pick<GenerateCall, "signal" | "onAdmitted" | "onStage" | "cacheScope">, tokens: readonly Token[],
    work: (s: LlamaContextSequence, generating: () => void, cachedTokens: number) => Promise<T>): Promise<T> {
    const slot = l.scheduler.admit(call.signal);
    call.onAdmitted?.();
    call.onStage?.("admitted");
    const release = await slot;
    call.onStage?.("slot");
    let lent: LentSequence | undefined;
    let failed = true;
    // Counted from its first sampled token until it ends: while any is, no decode waits for a burst.
    let counted = false;
    // The first sampled token is the first-token stage (node-llama-cpp's onToken may come later: it holds tokens back).
    const generating = () => { if (!counted) { counted = true; l.busy.generating++; call.onStage?.("first-token"); } };
    try {
      l.evaluated = true;
      lent = await l.sequences.take(call.cacheScope, tokens);
      const result = await work(lent.sequence, generating, lent.reused);
      failed = false;
      return result;
    } finally {
      if (counted) l.busy.generating--;
      await lent?.giveBack(failed);
      release();
    }
  }

  async embed(id: string, inputs: (string | number[])[], signal: AbortSignal): Promise<Embeddings> {
    const l = this.get(id);
    // An empty input is refused before any other input is tokenized (each may be long: long-text.ts).
    const empty = inputs.findIndex((input) => input.length === 0);
    if (empty >= 0) throw new InvalidRequestError(`input[${empty}] is empty.`, "input");
    const tokenized = inputs.map((input, i) => {
      if (typeof input !== "string") checkTokenIds(input, l.vocabularySize, "input");
      const over = typeof input === "string" ? countBeyond(pieceCounter(l), input, l.info.contextSize) : undefined;
      const tooLong = (n: string) => new InvalidRequestError(`input[${i}] is ${n} tokens; this model's context is ${l.info.contextSize} (an input takes at most ${l.info.contextSize - 1}, less the tokens the model adds).`,
        "input", "context_length_exceeded");
      if (over !== undefined) throw tooLong(`at least ${over}`);
      const tokens = typeof input === "string" ? l.model.tokenize(input, false) : input as Token[];
      if (tokens.length > l.info.contextSize) throw tooLong(String(tokens.length));
      if (tokens.length === 0) throw new InvalidRequestError(`input[${i}] is empty.`, "input");
      return tokens;
    });
    // One embedding context per model, so one embedding at a time; callers wait in a bounded line like generations.
    const release = await l.embedScheduler.acquire(signal);
    try {
      // Made at the full thread count even while the governor has lowered it (node-llama-cpp would cap it for good).
      l.embedding ??= withFullThreads(this.llama, () => l.model.createEmbeddingContext({ contextSize: l.info.contextSize, threads: this.opts.threads }))
        .then((e) => {
          // An input is a prompt: on a built engine, every usable CPU like a chat's prompt (thread-policy.ts).
          const context = (e as unknown as { _llamaContext?: LlamaContext })._llamaContext;
          if (promptsGetAllCpus(this.opts) && !(context && promptsOnAllThreads(context, this.opts.threads)))
            this.opts.log.warn({ model: l.info.id }, "node-llama-cpp internals changed: embeddings use the governed thread count");
          return e;
        });
      const ctx = await l.embedding;
      // node-llama-cpp adds the model's BOS (and for some vocabularies EOS) and refuses an input that then does not
      // leave one position free: an input of the context size, or one less, passed the check above and was a 500.
      tokenized.forEach((tokens, i) => {
        const length = ctx.calculateInputLength([...tokens]);
        if (length >= l.info.contextSize) {
          throw new InvalidRequestError(`input[${i}] is ${tokens.length} tokens; at most ${l.info.contextSize - 1 - (length - tokens.length)} fit this model's context of ${l.info.contextSize} (with the ${length - tokens.length} the model adds).`,
            "input", "context_length_exceeded");
        }
      });
      const vectors: number[][] = [];
      let promptTokens = 0;
      for (const tokens of tokenized) {
        if (signal.aborted) throw signal.reason ?? new Error("aborted");
        promptTokens += tokens.length;
        vectors.push([...(await ctx.getEmbeddingFor(tokens)).vector]);
      }
      return { vectors, promptTokens };
    } finally {
      release();
    }
  }

  private checkBias(l: Loaded, call: GenerateCall) {
    if (call.sampling.logitBias) checkTokenIds(call.sampling.logitBias.keys(), l.vocabularySize, "logit_bias");
  }

  /** `param`: the request field the schema came from, named when node-llama-cpp cannot make a grammar of it. */
  private async grammarFor(format: OutputFormat | undefined, param: "response_format" | "tools"): Promise<LlamaGrammar | undefined> {
    if (!format || format.kind === "text") return undefined;
    if (format.kind === "json") return this.llama.getGrammarFor("json");
    try {
      return await this.grammars.get(format.schema);
    } catch (e) {
      const what = param === "tools" ? "The forced tool's parameters schema" : "response_format.json_schema";
      throw new InvalidRequestError(`${what} is not supported: ${(e as Error).message}`, param);
    }
  }

  /**
   * Evaluates a short prompt on each model, one after the other, and resolves with how long each took. A model's
   * first evaluation costs several times a later one (node-llama-cpp driven directly, a 20-token prompt: 50-65 ms
   * first, 15 ms after, on the 28 M test model here; 200-230 against 65-77 ms at 155 M; again for a second instance
   * of the same file, not for a second context; why is not known), and the first request after a start paid it.
   * llama-server pays it before it reports ready (its warm-up run); serve calls this 250 ms after it is ready
   * (listen.ts), so /health is not held. It runs in a slot lent by the model's scheduler, only while one is free and
   * no request waits, and not on a model a request has used (skipped): a request arriving meanwhile waits for that
   * slot, never refused for it, about as long as its own first evaluation would have taken. Its sequence is kept with
   * no cache scope (no request reuses it); dispose waits for it.
   * Its last token is evaluated with its logits and a next token sampled (not kept), as a request's is: evaluated
   * without them, llama.cpp skipped the output layer, and the first request still paid that part's first run (the
   * binary, 28 M, CPU profile of a max_tokens 1 completion 1 s after /health: 36 ms of native work, 20 ms with this).
   */
  warmUp(): Promise<WarmUp[]> {
    if (this.warming) return this.warming;
    if (this.closing) return Promise.resolve([]);
    const run = async () => {
      const took: WarmUp[] = [];
      for (const [id, l] of this.loaded) {
        if (this.closing) break;
        // A model a request has already used is warm, and taking a sequence now would clear a kept prompt (the pool
        // clears the oldest free one when none is left).
        const release = l.evaluated ? undefined : l.scheduler.lend();
        if (!release) { took.push({ model: id, skipped: "requests came first" }); continue; }
        let lent: LentSequence | undefined, failed = true;
        try {
          const t0 = performance.now();
          const bos = beginningToken(l.model);
          const tokens = [...(bos != null ? [bos] : []), ...l.model.tokenize("Hi", false)];
          lent = await l.sequences.take(undefined, tokens);
          await lent.sequence.controlledEvaluate([...tokens.slice(0, -1), [tokens.at(-1)!, { generateNext: { token: true } }]]);
          failed = false;
          if (this.closing) break; // dispose came meanwhile: nothing to report
          took.push({ model: id, ms: Math.round(performance.now() - t0) });
        } catch (e) {
          if (this.closing) break;
          took.push({ model: id, error: (e as Error)?.message ?? String(e) });
        } finally {
          await lent?.giveBack(failed).catch(() => undefined);
          release();
        }
      }
      return took;
    };
    this.warming = run();
    return this.warming;
  }

  async dispose(): Promise<void> {
    this.closing = true;
    // A warm-up still running ends first: its evaluation holds a sequence of the context disposed below.
    await this.warming?.catch(() => undefined);
    for (const l of this.loaded.values()) {
      l.templateBound?.dispose();
      if (l.embedding) await (await l.embedding.catch(() => undefined))?.dispose();
      await l.context.dispose();
      await l.model.dispose();
    }
    this.loaded.clear();
    // Never dispose llama before its models: that hangs under Bun.
    await this.llama.dispose();
  }
}

/** The wrapper a chat renders through: with tools the model's own, without them its plain variant where it has one. */
const wrapperFor = (l: Loaded, tools: boolean): ChatWrapper => (tools ? l.chatWrapper : l.plainChatWrapper ?? l.chatWrapper);

/** /tokenize's most tokens at once: the whole-text tokenization's cost grows with the square of a run (long-text.ts). */
const MAX_TOKENIZE = 1 << 16;

/**
 * A generation cancelled once its prompt was being evaluated resolves like one stopped by the signal (node-llama-cpp's
 * stopOnAbortSignal), with what was generated: node-llama-cpp throws AbortError instead when the abort came during the
 * prompt's evaluation, so usage (the evaluated prompt, tokens already sampled) was lost and a key's token limit was
 * charged nothing for it (operations run: a stream cancelled after its first chunk was free).
 */
async function untilAborted<T>(signal: AbortSignal, generation: Promise<T>, aborted: T): Promise<T> {
  try {
    return await generation;
  } catch (e) {
    if (signal.aborted) return aborted;
    throw e;
  }
}

/**
 * The most prompt tokens that leave room for the answer: the context less an explicit max_tokens (at least one token
 * when defaulted), so a prompt refused for the answer's room is refused from its pieces too, never tokenized whole
 * first (a cheap request that only costs the server).
 */
const promptRoom = (context: number, s: { maxTokens: number; maxTokensDefaulted?: boolean }) =>
  context - (s.maxTokensDefaulted ? 1 : s.maxTokens);

/** Counts a piece of user text as the engine tokenizes it (special tokens off). */
const pieceCounter = (l: Loaded) => (text: string) => l.model.tokenize(text, false).length;
