// The deployment files (deploy/k8s, deploy/Dockerfile, deploy/systemd) agree
// with the binary: its subcommands and flags, its ports, its probe paths, the
// config it is given (checked by `llmgate check`), its drain time, and with
// each other (selectors, services, secrets).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync, realpathSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments, parse } from "yaml";
import { startSim, startGateway, stopAll, fetchJson, gatewayConfig, REPO_ROOT, LLMGATE_BIN } from "../lib/procs.mjs";

after(stopAll);

const deploy = join(REPO_ROOT, "deploy");
const manifests = readdirSync(join(deploy, "k8s"))
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(deploy, "k8s", f), "utf8")).map((d) => {
      assert.deepEqual(d.errors, [], `${f} parses`);
      return d.toJS();
    }),
  );
const find = (kind, name) => {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(m, `a ${kind} named ${name}`);
  return m;
};
const seconds = (d) => Number(/^(\d+)s$/.exec(d)[1]);

test("the manifests point at the binary's real flags, ports, probe paths and config", async () => {
  const cm = find("ConfigMap", "llmgate");
  const configText = cm.data["config.yaml"];
  const config = parse(configText);
  // The config the pods get is valid for this binary (secrets as the Secret provides them).
  const secret = find("Secret", "llmgate");
  const dir = mkdtempSync(join(tmpdir(), "llmgate-deploy-"));
  writeFileSync(join(dir, "config.yaml"), configText);
  const checked = execFileSync(LLMGATE_BIN, ["check", "-c", join(dir, "config.yaml")], {
    env: { ...process.env, ...secret.stringData },
    encoding: "utf8",
  });
  rmSync(dir, { recursive: true, force: true });
  assert.match(checked, /config OK/);
  // Every ${VAR} without a default comes from the Secret.
  for (const [, name, dflt] of configText.matchAll(/\$\{([A-Z0-9_]+)(:-[^}]*)?\}/g))
    if (!dflt) assert.ok(name in secret.stringData, `the Secret provides ${name}`);

  const deployment = find("Deployment", "llmgate");
  const pod = deployment.spec.template;
  const c = pod.spec.containers[0];
  assert.deepEqual(c.args.slice(0, 2), ["serve", "-c"]);
  const configPath = c.args[2];
  const mount = c.volumeMounts.find((m) => configPath.startsWith(m.mountPath + "/"));
  assert.ok(mount, "the config file is under a mounted volume");
  assert.equal(mount.subPath, undefined, "mounted as a directory, so ConfigMap updates reach it");
  const volume = pod.spec.volumes.find((v) => v.name === mount.name);
  assert.equal(volume.configMap.name, "llmgate");
  assert.ok(configPath.endsWith("/config.yaml") && "config.yaml" in cm.data);
  const port = (name) => c.ports.find((p) => p.name === name)?.containerPort;
  assert.equal(port("http"), Number(config.listen.split(":")[1]), "the http port is the config's listen port");
  assert.equal(port("admin"), Number(config.admin.listen.split(":")[1]), "the admin port is admin.listen's");
  assert.equal(c.readinessProbe.httpGet.path, "/readyz");
  assert.equal(c.livenessProbe.httpGet.path, "/healthz");
  assert.equal(c.readinessProbe.httpGet.port, "http");
  assert.equal(pod.metadata.annotations["prometheus.io/path"], "/metrics");
  assert.equal(Number(pod.metadata.annotations["prometheus.io/port"]), port("http"));
  const drain = seconds(config.server.drain_timeout);
  const preStop = Number(c.lifecycle.preStop.exec.command[1]);
  assert.ok(pod.spec.terminationGracePeriodSeconds > drain + preStop, "the drain fits the grace period");
  assert.equal(c.envFrom[0].secretRef.name, "llmgate");

  // Services, autoscaler, disruption budget and ingress meet the Deployment.
  const labels = pod.metadata.labels;
  const selects = (sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  for (const name of ["llmgate", "llmgate-admin"]) {
    const svc = find("Service", name);
    assert.ok(selects(svc.spec.selector));
    for (const p of svc.spec.ports) assert.ok(port(p.targetPort), `${name} targets a container port (${p.targetPort})`);
  }
  assert.equal(find("HorizontalPodAutoscaler", "llmgate").spec.scaleTargetRef.name, "llmgate");
  assert.ok(selects(find("PodDisruptionBudget", "llmgate").spec.selector.matchLabels));
  assert.ok(find("PodDisruptionBudget", "llmgate").spec.minAvailable < deployment.spec.replicas);
  const ingress = find("Ingress", "llmgate");
  assert.equal(ingress.spec.rules[0].http.paths[0].backend.service.name, "llmgate");
  assert.ok(ingress.metadata.annotations["nginx.ingress.kubernetes.io/limit-rps"]);
  // Redis where the config looks for it.
  const redisUrl = new URL(config.redis.url);
  const redisSvc = find("Service", redisUrl.hostname);
  assert.equal(redisSvc.spec.ports[0].port, Number(redisUrl.port));

  // The binary has the subcommand and flags used, and answers the probe paths.
  const help = execFileSync(LLMGATE_BIN, ["serve", "--help"], { encoding: "utf8" });
  assert.match(help, /-c,--config/);
  assert.match(help, /--listen/);
  const sim = await startSim();
  const gw = await startGateway(gatewayConfig([sim]));
  for (const path of [c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path, "/metrics"])
    assert.equal((await fetchJson(`${gw.url}${path}`)).status, 200, path);
  await gw.stop();
  await sim.stop();
});

test("the Dockerfile and the systemd unit run the same command and drain in time", () => {
  const docker = readFileSync(join(deploy, "Dockerfile"), "utf8");
  assert.match(docker, /^FROM debian:bookworm AS build$/m);
  assert.match(docker, /^FROM debian:bookworm-slim$/m);
  assert.match(docker, /--target llmgate/);
  assert.match(docker, /ENTRYPOINT \["\/usr\/local\/bin\/llmgate"\]/);
  assert.match(docker, /CMD \["serve", "-c", "\/etc\/llmgate\/config.yaml"\]/);
  const exposed = /^EXPOSE (.+)$/m.exec(docker)[1].split(/\s+/).map(Number);
  assert.deepEqual(exposed, [8080, 9090]);
  // Every shared library the binary links comes from a package the image
  // installs (ldd, then dpkg -S; the base image's libc, libgcc and libstdc++ aside).
  const runtime = /FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends \\\n([\s\S]*?)&&/.exec(docker)[1];
  const linked = execFileSync("ldd", [LLMGATE_BIN], { encoding: "utf8" })
    .split("\n")
    .map((l) => /=> (\/\S+)/.exec(l)?.[1])
    .filter(Boolean);
  const packages = new Set();
  for (const path of linked) {
    let owner = "";
    for (const candidate of [path, path.replace(/^\/lib\//, "/usr/lib/"), realpathSync(path)])
      try {
        owner = execFileSync("dpkg", ["-S", candidate], { encoding: "utf8" }).split(":")[0];
        break;
      } catch {
        /* try the next spelling (usrmerge) */
      }
    assert.ok(owner, `a package owns ${path}`);
    packages.add(owner);
  }
  for (const base of ["libc6", "libgcc-s1", "libstdc++6"]) packages.delete(base);
  assert.ok(packages.size >= 5, [...packages].join(" "));
  for (const pkg of packages) assert.ok(runtime.includes(pkg), `the image installs ${pkg} (the binary links it)`);

  const unit = readFileSync(join(deploy, "systemd", "llmgate.service"), "utf8");
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/llmgate serve -c \/etc\/llmgate\/config\.yaml$/m);
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.ok(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)[1]) > 30, "longer than the default drain_timeout");
});
