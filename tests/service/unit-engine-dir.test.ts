/**
 * engine.dir in the rendered units: the service may execute from it (ExecPaths=, AppArmor mr), so install refuses a
 * dir that overlaps one the service or an operator writes (state, models, log, config, audit anchor).
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { layout } from "../../src/service/layout";
import { renderUnits } from "../../src/service/units";

const units = (dir?: string) => renderUnits(layout("systemd", "/"), parseConfig(dir ? { engine: { dir } } : {}));

describe("engine.dir in the units", () => {
  test("the default dir is executable in the unit and the AppArmor profile", () => {
    const all = Object.values(units()).join("\n");
    expect(all).toContain("-/usr/local/lib/appliance/engine");
    expect(all).toContain("/usr/local/lib/appliance/engine/** mr");
  });

  test.each(["/var/lib/appliance/engine", "/var/lib/appliance", "/var/lib", "/var/log/appliance/x", "/etc/appliance", "/var/lib/appliance/models/e", "/var/lib/appliance-anchor/e"])(
    "%s overlaps a dir the service writes: refused", (dir) => {
      expect(() => units(dir)).toThrow(/engine\.dir .* overlaps the/);
    });

  test("a dir of its own is accepted", () => {
    expect(Object.values(units("/opt/appliance-engine")).join("\n")).toContain("-/opt/appliance-engine");
  });
});
