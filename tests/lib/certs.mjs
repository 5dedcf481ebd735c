// Test certificates made with the openssl command: a CA, a certificate it
// signs for 127.0.0.1 and localhost (server and client use), and a second CA
// that signed nothing of ours (to see verification fail). Valid for two days.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

function openssl(dir, ...args) {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function newCa(dir, name) {
  openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-keyout", `${name}.key`, "-out", `${name}.crt`, "-subj", `/CN=llmgate test ${name}`);
}

function signed(dir, ca, name, cn, ext) {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
  openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial",
    "-days", "2", "-out", `${name}.crt`, "-extfile", `${name}.ext`);
}

/** Writes the files into `dir`; returns their paths. */
export function makeCerts(dir) {
  newCa(dir, "ca");
  newCa(dir, "other-ca");
  signed(dir, "ca", "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  signed(dir, "ca", "client", "llmgate", "extendedKeyUsage=clientAuth\n");
  const p = (f) => join(dir, f);
  return {
    ca: p("ca.crt"),
    otherCa: p("other-ca.crt"),
    cert: p("server.crt"),
    key: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
  };
}
