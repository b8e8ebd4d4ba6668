/**
 * zod/mini with English messages: the schemas every command builds at start (the config, the keys file) are written
 * with it rather than zod's classic API, whose schemas carry some forty methods each and cost several times more to
 * build and to parse (config/schema.ts). zod/mini leaves messages to a locale the program sets (classic zod sets
 * English itself, at its first schema): without it every error read "Invalid input". Import z from here, not from
 * "zod/mini", so the locale is set whichever module loads first.
 */
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

if (!z.config().localeError) z.config(en());

export { z };
