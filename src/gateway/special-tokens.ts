/**
 * Control tokens of the common chat templates (ChatML/Qwen, Llama 3, Gemma,
 * Phi, Mistral). The gateway cannot read an upstream model's vocabulary, so the
 * prompt guard's special-token rule checks upstream prompts for these instead
 * of the model's own list (which it uses for local models).
 */
export const COMMON_SPECIAL_TOKENS: readonly string[] = Object.freeze([
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_sep|>",
  "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
  "<start_of_turn>", "<end_of_turn>",
  "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
  "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CALLS]",
]);
