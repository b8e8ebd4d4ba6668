/**
 * Worker preload for template-worker-start.test.ts: node-llama-cpp's top-level await (the module that reads its
 * binaries' release, dist/bindings/utils/binariesGithubRelease.js) is made to last 300 ms longer, so that a message
 * the parent posts right after `new Worker` always arrives while that await is pending. Without it the window is a
 * few ms and the lost init is a race (about 1 start in 40 on a loaded 2-core machine).
 */
import { plugin } from "bun";
import fs from "node:fs";

plugin({
  name: "slow-top-level-await",
  setup(build) {
    build.onLoad({ filter: /binariesGithubRelease\.js$/ }, (args) => ({
      contents: `${fs.readFileSync(args.path, "utf8")}\nawait new Promise((resolve) => setTimeout(resolve, 300));\n`,
      loader: "js",
    }));
  },
});
