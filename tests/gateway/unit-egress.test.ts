/**
 * The installed unit's egress lock (IPAddressDeny=any) in gateway mode: the
 * upstreams given by IP address are let through, each once; host names cannot be
 * (IPAddressAllow= takes addresses) and are left out.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { layout } from "../../src/service/layout";
import { renderUnits } from "../../src/service/units";

const unit = (upstreams: object[], tracing: object = {}) => Object.entries(renderUnits(layout("systemd", "/"), parseConfig({ upstreams, tracing })))
  .find(([f]) => f.endsWith("appliance.service"))![1];

test("IPAddressAllow= names every upstream IP address, and no host name", () => {
  expect(unit([])).toContain("\nIPAddressAllow=localhost\n");
  const text = unit([
    { url: "http://10.0.0.5:8000/v1", models: ["a"] },
    { url: "https://[fd00::7]/v1", models: ["a", "b"] },
    { url: "http://10.0.0.5:8001/v1", models: ["b"] },
    { url: "http://gpu-3.internal:8000/v1", models: ["c"] },
  ], { otlpEndpoint: "http://10.0.0.9:4318" });
  expect(text).toContain("\nIPAddressAllow=localhost 10.0.0.9 10.0.0.5 fd00::7\n");
  expect(text).not.toContain("gpu-3");
});
