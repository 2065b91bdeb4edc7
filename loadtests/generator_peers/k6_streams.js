// k6 holding notification streams, several per VU (k6's WebSocket API with an event loop):
// counts notifications, their latency from the payload's `sent_at`, and gaps in its `seq`.
// Run by `python -m loadtests.generators`; every input comes from the environment:
// URL, TOKENS (file, one per line), RATE (opened per second), PER_VU, END_S (seconds from
// the start at which every stream closes), RESULT (where the summary goes).
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Trend } from 'k6/metrics';
import { SharedArray } from 'k6/data';

const tokens = new SharedArray('tokens', () => open(__ENV.TOKENS).split('\n').filter((t) => t));
const perVu = Number(__ENV.PER_VU);
const rate = Number(__ENV.RATE);
const endMs = Number(__ENV.END_S) * 1000;

const opened = new Counter('streams_opened');
const received = new Counter('notifications_received');
const frames = new Counter('frames_received');
const gaps = new Counter('seq_gaps');
const latency = new Trend('notification_latency', true);

export const options = {
  scenarios: {
    hold: {
      executor: 'per-vu-iterations',
      vus: Math.ceil(tokens.length / perVu),
      iterations: 1,
      maxDuration: `${Number(__ENV.END_S) + 60}s`,
    },
  },
  summaryTrendStats: ['count', 'p(50)', 'p(99)', 'max'],
};

function hold(token, start) {
  let lastSeq = null;
  const ws = new WebSocket(`${__ENV.URL}?token=${token}`);
  ws.onopen = () => opened.add(1);
  ws.onmessage = (event) => {
    frames.add(1);
    const frame = JSON.parse(event.data);
    if (frame.type !== 'notification') return;
    received.add(1);
    const data = frame.data || {};
    if (typeof data.sent_at === 'number') latency.add(Math.max(0, Date.now() - data.sent_at * 1000));
    if (typeof data.seq === 'number') {
      if (lastSeq !== null && data.seq > lastSeq + 1) gaps.add(data.seq - lastSeq - 1);
      lastSeq = lastSeq === null ? data.seq : Math.max(lastSeq, data.seq);
    }
  };
  setTimeout(() => ws.close(), Math.max(0, endMs - (Date.now() - start)));
}

export function setup() {
  return { start: Date.now() };
}

export default function (data) {
  const first = (__VU - 1) * perVu;
  const last = Math.min(first + perVu, tokens.length);
  for (let i = first; i < last; i++) {
    const due = data.start + (i * 1000) / rate - Date.now();
    setTimeout(() => hold(tokens[i], data.start), Math.max(0, due));
  }
}

export function handleSummary(data) {
  return { [__ENV.RESULT]: JSON.stringify(data) };
}
