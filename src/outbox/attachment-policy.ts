// Which of a message's attachments its notification carries. A notification goes out from our own
// support@ address, DKIM-signed for our domain: an attachment in it is one we vouch for. So it
// carries only what an authenticated author attached (AUTH_ACCEPTED; under AUTH_POLICY=monitor
// anyone's mail is stored, and would otherwise be laundered through our signature), and never a
// file a mail client or Windows would run on a double click, whoever sent it. What stays behind
// is named in the notification and kept in the ticket (the API and `ticket show` have it).

/** Extensions Windows, macOS or a mail client run or install when opened (Outlook's Level 1 list, trimmed). */
const EXECUTABLE_EXTENSIONS = new Set(
  (
    'ade adp app application appref-ms apk bas bat cer chm cmd com cpl crt csh der diagcab dll exe fxp gadget ' +
    'grp hlp hpj hta htc inf ins iso img isp its jar jnlp js jse ksh lnk mad maf mag mam maq mar mas mat mau mav ' +
    'maw mcf mda mdb mde mdt mdw mdz msc msh msh1 msh2 msi msp mst msu ops osd pcd pif pl plg prf prg ps1 ps1xml ' +
    'ps2 ps2xml psc1 psc2 pst py pyc pyo pyw pyz reg scf scr sct sh shb shs sys tmp url vb vbe vbp vbs vhd vhdx ' +
    'vsmacros vsw webpnp website ws wsc wsf wsh xbap xll xnk command dmg pkg'
  ).split(' '),
);

/** Content types that are programs, whatever the file is called. */
const EXECUTABLE_TYPES =
  /^application\/(?:x-msdownload|x-msdos-program|x-dosexec|x-executable|x-ms-installer|x-msi|x-ms-shortcut|x-sh|x-csh|x-shellscript|java-archive|x-java-archive|x-java-jnlp-file|hta|x-bat|x-ms-application|vnd\.microsoft\.portable-executable|x-apple-diskimage|x-iso9660-image|javascript|x-javascript|ecmascript|vbscript|x-vbscript|x-powershell)\b/i;

export type Withheld = 'unauthenticated' | 'executable';

/** Why an attachment stays in the ticket rather than going out with the notification, or null. */
export function withheld(
  file: { filename: string | null; contentType: string },
  authVerdict: string | null,
): Withheld | null {
  const name = (file.filename ?? '').normalize('NFKC').replace(/[\s.\u0000-\u001f]+$/u, '');
  const dot = name.lastIndexOf('.');
  const extension = dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
  if (EXECUTABLE_EXTENSIONS.has(extension) || EXECUTABLE_TYPES.test(file.contentType)) return 'executable';
  if (authVerdict !== 'AUTH_ACCEPTED') return 'unauthenticated';
  return null;
}

const NOTE: Record<string, { title: string; why: Record<Withheld, string> }> = {
  ru: {
    title: 'Не приложено к этому письму (хранится в тикете {{ticket}}):',
    why: { executable: 'исполняемый файл', unauthenticated: 'отправитель не подтверждён' },
  },
  en: {
    title: 'Not attached to this mail (kept in ticket {{ticket}}):',
    why: { executable: 'a program', unauthenticated: 'the sender is not authenticated' },
  },
};

/** The lines that name what stayed behind, in the notification's language; '' when nothing did. */
export function withheldNote(
  files: { filename: string | null; contentType: string; why: Withheld }[],
  ticket: string,
  language: string,
): string {
  if (!files.length) return '';
  const note = NOTE[language] ?? NOTE.en!;
  const lines = files.map(
    (f) => `- ${(f.filename ?? 'attachment').slice(0, 200)} (${f.contentType}): ${note.why[f.why]}`,
  );
  return [note.title.replace('{{ticket}}', ticket), ...lines].join('\n');
}
