// The jobqueue dashboard: a page per hash route, drawn from the JSON API. This module
// starts it; the parts are ES modules in js/ (one idea each):
//
//   js/dom.js        building elements, as DOM text nodes only (no innerHTML anywhere)
//   js/api.js        requests, credentials, CSRF; the server's state lists (GET /api/meta)
//   js/frame.js      header, flash messages, live status, confirmations, actions
//   js/chart.js      the throughput chart
//   js/job.js        what a view says about one job (stuck, its error in one line)
//   js/router.js     the hash routes and the live polling loop
//   js/views/*.js    overview, job lists, one job, schedules, sign-in
//
// Loaded as <script type="module">: the page's CSP allows scripts from this app only.

import { mountFrame } from "./js/frame.js";
import { run } from "./js/router.js";

mountFrame();
run();
