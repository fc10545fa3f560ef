import fs from 'node:fs';
const file = process.argv[2];
const p = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = p.timeDeltas; let total = 0;
const counts = new Map();
for (let i = 0; i < p.samples.length; i++) { counts.set(p.samples[i], (counts.get(p.samples[i]) ?? 0) + (dt[i] ?? 0)); total += dt[i] ?? 0; }
// inclusive time per "package/file" bucket: attribute each sample to the first frame in our interest list walking up
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const bucket = (url) => {
  if (!url) return '(native/gc)';
  const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  const s = /\/(src\/[^:]+|dist\/src\/[^:]+)/.exec(url);
  if (s) return s[1];
  return url.replace(/^.*\//, '');
};
const incl = new Map();
for (const [id, t] of counts) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur); const b = bucket(n.callFrame.url) + (n.callFrame.url ? '' : ':' + n.callFrame.functionName);
    if (!seen.has(b)) { seen.add(b); incl.set(b, (incl.get(b) ?? 0) + t); }
  }
  const n = byId.get(id); const b = bucket(n.callFrame.url) + ' ' + n.callFrame.functionName;
  self.set(b, (self.get(b) ?? 0) + t);
}
const top = (m, k) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([b, t]) => `${(100 * t / total).toFixed(1)}%  ${b}`).join('\n');
console.log('total s', (total / 1e6).toFixed(1));
console.log('--- inclusive by file/package\n' + top(incl, 40));
console.log('--- self\n' + top(self, 25));
