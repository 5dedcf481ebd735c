// The short soak of `make test`: bench/soak.mjs for 45 s with a fault every
// 6 s (each kind at least once). Every leak and accounting check of the soak
// must pass; memory is judged only by the long run (make soak, 10 minutes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../lib/procs.mjs";

test("a 45-second soak with six kinds of fault leaves nothing behind and accounts for every request", { timeout: 180000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "llmgate-soak-test-"));
  const json = join(dir, "soak.json");
  const { code, stderr } = await new Promise((resolve) =>
    execFile(process.execPath, [join(REPO_ROOT, "bench/soak.mjs"), "--seconds", "45", "--fault-every", "6", "--json", json], { timeout: 170000 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }),
    ),
  );
  const summary = JSON.parse(readFileSync(json, "utf8"));
  rmSync(dir, { recursive: true, force: true });
  const { rss_samples, ...brief } = summary;
  console.log(JSON.stringify(brief));
  for (const [name, ok] of Object.entries(summary.checks)) assert.ok(ok, `soak check failed: ${name}\n${stderr.slice(-2000)}`);
  assert.equal(code, 0);
  assert.equal(summary.fault_kinds.length, 6, "every kind of fault ran");
  assert.ok(summary.requests >= 100, `load ran (${summary.requests} requests)`);
  assert.equal(summary.rss_kib.judged, false, "a short run does not judge memory");
});
