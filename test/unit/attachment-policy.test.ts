// What a notification carries of its message's attachments (src/outbox/attachment-policy.ts).
import { describe, expect, it } from 'vitest';
import { withheld, withheldNote } from '../../src/outbox/attachment-policy.js';

const file = (filename: string | null, contentType = 'application/octet-stream') => ({ filename, contentType });

describe('withheld', () => {
  it.each([
    ['invoice.pdf', 'application/pdf'],
    ['screenshot.png', 'image/png'],
    ['report.xlsx', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'],
    ['logs.zip', 'application/zip'],
    [null, 'text/plain'],
  ])('%s (%s) from an authenticated author goes along', (name, type) => {
    expect(withheld(file(name, type), 'AUTH_ACCEPTED')).toBeNull();
  });

  it.each([
    'setup.exe',
    'INVOICE.PDF.EXE',
    'invoice.pdf.scr',
    'run.js',
    'macro.vbs',
    'install.msi',
    'shortcut.lnk',
    'disk.iso',
    'script.ps1',
    'app.jar',
    'x.hta',
    'trailing.exe.',
    'spaced.exe  ',
    'fullwidth．ｅｘｅ',
  ])('%s is a program, whoever sent it', (name) => {
    expect(withheld(file(name), 'AUTH_ACCEPTED')).toBe('executable');
  });

  it.each(['application/x-msdownload', 'application/x-dosexec', 'application/java-archive', 'application/x-sh'])(
    'a file of type %s is a program, whatever its name',
    (type) => expect(withheld(file('readme.txt', type), 'AUTH_ACCEPTED')).toBe('executable'),
  );

  it.each([['AUTH_UNAUTHENTICATED'], ['AUTH_NOT_BOUND'], ['AUTH_NOT_ALLOWED'], [null]])(
    'nothing goes along from an author not authenticated (%s: stored under AUTH_POLICY=monitor)',
    (verdict) => expect(withheld(file('invoice.pdf', 'application/pdf'), verdict)).toBe('unauthenticated'),
  );
});

describe('withheldNote', () => {
  it('names each file kept back and why, in the notification language', () => {
    const files = [
      { filename: 'setup.exe', contentType: 'application/x-msdownload', why: 'executable' as const },
      { filename: 'invoice.pdf', contentType: 'application/pdf', why: 'unauthenticated' as const },
    ];
    expect(withheldNote(files, 'TKT-7', 'en')).toBe(
      'Not attached to this mail (kept in ticket TKT-7):\n' +
        '- setup.exe (application/x-msdownload): a program\n' +
        '- invoice.pdf (application/pdf): the sender is not authenticated',
    );
    expect(withheldNote(files, 'TKT-7', 'ru')).toMatch(
      /^Не приложено к этому письму \(хранится в тикете TKT-7\):\n- setup\.exe/,
    );
    expect(withheldNote([], 'TKT-7', 'ru')).toBe('');
  });
});
