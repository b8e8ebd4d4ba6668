/** Exit codes shared by every command. */
export const EXIT = {
  OK: 0,
  /** A check failed (verify, doctor, audit verify) or the command could not do its work. */
  FAIL: 1,
  /** Bad usage or invalid configuration: nothing was attempted. */
  USAGE: 2,
  /** `engine build`: cmake, a compiler or a build tool is missing (each named, with its package); nothing written. */
  TOOLS_MISSING: 3,
  /**
   * `serve`: a model failed its integrity check (tampered, or its file changed): alerted, and retrying cannot help,
   * so the unit does not restart it (RestartPreventExitStatus), where a crash is restarted.
   */
  INTEGRITY: 4,
} as const;
