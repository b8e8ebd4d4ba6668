/**
 * The compiled binary starts with JavaScriptCore's JIT tier-up thresholds scaled up (scripts/build.ts,
 * STARTUP_JIT_POLICY): code that runs once while the program loads stays in the interpreter, and the JIT's compiler
 * threads leave the 2 CPUs of a small machine to the start itself. Once the start is over the normal policy comes
 * back, for the code that runs again and again: serve once it listens, any other command once its module is loaded,
 * the chat-template worker once its renderer is loaded (each thread's VM has its own policy). From the sources the
 * policy is already the normal one.
 */
export function startIsOver(): void {
  const unsafe = (Bun as unknown as { unsafe?: { setJITPolicy?: (scale: number) => void } }).unsafe;
  unsafe?.setJITPolicy?.(1);
}
