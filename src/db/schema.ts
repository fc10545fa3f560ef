// The schema of our own (DATABASE_SCHEMA, default ticketmx) and how every connection gets it: the
// connection URL carries `options=-c search_path=<schema>`, so pools, the CLI, LISTEN clients and
// migrations alike resolve unqualified names there, and nothing of ours lands in public.

export const DEFAULT_SCHEMA = 'ticketmx';

/** A plain lower-case identifier (never needs quoting), and not a schema PostgreSQL or the CRM owns. */
export function schemaNameProblem(name: string): string | null {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name))
    return 'must be a lower-case SQL identifier (letters, digits, _; at most 63) such as ticketmx';
  if (name === 'public' || name === 'information_schema' || name.startsWith('pg_'))
    return "must be a schema of ticket-mx's own, not public or a system schema";
  return null;
}

const SEARCH_PATH = /(?:^|\s)-c\s*search_path=(\S*)/;

/**
 * The URL with search_path set to the schema in its startup options (kept beside any other
 * `-c` options it had). Idempotent: a URL that names another schema gets this one instead.
 */
export function inSchema(url: string, schema: string): string {
  const problem = schemaNameProblem(schema);
  if (problem) throw new Error(`schema ${JSON.stringify(schema)}: ${problem}`);
  const u = new URL(url);
  const others = (u.searchParams.get('options') ?? '').replace(SEARCH_PATH, '').trim();
  u.searchParams.set('options', `${others ? `${others} ` : ''}-c search_path=${schema}`);
  // URLSearchParams writes a space as '+', which libpq (psql) would not decode: write %20.
  u.search = u.searchParams.toString().replace(/\+/g, '%20');
  return u.toString();
}

/** The schema a URL's options put first on search_path, or null when it sets none. */
export function schemaOf(url: string): string | null {
  const options = new URL(url).searchParams.get('options') ?? '';
  const value = SEARCH_PATH.exec(options)?.[1];
  return value ? (value.split(',')[0] ?? null) : null;
}
