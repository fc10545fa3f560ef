// The schema reaches every connection through the URL: search_path in the startup options, kept
// beside other options, readable back, never an identifier that would need quoting.
import { describe, expect, it } from 'vitest';
import { inSchema, schemaNameProblem, schemaOf } from '../../src/db/schema.js';

describe('inSchema', () => {
  it('sets search_path in the options parameter, as libpq and node-postgres read it', () => {
    const url = inSchema('postgres://u:p@db:5432/crm', 'ticketmx');
    expect(url).toBe('postgres://u:p@db:5432/crm?options=-c%20search_path%3Dticketmx');
    expect(schemaOf(url)).toBe('ticketmx');
  });

  it('keeps other parameters and options, and replaces a search_path set before', () => {
    const url = inSchema('postgres://db/crm?sslmode=require&options=-c%20statement_timeout%3D5000', 'ticketmx');
    const params = new URL(url).searchParams;
    expect(params.get('sslmode')).toBe('require');
    expect(params.get('options')).toBe('-c statement_timeout=5000 -c search_path=ticketmx');
    const again = inSchema(url, 'helpdesk_mail');
    expect(new URL(again).searchParams.get('options')).toBe('-c statement_timeout=5000 -c search_path=helpdesk_mail');
    expect(inSchema(again, 'helpdesk_mail')).toBe(again);
  });

  it('reads no schema from a URL that sets none', () => {
    expect(schemaOf('postgres://db/crm')).toBeNull();
  });

  it.each(['public', 'pg_catalog', 'information_schema', 'Tickets', 'a b', 'x"y', ''])('refuses %j', (name) => {
    expect(schemaNameProblem(name)).not.toBeNull();
    expect(() => inSchema('postgres://db/crm', name)).toThrow();
  });
});
