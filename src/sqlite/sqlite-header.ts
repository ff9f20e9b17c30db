/**
 * The fields of a SQLite database header (the first 100 bytes; sqlite.org/fileformat2.html, "The Database Header")
 * that a file must have right before it may become the live database. SQLite itself is lenient with several of
 * them: it opens a file with a higher write version read-only and masks an unknown text encoding to UTF-8 for the
 * main database, so such a file passes integrity_check and reads as whole, yet the restored live database is
 * read-only or refuses every ATTACH (both found by a sweep of header edits through upload and restore).
 */
export const HEADER_BYTES = 100;

/** How an inspection's `integrity` starts when the header alone refuses the file (it is never opened). */
export const UNUSABLE_HEADER = 'unusable header';

/** Why this header could not be the live database's, in words for the operator, or null. */
export function headerProblem(header: Buffer): string | null {
  if (header.length < HEADER_BYTES) {
    return 'is shorter than a SQLite header';
  }
  const writeVersion = header[18];
  const readVersion = header[19];
  // 1 = rollback journal, 2 = WAL.
  if (writeVersion < 1 || writeVersion > 2 || readVersion < 1 || readVersion > 2) {
    return `asks for a SQLite file format this service cannot write (write version ${writeVersion}, read version ${readVersion})`;
  }
  if (header[21] !== 64 || header[22] !== 32 || header[23] !== 32) {
    return 'has payload fractions other than the fixed 64/32/32';
  }
  const schemaFormat = header.readUInt32BE(44);
  if (schemaFormat < 1 || schemaFormat > 4) {
    return `names schema format ${schemaFormat} (SQLite knows 1 to 4)`;
  }
  const encoding = header.readUInt32BE(56);
  if (encoding < 1 || encoding > 3) {
    return `names text encoding ${encoding} (SQLite knows 1 to 3)`;
  }
  if (header.subarray(72, 92).some((byte) => byte !== 0)) {
    return 'has data in the area SQLite reserves (bytes 72-91 must be zero)';
  }
  return null;
}
