/**
 * Types for the part of the `pgpass` module (hoegaarden/pgpass, the password-file reader
 * node-postgres depends on) that the PostgreSQL source uses; the module ships none.
 */
declare module 'pgpass/lib/helper.js' {
  /** The fields a password file line is matched on. */
  interface PgpassConnInfo {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
  }

  /** A line of a password file. */
  interface PgpassEntry {
    readonly host: string;
    readonly port: string;
    readonly database: string;
    readonly user: string;
    readonly password: string;
  }

  const helper: {
    /** One line of a password file, unescaped; null for a comment or a line without five fields. */
    parseLine(line: string): PgpassEntry | null;
    /** False when a field is empty or the port is not a number or `*`. */
    isValidEntry(entry: PgpassEntry): boolean;
    /** True when the entry's host, port, database and user match (`*` matches anything). */
    match(connInfo: PgpassConnInfo, entry: PgpassEntry): boolean;
  };
  export default helper;
}
