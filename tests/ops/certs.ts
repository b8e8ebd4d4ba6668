/**
 * Test PKI made with the real openssl CLI: a CA, a server certificate for 127.0.0.1/localhost, a
 * client certificate signed by the CA, and a rogue CA with its own client certificate. EC P-256
 * keeps key generation fast on a loaded machine; a weak 1024-bit RSA pair is made for refusal tests.
 */
import fs from "node:fs";
import path from "node:path";

export interface TestPki {
  dir: string;
  ca: string; serverCert: string; serverKey: string;
  clientCert: string; clientKey: string;
  rogueCa: string; rogueCert: string; rogueKey: string;
  weakCert: string; weakKey: string;
}

function openssl(dir: string, args: string[]) {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe", stdout: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function makeCa(dir: string, name: string) {
  openssl(dir, ["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
}

function makeLeaf(dir: string, name: string, ca: string, subject: string, ext: string) {
  openssl(dir, ["req", "-new", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject]);
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial",
    "-days", "2", "-out", `${name}.pem`, "-extfile", `${name}.ext`]);
}

export function makePki(dir: string): TestPki {
  makeCa(dir, "ca");
  makeLeaf(dir, "server", "ca", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  makeLeaf(dir, "client", "ca", "/CN=gateway/O=appliance-tests", "extendedKeyUsage=clientAuth\n");
  makeCa(dir, "rogue-ca");
  makeLeaf(dir, "rogue", "rogue-ca", "/CN=gateway/O=appliance-tests", "extendedKeyUsage=clientAuth\n");
  openssl(dir, ["req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", "weak.key", "-out", "weak.pem", "-days", "2", "-subj", "/CN=localhost"]);
  const p = (f: string) => path.join(dir, f);
  return {
    dir, ca: p("ca.pem"), serverCert: p("server.pem"), serverKey: p("server.key"), clientCert: p("client.pem"), clientKey: p("client.key"),
    rogueCa: p("rogue-ca.pem"), rogueCert: p("rogue.pem"), rogueKey: p("rogue.key"), weakCert: p("weak.pem"), weakKey: p("weak.key"),
  };
}
