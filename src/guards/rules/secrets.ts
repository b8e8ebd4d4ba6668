/**
 * Secret-detection rules, as data.
 *
 * Source: the token patterns below follow the rules of gitleaks
 * (https://github.com/gitleaks/gitleaks, config/gitleaks.toml), MIT licence,
 * Copyright (c) 2019 Zachary Rice; re-expressed here for JavaScript regexes and
 * trimmed to the most common, low-false-positive families. The internal-address
 * and PII rules are this project's own.
 */
export interface SecretRule {
  id: string;
  pattern: RegExp;
  /**
   * Longest text a match can span; sizes the streaming hold-back window and an anchored rule's search window. For
   * a bounded pattern exactly its longest match (tests/guards/scan-rule-lengths.test.ts computes it from the regex);
   * for one with an unbounded repeat (`\s*`, `\d+`, `(?:label\.)+`), the longest match kept whole on a stream.
   */
  maxLength: number;
  /** Extra check on a candidate (checksum, entropy); false = not a finding. */
  validate?: (match: string) => boolean;
  /**
   * The part of a match that is redacted, [from, to) in the match (default: all of it): an assignment's value, not its
   * name and `=`, so `{"api_key": "…"}` in an answer or a call's arguments stays JSON (the whole match took the key
   * and its quotes).
   */
  redacts?: (match: string) => [number, number];
  /**
   * For patterns the regex engine cannot skip through quickly (they may start at any letter): a fast global
   * regex for a part every match contains, and how far before that part a match can start. The scanner
   * then runs `pattern` only near anchor hits; the result is the same as running it over the whole text.
   */
  anchor?: { re: RegExp; before: number };
  /** Rule families that operators switch on or off together. */
  group: "secret" | "internal" | "pii";
}

/** Shannon entropy in bits per character. */
export function entropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) { const p = n / s.length; h -= p * Math.log2(p); }
  return h;
}

function luhn(digits: string): boolean {
  const d = digits.replace(/\D/g, "");
  if (d.length < 13 || d.length > 19) return false;
  let sum = 0;
  for (let i = 0; i < d.length; i++) {
    let n = d.charCodeAt(d.length - 1 - i) - 48;
    if (i % 2 === 1) { n *= 2; if (n > 9) n -= 9; }
    sum += n;
  }
  return sum % 10 === 0;
}

function ibanValid(raw: string): boolean {
  const s = raw.replace(/\s/g, "").toUpperCase();
  if (s.length < 15 || s.length > 34) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const v = ch >= "A" ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of v) rem = (rem * 10 + Number(digit)) % 97;
  }
  return rem === 1;
}

/**
 * The short loopback forms (127.1) and the decimal one (2130706433) are also decimals: in a JSON answer (a
 * response_format, a call's arguments) `{"lon": -127.25}` or INT32_MAX 2147483647 were redacted, and the JSON no
 * longer parsed. In JSON answers only (JSON_ANSWER_RULES), a number standing as a JSON value is not an address:
 * after a key's `":`, a `[` or a `,` (spaces and a minus sign between) and followed by `,`, `}`, `]` or the end. In
 * prose the forms are read as before (a list "10.0.0.1, 127.1" included). The spaces are bounded so the lookbehind
 * fits in the context a stream keeps before its held text (response-scan.ts CONTEXT).
 */
const JSON_NUMBER_GAP = 24;
/** Before a number's first `digits` digits: not a JSON value's start (a key's `":`, `[`, `,`, spaces, a minus sign). */
const notAfterJson = (digits: number) => `(?<!(?:":|[[,])\\s{0,${JSON_NUMBER_GAP}}-?\\d{${digits}})`;
/** After a number: not a JSON value's end (`,`, `}`, `]`, the end of the text; a `:port` is no JSON). */
const NOT_BEFORE_JSON = "(?!(?:\\.\\d+)?(?:[eE][+-]?\\d+)?\\s*[,}\\]]|(?:\\.\\d+)?(?:[eE][+-]?\\d+)?\\s*$)"; // 2147483647.0 is JSON too

/** Private and loopback IPv4, dotted (with a port); `json`: the short loopback form not where it is a JSON number. */
function dottedIpv4(json: boolean): SecretRule {
  const short = json ? `127${notAfterJson(3)}\\.\\d{1,3}(?!\\.?\\d)|127\\.\\d{1,3}(?!\\.?\\d)${NOT_BEFORE_JSON}` : "127\\.\\d{1,3}(?!\\.?\\d)";
  return { id: "internal-ip", group: "internal", maxLength: 45,
    pattern: new RegExp(`\\b(?:10\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}|192\\.168\\.\\d{1,3}\\.\\d{1,3}|172\\.(?:1[6-9]|2\\d|3[01])\\.\\d{1,3}\\.\\d{1,3}|169\\.254\\.\\d{1,3}\\.\\d{1,3}|` +
      `127(?:\\.\\d{1,3}){2,3}(?!\\.?\\d)|${short}|0+(?:127|177)(?:\\.\\d{1,3}){1,3}(?!\\.?\\d))(?::\\d{1,5})?\\b`, "g") };
}

/**
 * Loopback and private addresses written as one integer. 127.0.0.1's own forms, 2130706433 and 0x7f000001, anywhere
 * (`json`: the decimal not where it is a JSON number); any other such integer only where a URL's host stands: after
 * `//` or `\\` (as browsers read both), after `@`, or right after `http:`/`https:` — in decimal (http://3232235521/ is
 * 192.168.0.1), hex (0xa000001, leading zeros too) or octal (017700000001), as inet_aton and URL parsers read them.
 * Read anywhere, every integer of 127/8 and the hex forms of every private range were addresses: INT32_MAX
 * (2147483647, 0x7fffffff), a float's infinity and NaN bits (0x7f800000, 0x7fc00000) and test patterns such as
 * 0x0A0B0C0D were redacted from code and prose (SDK fidelity run), and a strict json_schema answer holding one no
 * longer matched its schema; read before a `:port` too, `ratio 2147483647:1` was (attack on the fix).
 */
function integerIpv4(json: boolean): SecretRule {
  const loopback = json ? `2130706433${notAfterJson(10)}|2130706433${NOT_BEFORE_JSON}` : "2130706433";
  const integer = "(?:0x0{0,8}[0-9a-f]{1,8}|0[0-7]{9,11}|[1-9]\\d{8,9})";
  return { id: "internal-ip", group: "internal", maxLength: 24, validate: privateInteger,
    pattern: new RegExp(`\\b(?:0x7f000001|${loopback})\\b|(?<=[\\/\\\\]{2}|@|\\bhttps?:[\\/\\\\]*)${integer}\\b(?::\\d{1,5}\\b)?`, "gi") };
}

/** A number as inet_aton and URL parsers read one: hex (0x; `0x` alone is 0), octal (a leading 0; NaN with an 8 or 9), decimal. */
function inetNumber(p: string): number {
  if (/^0x/i.test(p)) return p.length > 2 ? parseInt(p.slice(2), 16) : 0;
  if (/^0\d/.test(p)) return /^[0-7]+$/.test(p) ? parseInt(p, 8) : NaN;
  return Number(p);
}

/** Whether an IPv4 address as one number is loopback, private or link-local. */
function privateV4(n: number): boolean {
  if (!Number.isInteger(n) || n > 0xffffffff) return false;
  const a = n >>> 24, b = (n >>> 16) & 255;
  return a === 127 || a === 10 || (a === 192 && b === 168) || (a === 172 && b >= 16 && b <= 31) || (a === 169 && b === 254);
}

/** An integer in decimal, hex (0x) or octal (a leading 0), a port after it allowed: a loopback, private or link-local IPv4 address. */
const privateInteger = (m: string) => privateV4(inetNumber(m.replace(/:\d+$/, "")));

/**
 * A URL's host of two to four dotted parts, one of them at least in hex (0x) or octal (a leading 0), right after a
 * scheme's `//` (and a user's `@` there): URL parsers and inet_aton read `http://0x7f.0.0.1/` and `http://0300.0250.0.1/`
 * as 127.0.0.1 and 192.168.0.1, which went out unread (red-team run). After any `//` or `@`, as integerIpv4 reads,
 * Python's `total//0.05` and `lr@0.01` were redacted (second attack on the fix). Validated as a parser reads it: every
 * part but the last a byte, the last filling the bytes left, leading zeros taken (`0x00000000007f`); `0.0.0.0` (this
 * host) counts too.
 */
const RADIX_HOST: SecretRule = { id: "internal-ip", group: "internal", maxLength: 117, validate: privateDotted,
  pattern: /(?<=\b[a-z][a-z0-9+.-]{0,15}:[\/\\]{2}(?:[^\s\/\\@]{1,64}@)?)(?=[\d.x]*(?:0x|\b0\d)|0\.0\.0\.0\b)(?:0x0{0,16}[0-9a-f]{0,8}|0{0,16}\d{1,11})(?:\.(?:0x0{0,16}[0-9a-f]{0,8}|0{0,16}\d{1,11})){1,3}\b(?::\d{1,5}\b)?/gi };

function privateDotted(m: string): boolean {
  const nums = m.replace(/:\d+$/, "").split(".").map(inetNumber);
  if (nums.some((n) => !Number.isInteger(n))) return false;
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return false;
  const n = nums.reduce((acc, b, i) => acc + b * 256 ** (3 - i), 0) + last;
  return n === 0 || privateV4(n); // 0.0.0.0 (this host), not the rest of 0/8: `0.05` is a number
}

/**
 * A value that is code, not a secret: a member path or call of letter-only names (`process.env.CLIENT_SECRET`,
 * `this.auth.getToken()`, `getUserPasswordFromVault(id)`), a `${…}` placeholder, a relative path. Such values pass the
 * entropy gate, and with names allowed to end longer ones (`userPassword = …`) code assigning them was redacted. Random
 * secrets have digits: a dotted one with none (a 3% draw for 20 base64 characters) is the price of this.
 */
const codeLike = (v: string) =>
  isCall(v) || /^(?:[A-Za-z_$]+\.)+[A-Za-z_$]+[;,)]*$/.test(v) || /^\$\{/.test(v) || /^\.{1,2}\//.test(v);

/**
 * A call of a member path (`CryptoJS.enc.Utf8.parse(`, `self.jwt_service.create(`): members may hold digits, the called
 * name is letters and `_` only (`Passw0rd(123)` is no call). So a letters-only secret written right before a `(` is
 * missed (README says so): a vowel test on the name's parts redacted code with acronyms (HTTPDigestAuth, KMS, CSRF)
 * and still let a quarter of random letters through (a fix-attack run).
 */
const isCall = (v: string) => /^(?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$]+\(/.test(v);

/**
 * A value that is a name, not a secret: words joined by `.`, `_`, `-`, `/` or `:`, each letters with a number after
 * them or a number (a Kubernetes `key: app.kubernetes.io/name`, `primary_key = user_account_identifier`, a path
 * `client-key: /home/u/.minikube/profiles/minikube/client.key`, `releases/v1.2.3/app-linux-amd64.tar.gz`,
 * `com.example.service.v2.UserService`). A random secret mixes letters and digits inside its runs (`Zx9Qw3Er`, a
 * UUID's `3f2b9c1e`), which no such word does.
 */
const wordsOnly = (v: string) => {
  const parts = v.replace(/^~?\//, "").split(/[._/:-]+/).filter(Boolean);
  return parts.length >= 2 && parts.every((p) => /^(?:[A-Za-z]+\d*|\d+)$/.test(p));
};

/**
 * What makes a `…key` name a secret's: crypto and credential words and the places such keys are named by (a second
 * fix-attack run: Azure's AccountKey, HMAC_KEY, APP_KEY, CONSUMER_KEY, x-functions-key were released once `key` alone
 * was no name).
 */
const KEY_QUALIFIERS = ["secret", "private", "signing", "encryption", "encrypt", "enc", "master", "hmac", "jwt", "session", "app",
  "client", "consumer", "account", "subscription", "aes", "cipher", "shared", "webhook", "deploy", "admin", "service", "functions",
  "license"];

/** The value of a `name = value` match (after the `=` or `:` and an opening quote). */
const assigned = (m: string) => m.replace(/^[^:=]*[:=]\s*["']?/, "");
/** The value of a password match: after `name = "`, or after `name is ` / `name was `. */
const spoken = (m: string) => m.replace(/^[^:=\s]+["']?(?:\s*[:=]\s*|\s+\S+\s+)["'`]?/, "");

/** Letters of a pattern fragment in either case (for a pattern that cannot take the i flag: `named` needs case). */
const anyCase = (fragment: string) => fragment.replace(/[a-z]/g, (c) => `[${c.toUpperCase()}${c}]`);
/**
 * A secret's name, alone or as the end of a longer one: after a non-alphanumeric (`DB_PASSWORD`, `aws_secret_access_key`,
 * `x-api-key`) in any case, or camelCase after a lower-case letter (`userPassword`, `clientSecret`). Not after any
 * letter: "QYA" must not hold its `A` back as the start of `auth=…` on a stream, nor "bypassword" be a name.
 */
const named = (names: string[]) => `(?:(?<![A-Za-z0-9])(?:${names.map(anyCase).join("|")})|(?<=[a-z])(?:${names.map((n) => n[0]!.toUpperCase() + anyCase(n.slice(1))).join("|")}))`;

const DOTTED_IPV4 = dottedIpv4(false), INTEGER_IPV4 = integerIpv4(false);

export const SECRET_RULES: SecretRule[] = [
  { id: "private-key", group: "secret", maxLength: 8262,
    pattern: /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S]{16,8000}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----/g },
  { id: "aws-access-token", group: "secret", maxLength: 20, pattern: /\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b/g },
  { id: "github-pat", group: "secret", maxLength: 40, pattern: /\bgh[pousr]_[0-9a-zA-Z]{36}\b/g },
  { id: "github-fine-grained-pat", group: "secret", maxLength: 93, pattern: /\bgithub_pat_\w{82}\b/g },
  // A token that may end in `-` ends at a word boundary or where no word character or `-` follows: `\b` alone wanted
  // a word character after a last `-`, so one key in 64 that ends in it was never matched (red-team run); the second
  // alone refused a `-` after the token (`glpat-…-x`, attack on the fix).
  { id: "gitlab-pat", group: "secret", maxLength: 26, pattern: /\bglpat-[\w-]{20}(?:\b|(?![\w-]))/g },
  { id: "slack-token", group: "secret", maxLength: 120, pattern: /\bxox[abposr]-(?:\d+-)?[0-9a-zA-Z-]{10,100}\b/g },
  { id: "stripe-access-token", group: "secret", maxLength: 107, pattern: /\b(?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99}\b/g },
  { id: "openai-api-key", group: "secret", maxLength: 171, pattern: /\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,160}\b/g },
  { id: "anthropic-api-key", group: "secret", maxLength: 115, pattern: /\bsk-ant-(?:api|admin)\d{2}-[a-zA-Z0-9_-]{80,100}\b/g },
  { id: "gcp-api-key", group: "secret", maxLength: 39, pattern: /\bAIza[\w-]{35}(?:\b|(?![\w-]))/g },
  { id: "npm-access-token", group: "secret", maxLength: 40, pattern: /\bnpm_[a-zA-Z0-9]{36}\b/g },
  { id: "appliance-api-key", group: "secret", maxLength: 64, pattern: /\bapk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\b/g },
  { id: "jwt", group: "secret", maxLength: 2048,
    pattern: /\bey[a-zA-Z0-9_-]{17,}\.ey[a-zA-Z0-9_-]{17,}\.[a-zA-Z0-9_-]{10,}/g },
  // Generic assignments: only key-shaped candidates go through the entropy gate. The name may end a longer one
  // (aws_secret_access_key, GITHUB_TOKEN, SLACK_BOT_API_KEY, clientSecret).
  { id: "generic-high-entropy", group: "secret", maxLength: 2091,
    // A key named as a secret one (KEY_QUALIFIERS: SECRET_KEY, private_key, AccountKey, Ocp-Apim-Subscription-Key…).
    // Not `key` alone or any `…Key`: the commonest property name in code and JSON (S3 keys, cache keys, label keys,
    // idempotency keys). Nor any upper-case `…_KEY`: a stream would hold every upper-case word as a possible name.
    // The value may end in `(`: then it is a call (codeLike), which the character class alone cut before
    // (`getPasswordFromVault(id)`).
    pattern: new RegExp(`${named(["api[_-]?key", ...KEY_QUALIFIERS.map((q) => `${q}[_-]?key`), "secret", "token", "access[_-]?key", "auth"])}["']?\\s{0,8}[:=]\\s{0,8}["']?(?:base64:|hex:)?[A-Za-z0-9+/_=.-]{20,2048}\\(?`, "g"),
    // No anchor: an anchored rule's lookbehinds are not relied on when holding a stream back (rule-match.ts cuts its
    // window), and without this one's every glued A, S or T would be held as a possible name. It starts at a few
    // letters only, which the regex engine finds quickly.
    // Hex has 4 bits a character at most: a random 32-digit one falls under 3.5 one time in five (Azure, Twilio keys)
    validate: (m) => { const v = assigned(m).replace(/^(?:base64|hex):/, ""); return entropy(v) >= (/^[0-9a-f]+$/i.test(v) ? 3 : 3.5) && !codeLike(v) && !wordsOnly(v); },
    redacts: (m) => [m.length - assigned(m).length, m.endsWith("(") ? m.length - 1 : m.length] },
  // Passwords are shorter and less random than keys, but named as such they are still secrets:
  // "pwd=…", "password: …", "the password is …", and as the end of a longer name (DB_PASSWORD=…, userPassword: …).
  { id: "password", group: "secret", maxLength: 96,
    pattern: new RegExp(`${named(["passw(?:or)?d", "pwd", "pass(?:phrase|code)"])}["']?(?:\\s*[:=]\\s*|\\s+${anyCase("(?:is|was)")}\\s+)["'\`]?[^\\s"'\`]{6,64}`, "g"),
    // "the password is incorrect" is prose: a value of letters only must look random to count.
    redacts: (m) => [m.length - spoken(m).length, m.length],
    validate: (m) => {
      const v = spoken(m).replace(/[.,;!?)]+$/, "");
      return v.length >= 6 && (/[^A-Za-z]/.test(v) ? entropy(v) >= 2.3 : entropy(v) >= 3.2) && !codeLike(v);
    } },
  // Every alternative starts with a literal digit or bracket, so the regex engine can skip ahead: a leading
  // lookbehind or `0*` would make it try every position (7x slower on prose). A loopback is not part of a longer
  // dotted number (127.0.0.1.5) but may end a sentence ("on 127.0.0.1.": that once passed). JSON answers: dottedIpv4.
  DOTTED_IPV4,
  // IPv6 loopback, bare or bracketed, short or long.
  { id: "internal-ip", group: "internal", maxLength: 41,
    // The long form starts with a literal 0 (its \b as a lookbehind after it): a leading \b would be tried at
    // every word of prose (100x slower).
    pattern: /\[(?:::1|(?:0{1,4}:){7}0{0,3}1)\]|:(?<![\w:[]:):1(?![\w:])|0(?<!\w0)0{0,3}:(?:0{1,4}:){6}0{0,3}1(?![\w:])/g },
  // IPv6 unique-local fc00::/7 (fd00::/8 in practice) and link-local fe80::/10: a first group of four digits (fd0::
  // is 0fd0::, neither).
  { id: "internal-ip", group: "internal", maxLength: 43,
    pattern: /\[f(?:[cd][0-9a-f]|e[89ab])[0-9a-f]:[0-9a-f:]{2,36}\]|\bf(?:[cd][0-9a-f]|e[89ab])[0-9a-f]:[0-9a-f:]{2,36}(?![\w:])/gi },
  // Loopback and private addresses written as one integer: 2130706433 and 0x7f000001 anywhere, any other where a URL's
  // host stands (integerIpv4). JSON answers: integerIpv4(true).
  INTEGER_IPV4,
  RADIX_HOST,
  { id: "localhost-url", group: "internal", maxLength: 23, pattern: /\bhttps?:\/\/localhost(?::\d{1,5})?\b/gi },
  { id: "email", group: "pii", maxLength: 270, pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,180}\.[A-Za-z]{2,24}\b/g,
    anchor: { re: /@/g, before: 64 } },
  { id: "payment-card", group: "pii", maxLength: 37, pattern: /\b(?:\d[ -]?){12,18}\d\b/g, validate: luhn },
  { id: "iban", group: "pii", maxLength: 43, pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b/g, validate: ibanValid },
  { id: "phone", group: "pii", maxLength: 31, pattern: /(?<![\w+])\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}\b/g },
];

/** The rules that read differently in a JSON answer (a response_format, a call's arguments): each prose rule's JSON one. */
export const JSON_ANSWER_RULES: ReadonlyMap<SecretRule, SecretRule> = new Map([[DOTTED_IPV4, dottedIpv4(true)], [INTEGER_IPV4, integerIpv4(true)]]);

/** Host-name suffix rule built from config (".internal", ".corp", …). */
export function internalHostRule(suffixes: string[]): SecretRule | undefined {
  const clean = suffixes.map((s) => s.replace(/^\./, "").replace(/[^a-z0-9.-]/gi, "")).filter(Boolean);
  if (!clean.length) return undefined;
  const alternatives = clean.map((s) => s.replace(/\./g, "\\.")).join("|");
  return {
    id: "internal-host", group: "internal", maxLength: 253,
    // Starts only where a run of label characters starts: from every `\b` inside "a.a.a…" the repeat would
    // re-scan the rest of the run (quadratic).
    pattern: new RegExp(`(?<![a-z0-9.-])(?:[a-z0-9-]{1,63}\\.)+(?:${alternatives})\\b`, "gi"),
    // Names end in one of the suffixes: look for those, then for the name before them.
    anchor: { re: new RegExp(`\\.(?:${alternatives})\\b`, "gi"), before: 253 },
  };
}
