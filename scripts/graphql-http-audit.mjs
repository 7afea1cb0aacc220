// The GraphQL over HTTP audit of graphql-http (serverAudits) against a
// running gateway. Usage: node graphql-http-audit.mjs URL TOKEN
// Prints one JSON line per audit that is not ok and a summary line; exits 1
// when any audit warns or errs.
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: graphql-http-audit.mjs URL TOKEN');
  process.exit(2);
}
// Every request carries the token: without it the gateway answers 401 first.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn });
let failed = 0;
for (const r of results) {
  if (r.status === 'ok') continue;
  if (r.status === 'warn' || r.status === 'error') failed += 1;
  console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status, reason: r.reason }));
}
const ok = results.filter((r) => r.status === 'ok').length;
console.log(`graphql-http audit: ${ok} ok, ${failed} warned or failed, ${results.length} in all`);
process.exit(failed ? 1 : 0);
