// The overview's chart: finished attempts per minute or per hour, as an SVG bar chart.

import { h, svg } from "./dom.js";

const WIDTH = 720;
const HEIGHT = 150;
const LEFT = 36;
const BOTTOM = 20;
const TOP = 8;

export function chart(buckets, period) {
  const plot = HEIGHT - BOTTOM - TOP;
  const most = Math.max(1, ...buckets.map((bucket) => bucket.completed + bucket.failed));
  const step = (WIDTH - LEFT) / Math.max(buckets.length, 1);
  const label = (start) => {
    const date = new Date(start * 1000);
    return period === "minute"
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleString([], { weekday: "short", hour: "2-digit" });
  };
  const finished = buckets.reduce((sum, bucket) => sum + bucket.completed, 0);
  const failed = buckets.reduce((sum, bucket) => sum + bucket.failed, 0);
  const picture = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": `${finished} completed, ${failed} failed` },
    svg("line", { x1: LEFT, y1: TOP + plot, x2: WIDTH, y2: TOP + plot, class: "axis" }),
    svg("text", { x: LEFT - 4, y: TOP + 10, class: "tick", "text-anchor": "end" }, String(most)),
    svg("text", { x: LEFT - 4, y: TOP + plot, class: "tick", "text-anchor": "end" }, "0"),
  );
  buckets.forEach((bucket, index) => {
    const x = LEFT + index * step;
    const completedHeight = (plot * bucket.completed) / most;
    const failedHeight = (plot * bucket.failed) / most;
    const tip = `${label(bucket.start)}: ${bucket.completed} completed, ${bucket.failed} failed, ${bucket.retried} retried, ${bucket.cancelled} cancelled`;
    if (bucket.completed) {
      picture.append(
        svg("rect", { x, y: TOP + plot - completedHeight, width: Math.max(step - 1, 1), height: completedHeight, class: "bar completed" }, svg("title", {}, tip)),
      );
    }
    if (bucket.failed) {
      picture.append(
        svg("rect", { x, y: TOP + plot - completedHeight - failedHeight, width: Math.max(step - 1, 1), height: failedHeight, class: "bar failed" }, svg("title", {}, tip)),
      );
    }
  });
  if (buckets.length) {
    picture.append(
      svg("text", { x: LEFT, y: HEIGHT - 4, class: "tick" }, label(buckets[0].start)),
      svg("text", { x: WIDTH, y: HEIGHT - 4, class: "tick", "text-anchor": "end" }, label(buckets[buckets.length - 1].start)),
    );
  }
  return h(
    "figure",
    {},
    picture,
    h(
      "figcaption",
      {},
      h("span", { class: "key completed" }, "completed ", h("b", { "data-total": "completed" }, finished)),
      " ",
      h("span", { class: "key failed" }, "failed ", h("b", { "data-total": "failed" }, failed)),
    ),
  );
}
