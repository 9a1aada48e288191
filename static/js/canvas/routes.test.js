import { test } from "node:test";
import assert from "node:assert/strict";
import { curvePoints, roundedPath, routeFor } from "./routes.js";

const box = (x, y, width = 210, height = 66) => ({ x, y, width, height });
const inBox = (p, b) => p.x > b.x && p.x < b.x + b.width && p.y > b.y && p.y < b.y + b.height;

test("an edge with nothing in its way keeps the plain curve", () => {
  assert.deepEqual(routeFor({ x: 210, y: 140 }, { x: 700, y: 140 }, [box(330, 400)], []), []);
});

test("an edge whose curve would pass behind a node runs along a lane clear of it", () => {
  const middle = box(330, 100);
  const s = { x: 210, y: 140 };
  const t = { x: 700, y: 140 };
  assert.ok(curvePoints(s, t).some((p) => inBox(p, middle)));
  const route = routeFor(s, t, [middle], []);
  assert.equal(route.length, 4);
  const lane = route[1].y;
  assert.ok(lane < middle.y || lane > middle.y + middle.height, `lane ${lane}`);
});

test("a backward edge runs under its own two nodes", () => {
  const source = box(800, 320);
  const target = box(500, 100);
  const route = routeFor({ x: 1010, y: 367 }, { x: 500, y: 147 }, [], [source, target]);
  assert.ok(route[1].y > 386, `lane ${route[1].y}`);
  assert.ok(route[0].x > 1010 && route[3].x < 500);
});

test("a rounded path starts and ends at the ports", () => {
  const d = roundedPath({ x: 0, y: 0 }, [{ x: 20, y: 0 }, { x: 20, y: 50 }], { x: 40, y: 50 });
  assert.match(d, /^M 0 0 /);
  assert.match(d, / L 40 50$/);
  assert.equal((d.match(/Q/g) || []).length, 2);
});
