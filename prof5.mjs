import fs from 'node:fs';
const p = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const target = process.argv[3];
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const counts = new Map(); let total = 0;
for (let i = 0; i < p.samples.length; i++) { counts.set(p.samples[i], (counts.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0)); total += p.timeDeltas[i] ?? 0; }
const stacks = new Map();
for (const [id, t] of counts) {
  const n = byId.get(id);
  if (n.callFrame.functionName !== target) continue;
  const chain = [];
  for (let cur = parent.get(id); cur !== undefined && chain.length < 12; cur = parent.get(cur)) {
    const f = byId.get(cur).callFrame; const u = f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '');
    if (/node:|^$/.test(f.url) && chain.length) continue;
    chain.push(`${f.functionName}@${u.split('/').slice(0,2).join('/')}`);
  }
  const key = chain.slice(0, 5).join(' < ');
  stacks.set(key, (stacks.get(key) ?? 0) + t);
}
for (const [k, t] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${(100 * t / total).toFixed(2)}%  ${k}`);
