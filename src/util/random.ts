/** Random bytes from Web Crypto's CSPRNG (Bun's native one; node:crypto's module is not loaded for it: util/node-builtins.ts). */
export const randomBytes = (n: number): Buffer => Buffer.from(crypto.getRandomValues(new Uint8Array(n)));
